"""Durrani et al.'s searches around a ``Linear`` ranker: the (l1, l2) grid (``LinearCV``, an estimator of
its own, like scikit-learn's ``LogisticRegressionCV``) and the minimal subset (a result object).

Neither changes the ranker it is given (its parameters or its fit); what they fit is a fresh copy
(``sklearn.base.clone``).  Not the ranker itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from sklearn.base import clone
from sklearn.utils.validation import check_is_fitted

from ..core.validation import check_groups, check_k, check_X, check_y, split_indices
from ..probes import LogisticProbes, softmax_logits
from ._base import NeuronRanker

__all__ = ["LinearCV", "MinimalSubset", "minimal_subset"]

DEFAULT_LAMBDAS = (0.0, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


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
    seed = int(ranker.seed)
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


class LinearCV(NeuronRanker):
    """A ``Linear`` ranker whose (l1, l2) is chosen by Durrani et al. (2020)'s grid search, like
    scikit-learn's ``LogisticRegressionCV``.

    ``fit`` trains one probe per ``grid`` setting at once (one weight matrix, ``estimator``'s trainer) on a
    seeded training split (by group), keeps the most regularized setting whose held-out accuracy stays within
    ``tolerance`` of the unregularized probe's, then fits a copy of ``estimator`` with it on every row.
    ``estimator`` itself is left as it is.

    Parameters
    ----------
    estimator : Linear, optional
        The ranker whose penalties are searched (default ``Linear()``).
    grid : sequence of (l1, l2), optional
        The settings tried (default every pair of 0, 1e-5, ..., 1e-1); (0, 0) is always added.
    tolerance : float
        Accuracy the chosen setting may lose against the unregularized probe.
    test_size : float
        The held-out share.
    k : int, optional
        The selector's number of neurons (``transform``), as every ranker's.
    seed : int
        The split and the grid's training.

    Attributes
    ----------
    l1_, l2_ : the chosen penalties; ``cv_results_`` (``l1, l2, accuracy, chosen``, one row per setting);
    ``estimator_`` (the fitted ``Linear``); ``order_``, ``scores_``, ``per_class_`` (its).

    Examples
    --------
    >>> import numpy as np
    >>> from tl_neuronprobe.rankers import Linear, LinearCV
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 400)
    >>> X = rng.normal(size=(400, 20)).astype("float32"); X[:, 7] += 3 * y
    >>> cv = LinearCV(Linear(refine_k=0), grid=[(1e-3, 0.0), (1e-2, 1e-2)]).fit(X, y)
    >>> int(cv.order_[0]), cv.estimator_.l1 == cv.l1_
    (7, True)
    """

    def __init__(self, estimator: Any = None, grid: Sequence[tuple[float, float]] | None = None,
                 tolerance: float = 0.01, test_size: float = 0.2, k: int | None = None, seed: int = 0):
        self._store(locals())

    def _rank(self, X, y, groups):
        from ._linear import Linear
        estimator = Linear() if self.estimator is None else self.estimator
        tr, te = split_indices(len(y), self.test_size, groups=groups, y=y, seed=self.seed_, min_train_per_class=2)
        grid = [(float(a), float(b)) for a, b in (self.grid or [(a, b) for a in DEFAULT_LAMBDAS
                                                                 for b in DEFAULT_LAMBDAS])]
        if (0.0, 0.0) not in grid:
            grid = [(0.0, 0.0)] + grid
        W, b, mean, scale, _ = estimator._train(
            X[tr], y[tr], len(self.classes_), None if groups is None else groups[tr],
            [g[0] for g in grid], [g[1] for g in grid], self.seed_, False, desc="lambda grid",
        )
        with torch.no_grad():
            logit = softmax_logits(torch.from_numpy(X[te]), W, b, mean, scale)
        self.cv_results_ = _choose(grid, (logit.argmax(-1).numpy() == y[te][:, None]).mean(0), self.tolerance)
        chosen = self.cv_results_[self.cv_results_.chosen].iloc[0]
        self.l1_, self.l2_ = float(chosen.l1), float(chosen.l2)
        self.estimator_ = clone(estimator).set_params(l1=self.l1_, l2=self.l2_).fit(X, self.classes_[y],
                                                                                    groups=groups)
        self.order_, self.scores_ = self.estimator_.order_.copy(), self.estimator_.scores_.copy()
        self.per_class_ = self.estimator_.per_class_

    def decision_function(self, X: Any) -> np.ndarray:
        """Logits of the fitted ``estimator_``, ``[N, C]``."""
        check_is_fitted(self, "estimator_")
        return self.estimator_.decision_function(X)

    def predict(self, X: Any) -> np.ndarray:
        """Labels predicted by the fitted ``estimator_``."""
        check_is_fitted(self, "estimator_")
        return self.estimator_.predict(X)


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
