"""Rankings as the used evaluation takes them, turned into neuron orders; not for fitting rankers themselves.

A ranking is a neuron order (``Neuron`` objects or ``'L1.N5'`` strings, or column indices into ``neurons=`` or
of ``site`` at ``layer``), a fitted ranker (anything with ``order_``), a ranker name fitted later on the fit
corpus, a ranking file (``.txt``, ``.json`` or ``.csv``, see :func:`read_ranking_file`), or an
:class:`~tl_neuronprobe.evaluation.encoded.EncodedResult` or an
:class:`~tl_neuronprobe.evaluation.attribution.Attribution` (its ``rankings``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from ..core.adapter import ModelAdapter
from ..core.neurons import Neuron, parse_neurons

__all__ = ["ranking_items", "to_orders", "columns_to_neurons", "check_order", "fit_ranker", "read_ranking_file",
           "RANKING_SUFFIXES"]

#: the file types a ranking can be read from
RANKING_SUFFIXES = (".txt", ".json", ".csv")


def _read_csv_ranking(path: Path) -> dict[str, list[Neuron]]:
    df = pd.read_csv(path)
    if "neuron" not in df.columns:
        raise ValueError(f"{path}: a ranking CSV needs a 'neuron' column (has {list(df.columns)})")
    group = "ranking" if "ranking" in df.columns else None
    if "rank" in df.columns:
        df = df.sort_values([c for c in (group, "rank") if c], kind="stable")
    if group is None:
        return {path.stem: parse_neurons(df["neuron"].astype(str))}
    return {str(g): parse_neurons(d["neuron"].astype(str)) for g, d in df.groupby(group, sort=False)}


def read_ranking_file(path: "str | Path") -> dict[str, list[Neuron]]:
    """Rankings from a file, best first: ``.txt`` (one neuron per line, or comma-separated), ``.json`` (a list,
    or a dict name -> list) or ``.csv`` (a ``neuron`` column, optionally grouped by ``ranking`` and ordered by
    ``rank``, as ``EncodedResult.top_neurons`` and ``tl-neuronprobe rank`` write it)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"ranking file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".json":
        data = json.loads(path.read_text())
        if isinstance(data, dict):
            return {str(k): parse_neurons(v) for k, v in data.items()}
        return {path.stem: parse_neurons(data)}
    if suffix == ".csv":
        return _read_csv_ranking(path)
    return {path.stem: parse_neurons(path.read_text().replace("\n", ","))}


def _one_ranking(path: "str | Path") -> list[Neuron]:
    """The one ranking a file holds (a file of several, given under one name, is an error)."""
    found = read_ranking_file(path)
    if len(found) != 1:
        raise ValueError(f"{path} holds {len(found)} rankings ({sorted(found)}); give it without a name")
    return next(iter(found.values()))


def _is_file(x: Any) -> bool:
    return isinstance(x, Path) or (isinstance(x, str) and Path(x).suffix.lower() in RANKING_SUFFIXES)


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
    """``(name or None, ranking)`` pairs from an encoded result or an attribution, a dict, a list, one ranking or
    a ranking file (a file holding several rankings gives each under its name)."""
    if isinstance(rankings, pd.DataFrame):
        raise TypeError("a table is not a ranking: pass the EncodedResult itself (its .rankings), or a dict "
                        "name -> neurons")
    kind = getattr(rankings, "kind", None)
    if kind in ("encoded", "attribution") and isinstance(getattr(rankings, "rankings", None), Mapping):
        if not rankings.rankings:
            raise ValueError(f"the {kind} result has no rankings")
        return [(str(name), list(order)) for name, order in rankings.rankings.items()]
    if _is_file(rankings):
        return [(str(k), v) for k, v in read_ranking_file(rankings).items()]
    if isinstance(rankings, Mapping):
        return [(str(k), _one_ranking(v) if _is_file(v) else v) for k, v in rankings.items()]
    if isinstance(rankings, str) or hasattr(rankings, "order_") or _is_order(rankings):
        return [(None, rankings)]
    items = list(rankings)
    if not items:
        raise ValueError("no rankings given")
    out: list[tuple[str | None, Any]] = []
    for r in items:
        out += [(str(k), v) for k, v in read_ranking_file(r).items()] if _is_file(r) else [(None, r)]
    return out


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
