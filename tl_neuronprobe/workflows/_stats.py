"""Per-layer activation statistics of extracted activations, as a tidy table and a box plot (not a ranking)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from ..core.plotting import pyplot, save

__all__ = ["layer_statistics", "plot_layer_statistics"]


def _layer_columns(acts, layer: int, site: str | None = None) -> torch.Tensor:
    return torch.as_tensor([i for i, n in enumerate(acts.neurons)
                            if n.layer == layer and (site is None or n.site == site)], dtype=torch.long)


def layer_statistics(acts) -> pd.DataFrame:
    """One row per (site, layer): neurons, words, mean, std, share of positive activations, max |activation| and
    dead neurons (``mlp.post`` neurons never positive; 0 for other sites)."""
    rows = []
    for site in sorted({n.site for n in acts.neurons}):
        for layer in acts.layers:
            cols = _layer_columns(acts, layer, site)
            if not len(cols):
                continue
            X = acts.X[:, cols].float()
            positive = X > 0
            rows.append(dict(site=site, layer=layer, neurons=len(cols), words=acts.n_words,
                             mean=float(X.mean()), std=float(X.std()), share_positive=float(positive.float().mean()),
                             max_abs=float(X.abs().max()),
                             dead_neurons=int((positive.sum(0) == 0).sum()) if site == "mlp.post" else 0))
    return pd.DataFrame(rows)


def plot_layer_statistics(acts, path: "str | Path") -> None:
    """Box plot of the neurons' mean activations per layer: how activation scale changes with depth."""
    fig, ax = pyplot().subplots(figsize=(7, 4))
    data = [acts.X[:, _layer_columns(acts, layer)].float().mean(0).numpy() for layer in acts.layers]
    ax.boxplot(data, showfliers=False)
    ax.set_xticks(range(1, len(acts.layers) + 1), [str(layer) for layer in acts.layers])
    ax.set_xlabel("layer")
    ax.set_ylabel("mean activation per neuron")
    ax.set_title(f"{acts.meta.get('model', '')} {','.join(acts.meta.get('sites', []))}")
    save(fig, path)
