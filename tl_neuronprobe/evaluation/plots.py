"""Figures of the used evaluation: effect against k for every ranking, with its random and bottom baselines.

Not for the encoded curves (``EncodedResult.plot``) nor the comparison figure (``Comparison.plot``); the backend
rule lives in :mod:`tl_neuronprobe.core.plotting`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..core.plotting import pyplot, save

__all__ = ["plot_used", "scale_k_axis", "RANDOM_BASELINE"]

_STYLES = (("top", "-"), ("bottom", ":"), ("random", "--"))
#: the legend label of the random-k baseline: distinct from a ranking named "random" (a Random ranker's order)
RANDOM_BASELINE = "random-k baseline"


def scale_k_axis(ax, ks) -> None:
    """A log-scaled k axis (ticks at the ks) when the ks span more than a decade, else a linear one: on a linear
    axis k = 1, 2, 5, 10 crowd into the left edge when k = 500 is also there."""
    ks = sorted({int(k) for k in ks if k > 0})
    if ks and ks[-1] > 10 * ks[0]:
        ax.set_xscale("log")
        ax.set_xticks(ks)
        ax.set_xticklabels([str(k) for k in ks])
        ax.minorticks_off()


def _draw_metric(ax, t: pd.DataFrame, rankings: list, colors: list) -> None:
    drawn_random: set = set()
    for i, name in enumerate(rankings):
        for sel, style in _STYLES:
            d = t[(t["ranking"] == name) & (t["selection"] == sel)].sort_values("k")
            if d.empty:
                continue
            if sel == "random":  # random rows repeat under every ranking of the same pool: draw each once
                key = tuple(np.round(d["value"].to_numpy(), 12))
                if key in drawn_random:
                    continue
                drawn_random.add(key)
                n = len(drawn_random)
                color, label = "0.45", RANDOM_BASELINE if n == 1 else f"{RANDOM_BASELINE} {n}"
            else:
                color, label = colors[i % len(colors)], f"{name}" if sel == "top" else f"{name} (bottom)"
            ax.plot(d["k"], d["value"], style, color=color, marker="o" if sel == "top" else None, ms=3, label=label)
            if sel != "bottom":
                ax.fill_between(d["k"], d["ci_low"], d["ci_high"], color=color, alpha=0.15, lw=0)


def plot_used(table: pd.DataFrame, path: "str | Path | None" = None, metrics: Sequence[str] | None = None):
    """Used curves: one panel per metric, value against k; top-k solid with its CI band, bottom-k dotted,
    random-k dashed gray (labelled :data:`RANDOM_BASELINE`, numbered when rankings over different layers have
    their own draws), one legend entry per line; the k axis is logarithmic when the ks span more than a decade.
    Returns the matplotlib Figure (saved to ``path`` and closed if a path is given)."""
    if table.empty:
        raise ValueError("the table is empty")
    plt = pyplot()
    metrics = list(metrics or dict.fromkeys(table["metric"]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 3.8), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    rankings = list(dict.fromkeys(table["ranking"]))
    for ax, metric in zip(axes[0], metrics):
        _draw_metric(ax, table[table["metric"] == metric], rankings, colors)
        scale_k_axis(ax, table["k"])
        ax.set_xlabel("k (neurons intervened)")
        ax.set_ylabel(metric.replace("_", " "))
        ax.set_title(metric.replace("_", " "))
        ax.grid(alpha=0.3)
    first = table.iloc[0]
    fig.suptitle(f"used: {first.get('attribute', '')}, {first.get('edit', '')}, {first.get('readout', '')} readout")
    axes[0][0].legend(fontsize=8)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        save(fig, path)
    return fig
