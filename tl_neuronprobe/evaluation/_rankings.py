"""Rankings as the used evaluation takes them, turned into neuron orders; not for fitting rankers themselves.

A ranking is a neuron order (``Neuron`` objects or ``'L1.N5'`` strings, or column indices into ``neurons=`` or
of ``site`` at ``layer``), a fitted ranker (anything with ``order_``), a ranker name fitted later on the fit
corpus, or an :func:`~tl_neuronprobe.evaluate_encoded` table (its ``attrs['orders']``).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from ..core.adapter import ModelAdapter
from ..core.neurons import Neuron

__all__ = ["ranking_items", "to_orders", "columns_to_neurons", "check_order", "fit_ranker"]


def _is_neuron_text(x: Any) -> bool:
    if not isinstance(x, str):
        return False
    try:
        Neuron.parse(x)
        return True
    except ValueError:
        return False


def _is_order(x: Any) -> bool:
    """One neuron order (not a collection of rankings)."""
    if isinstance(x, (np.ndarray, torch.Tensor)):
        return x.ndim == 1 and not (x.dtype == object)
    if isinstance(x, (list, tuple)) and x:
        first = x[0]
        return isinstance(first, (Neuron, int, np.integer)) or _is_neuron_text(first)
    return False


def ranking_items(rankings: Any) -> list[tuple[str | None, Any]]:
    """``(name or None, ranking)`` pairs from a dict, a list, one ranking or an encoded table."""
    if isinstance(rankings, pd.DataFrame):  # an encoded table: its fitted orders index attrs["neurons"]
        orders, neurons = rankings.attrs.get("orders"), rankings.attrs.get("neurons")
        if not orders or not neurons:
            raise ValueError("a table given as rankings must carry attrs['orders'] and attrs['neurons'] "
                             "(as evaluate_encoded's does)")
        return [(str(name), [neurons[int(j)] for j in order]) for name, order in orders.items()]
    if isinstance(rankings, Mapping):
        return [(str(k), v) for k, v in rankings.items()]
    if isinstance(rankings, str) or hasattr(rankings, "order_") or _is_order(rankings):
        return [(None, rankings)]
    items = list(rankings)
    if not items:
        raise ValueError("no rankings given")
    return [(None, r) for r in items]


def _default_name(r: Any, i: int) -> str:
    if isinstance(r, str):
        return r.strip().lower()
    if hasattr(r, "order_"):
        return type(r).__name__.lower()
    return f"ranking{i}"


def columns_to_neurons(cols: Any, site: str, layer: int | None, adapter: ModelAdapter, name: str,
                       neurons: Sequence[Neuron] | None = None) -> list[Neuron]:
    """Column indices (into ``neurons`` if given, else of ``site`` at ``layer``) as neurons."""
    arr = np.asarray(cols.detach().cpu() if isinstance(cols, torch.Tensor) else cols)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"ranking {name!r}: expected neurons or integer column indices, got {arr.dtype} {arr.shape}")
    if neurons is not None:
        if len(arr) and (arr.min() < 0 or arr.max() >= len(neurons)):
            raise ValueError(f"ranking {name!r} has column indices outside 0..{len(neurons) - 1} (neurons=)")
        return [Neuron.parse(neurons[int(i)]) for i in arr]
    if layer is None:
        if adapter.n_layers != 1:
            raise ValueError(f"ranking {name!r} gives column indices: pass layer= (and site=, default "
                             "'mlp.post') to say which neurons they index")
        layer = 0
    return [Neuron(int(layer), int(i), site) for i in arr]


def to_orders(rankings: Any, adapter: ModelAdapter, site: str, layer: int | None,
              neurons: Sequence[Neuron] | None) -> tuple[dict[str, list[Neuron] | None], dict[str, str]]:
    """Name -> neuron order (``None`` for a ranker name still to fit), and name -> ranker name to fit."""
    orders: dict[str, list[Neuron] | None] = {}
    pending: dict[str, str] = {}
    for i, (name, r) in enumerate(ranking_items(rankings)):
        name = name or _default_name(r, i)
        while name in orders:
            name = f"{name}_{i}"
        if isinstance(r, str) and not _is_neuron_text(r):
            pending[name], orders[name] = r, None
        elif hasattr(r, "order_"):
            orders[name] = columns_to_neurons(r.order_, site, layer, adapter, name, neurons)
        elif isinstance(r, (list, tuple)) and r and isinstance(r[0], (Neuron, str)):
            orders[name] = [Neuron.parse(n) for n in r]
        else:
            orders[name] = columns_to_neurons(r, site, layer, adapter, name, neurons)
    if pending and layer is None:
        raise ValueError(f"rankings {list(pending.values())} are ranker names: pass layer= (and site=) to say "
                         "which neurons to rank")
    return orders, pending


def check_order(adapter: ModelAdapter, name: str, order: list[Neuron], k_max: int) -> None:
    """A usable ranking: not empty, neurons of this model, none twice, at least ``k_max`` long."""
    if not order:
        raise ValueError(f"ranking {name!r} is empty")
    adapter.check_neurons(order)
    if len(set(order)) != len(order):
        raise ValueError(f"ranking {name!r} lists a neuron twice")
    if k_max > len(order):
        raise ValueError(f"k={k_max} is larger than ranking {name!r} ({len(order)} neurons)")


def fit_ranker(name: str, X: np.ndarray, y: np.ndarray, groups: np.ndarray, seed: int,
               params: Mapping[str, Mapping[str, Any]] | None = None):
    """Fit the ranker called ``name`` (:func:`tl_neuronprobe.rankers.make_ranker`) on word activations;
    ``params[name]`` (if any) are its constructor parameters (a preset's published settings)."""
    from .. import rankers

    key = name.strip().lower().replace("-", "_")
    return rankers.make_ranker(name, seed=seed, **dict((params or {}).get(key, {}))).fit(X, y, groups=groups)
