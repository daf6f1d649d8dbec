"""Durrani et al.'s searches around a ``Linear`` ranker: the (l1, l2) grid and the minimal subset.

Both return a result object and leave the ranker they are given as it is (its parameters and its
fit); what they fit is a fresh copy (``sklearn.base.clone``).  Not the ranker itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from sklearn.base import clone

from ..core.validation import check_groups, check_k, check_X, check_y, split_indices
from ..probes import LogisticProbes, renamed_param, softmax_logits

__all__ = ["LambdaSearch", "MinimalSubset", "search_lambdas", "minimal_subset"]

DEFAULT_LAMBDAS = (0.0, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


@dataclass
class LambdaSearch:
    """Result of :func:`search_lambdas`: the chosen penalties, one row per setting
    (``l1, l2, accuracy, chosen``) and, with ``refit``, a ranker fitted with the choice."""

    l1: float
    l2: float
    table: pd.DataFrame = field(repr=False)
    ranker: Any = field(default=None, repr=False)


@dataclass
class MinimalSubset:
    """Result of :func:`minimal_subset`; ``ranker`` is the copy fitted on the training split."""

    k: int
    share: float
    neurons: np.ndarray
    accuracy: float
    oracle_accuracy: float
    curve: pd.DataFrame = field(repr=False)
    ranker: Any = field(default=None, repr=False)


def _split(ranker, X: Any, y: Any, groups: Any, test_size: float):
    """Checked data and the seeded train/held-out split by group, shared by both searches."""
    Xn = check_X(X)
    y_enc, classes = check_y(y, Xn.shape[0])
    groups = check_groups(groups, Xn.shape[0])
    seed = int(renamed_param(ranker, "seed", "random_state"))
    tr, te = split_indices(len(y_enc), test_size, groups=groups, y=y_enc, seed=seed, min_train_per_class=2)
    return Xn, y_enc, classes, groups, tr, te, seed


def _choose(grid: list[tuple[float, float]], acc: np.ndarray, tolerance: float) -> pd.DataFrame:
    """The most regularized setting within ``tolerance`` of the unregularized probe's accuracy."""
    table = pd.DataFrame({"l1": [g[0] for g in grid], "l2": [g[1] for g in grid], "accuracy": acc})
    base = float(table.loc[(table.l1 == 0) & (table.l2 == 0), "accuracy"].iloc[0])
    ok = table[table.accuracy >= base - tolerance]
    best = ok.assign(total=ok.l1 + ok.l2).sort_values(["total", "l1"], ascending=False).index[0]
    table["chosen"] = table.index == best
    return table


def search_lambdas(ranker, X: Any, y: Any, grid: Sequence[tuple[float, float]] | None = None,
                   tolerance: float = 0.01, test_size: float = 0.2, groups: Any = None,
                   refit: bool = True) -> LambdaSearch:
    """Grid search over (l1, l2) for a ``Linear`` ranker: keep the most regularized setting whose
    held-out accuracy stays within ``tolerance`` of the unregularized probe (Durrani et al. 2020).

    All settings are trained at once (one weight matrix) with the ranker's other settings.
    """
    Xn, y_enc, classes, groups, tr, te, seed = _split(ranker, X, y, groups, test_size)
    grid = [(float(a), float(b)) for a, b in (grid or [(a, b) for a in DEFAULT_LAMBDAS for b in DEFAULT_LAMBDAS])]
    if (0.0, 0.0) not in grid:
        grid = [(0.0, 0.0)] + grid
    W, b, mean, scale, _ = ranker._train(
        Xn[tr], y_enc[tr], len(classes), None if groups is None else groups[tr],
        [g[0] for g in grid], [g[1] for g in grid], seed, False, desc="lambda grid",
    )
    with torch.no_grad():
        logit = softmax_logits(torch.from_numpy(Xn[te]), W, b, mean, scale)
    table = _choose(grid, (logit.argmax(-1).numpy() == y_enc[te][:, None]).mean(0), tolerance)
    chosen = table[table.chosen].iloc[0]
    l1, l2 = float(chosen.l1), float(chosen.l2)
    fitted = clone(ranker).set_params(l1=l1, l2=l2).fit(Xn, classes[y_enc], groups=groups) if refit else None
    return LambdaSearch(l1=l1, l2=l2, table=table, ranker=fitted)


def _bisect(results: dict[int, float], evaluate, ks: list[int], target: float) -> int:
    """The smallest k reaching ``target``: the first passing grid point, refined by bisection."""
    k_hi = min(k for k in ks if results[k] >= target)
    below = [k for k in ks if k < k_hi]
    k_lo = max(below) if below else 0
    while k_hi - k_lo > 1:
        mid = (k_lo + k_hi) // 2
        evaluate([mid])
        k_lo, k_hi = (k_lo, mid) if results[mid] >= target else (mid, k_hi)
    return k_hi


def minimal_subset(ranker, X: Any, y: Any, delta: float = 0.01, ks: Sequence[int] | None = None,
                   test_size: float = 0.2, groups: Any = None, probe: LogisticProbes | None = None) -> MinimalSubset:
    """The fewest top neurons whose retrained probe reaches the oracle accuracy within ``delta``.

    A copy of the ranker is fitted on a training split; a fresh logistic probe is trained on
    all neurons (the oracle) and on the top-k for a coarse grid of k, then k is refined by
    bisection between the last failing and first passing grid point.
    """
    Xn, y_enc, classes, groups, tr, te, seed = _split(ranker, X, y, groups, test_size)
    D = Xn.shape[1]
    gtr = None if groups is None else groups[tr]
    fitted = clone(ranker).fit(Xn[tr], classes[y_enc[tr]], groups=gtr)
    order = fitted.order_
    probe = probe if probe is not None else LogisticProbes(seed=seed)
    if ks is None:
        ks = sorted({int(round(1.5**i)) for i in range(0, 64) if 1.5**i <= D} | {D})
    ks = sorted({check_k(int(k), D) for k in ks} | {D})
    results: dict[int, float] = {}

    def evaluate(kk: list[int]) -> None:
        kk = [k for k in kk if k not in results]
        if kk:
            probe.fit(Xn[tr], y_enc[tr], [order[:k] for k in kk], groups=gtr)
            results.update(zip(kk, probe.subset_scores(Xn[te], y_enc[te]).astype(float).tolist()))

    evaluate(ks)
    k = _bisect(results, evaluate, ks, results[D] - delta)
    curve = pd.DataFrame(sorted(results.items()), columns=["k", "accuracy"])
    return MinimalSubset(k=k, share=k / D, neurons=order[:k].copy(), accuracy=results[k],
                         oracle_accuracy=results[D], curve=curve, ranker=fitted)
