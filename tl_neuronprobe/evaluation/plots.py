"""Figures of the used evaluation: effect against k for every ranking, with its random and bottom baselines.

Not for the encoded curves (:func:`~tl_neuronprobe.plot_encoded`) nor the comparison figure
(:func:`~tl_neuronprobe.compare_encoded_used`); the backend rule lives in :mod:`tl_neuronprobe.core.plotting`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..core.plotting import pyplot, save

__all__ = ["plot_used"]

_STYLES = (("top", "-"), ("bottom", ":"), ("random", "--"))


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
                color, label = "0.45", "random" if len(drawn_random) == 1 else None
            else:
                color, label = colors[i % len(colors)], f"{name}" if sel == "top" else f"{name} (bottom)"
            ax.plot(d["k"], d["value"], style, color=color, marker="o" if sel == "top" else None, ms=3, label=label)
            if sel != "bottom":
                ax.fill_between(d["k"], d["ci_low"], d["ci_high"], color=color, alpha=0.15, lw=0)


def plot_used(table: pd.DataFrame, path: "str | Path | None" = None, metrics: Sequence[str] | None = None):
    """Used curves: one panel per metric, value against k; top-k solid with its CI band, bottom-k dotted,
    random-k dashed gray. Returns the matplotlib Figure (saved to ``path`` and closed if a path is given)."""
    if table.empty:
        raise ValueError("the table is empty")
    plt = pyplot()
    metrics = list(metrics or dict.fromkeys(table["metric"]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 3.8), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    rankings = list(dict.fromkeys(table["ranking"]))
    for ax, metric in zip(axes[0], metrics):
        _draw_metric(ax, table[table["metric"] == metric], rankings, colors)
        ax.set_xlabel("k (neurons intervened)")
        ax.set_ylabel(metric.replace("_", " "))
        ax.set_title(metric.replace("_", " "))
        ax.grid(alpha=0.3)
    first = table.iloc[0]
    fig.suptitle(f"used: {first.get('attribute', '')}, {first.get('method', '')}, {first.get('readout', '')} readout")
    axes[0][0].legend(fontsize=8)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        save(fig, path)
    return fig
