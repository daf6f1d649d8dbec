"""Images of a report: neuron histograms drawn with matplotlib, and the results' own PNGs copied in."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Mapping

import numpy as np

__all__ = ["copy_images", "write_histograms"]


def write_histograms(values: Mapping[str, np.ndarray], slugs: Mapping[str, str], folder: Path) -> dict[str, str]:
    """One small PNG per neuron: the histogram of its activations over the corpus words (log counts).

    Returns neuron -> file name. One figure's artists are updated for each neuron, which keeps hundreds fast.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    from matplotlib.ticker import LogLocator, NullLocator

    fig, ax = plt.subplots(figsize=(4.2, 2.2))
    fig.subplots_adjust(left=0.16, right=0.97, bottom=0.22, top=0.88)
    patch = ax.stairs([1], [0, 1], fill=True, color="#b91c1c", baseline=0.5)
    ax.axvline(0, color="#555", lw=0.8)
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(numticks=4))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("activation", fontsize=8)
    ax.set_ylabel("words", fontsize=8)
    ax.tick_params(labelsize=7)
    title = ax.set_title("", fontsize=9)
    names = {}
    try:
        for name, v in values.items():  # the artists are updated, not redrawn from scratch
            counts, edges = np.histogram(v, bins=60)
            patch.set_data(counts, edges)
            pad = 0.02 * (edges[-1] - edges[0]) or 1.0
            ax.set_xlim(min(edges[0], 0) - pad, max(edges[-1], 0) + pad)
            ax.set_ylim(0.8, max(2, counts.max()) * 1.5)
            title.set_text(f"{name}: {len(v)} words")
            names[name] = f"hist_{slugs[name]}.png"
            fig.savefig(folder / names[name], dpi=72)
    finally:
        plt.close(fig)
    return names


def copy_images(images: Mapping[str, Path], folder: Path) -> dict[str, str]:
    """Copy each result PNG into the site as ``{key}.png``; returns key -> file name."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for key, src in images.items():
        name = f"{key.replace('/', '_')}.png"
        shutil.copyfile(src, folder / name)
        out[key] = name
    return out
