"""Univariate rankers: one score per neuron from its activations and the labels, no probe.

Probeless, MeanDifference, FStatistic, MutualInformation, AveragePrecision and the Random
baseline; the probe-based rankers live in ``_linear.py`` and ``_gaussian.py``.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.stats
import torch
from sklearn.feature_selection import mutual_info_classif

from ._base import NeuronRanker
from ._moments import BinCounts, ClassMoments, binned_mutual_information, quantile_edges

__all__ = ["Probeless", "MeanDifference", "FStatistic", "MutualInformation", "AveragePrecision", "Random"]


class Probeless(NeuronRanker):
    """Antverg & Belinkov (2022): r_i = sum over class pairs |q(z)_i - q(z')_i|.

    ``per_class_[z, i] = sum_{z' != z} |q(z)_i - q(z')_i|``, the per-class variant.
    ``class_means_`` holds q(z).  One pass over the data, no probe.
    """

    def _rank(self, X, y, groups):
        self._from_moments(ClassMoments.from_array(X, y, len(self.classes_)))

    def _from_moments(self, m: ClassMoments) -> None:
        q = m.mean
        diff = (q[:, None, :] - q[None, :, :]).abs()  # [C, C, D]
        self.class_means_ = q.numpy()
        self.per_class_ = diff.sum(1).numpy()
        self.scores_ = (diff.sum((0, 1)) / 2).numpy()


class MeanDifference(NeuronRanker):
    """Gurnee et al. (2023): |E[h | class] - E[h | rest]| (one-vs-rest per class).

    ``per_class_`` holds the one-vs-rest differences; ``scores_`` is their maximum over
    classes (for two classes both rows are equal).  ``standardize=True`` divides by the
    neuron's standard deviation (the published default is raw activations).
    """

    def __init__(self, k: int | None = None, standardize: bool = False, seed: int = 0,
                 random_state: int | None = None):
        self._store(locals())

    def _rank(self, X, y, groups):
        self._from_moments(ClassMoments.from_array(X, y, len(self.classes_)))

    def _from_moments(self, m: ClassMoments) -> None:
        sums = m.sums()
        pos = m.mean
        neg = (sums.sum(0) - sums) / (m.n - m.count)[:, None]
        d = (pos - neg).abs()
        if self.standardize:
            d = d / m.variance(ddof=1).sqrt().clamp_min(1e-12)
        self.per_class_ = d.numpy()
        self.scores_ = d.max(0).values.numpy()


class FStatistic(NeuronRanker):
    """ANOVA F statistic of every neuron against the classes (the value of scikit-learn's ``f_classif``,
    computed from float64 per-class moments: the same numbers in memory and out of core)."""

    def _rank(self, X, y, groups):
        self._from_moments(ClassMoments.from_array(X, y, len(self.classes_)))

    def _from_moments(self, m: ClassMoments) -> None:
        C, N = m.count.shape[0], m.n
        with np.errstate(divide="ignore", invalid="ignore"):
            F = ((m.between() / (C - 1)) / (m.within() / (N - C))).numpy()
            self.pvalues_ = scipy.stats.f.sf(F, C - 1, N - C)
        self.scores_ = np.where(np.isfinite(F), F, -np.inf)


class MutualInformation(NeuronRanker):
    """Mutual information (bits) between a neuron and the class.

    ``estimator="binned"`` (default, fast and vectorized): each neuron is cut into
    ``n_bins`` quantile bins and I(bin; class) is computed from the counts (plug-in
    estimate).  ``estimator="sklearn"`` uses scikit-learn's k-NN ``mutual_info_classif``
    (Gurnee et al.'s choice; slow on thousands of neurons).
    """

    def __init__(self, k: int | None = None, n_bins: int = 16, estimator: str = "binned", seed: int = 0,
                 random_state: int | None = None):
        self._store(locals())

    def _check_estimator(self) -> None:
        if self.estimator not in ("binned", "sklearn"):
            raise ValueError(f"estimator must be 'binned' or 'sklearn', got {self.estimator!r}")

    def _rank(self, X, y, groups):
        self._check_estimator()
        if self.estimator == "sklearn":
            self.scores_ = mutual_info_classif(X, y, random_state=self.seed_) / math.log(2)
            return
        counts = BinCounts(quantile_edges(X, int(self.n_bins)), len(self.classes_))
        counts.update(X, y)
        self._from_counts(counts.table())

    def _from_counts(self, counts) -> None:
        self.scores_ = binned_mutual_information(counts)


def _average_precision(X: torch.Tensor, y: torch.Tensor, n_classes: int, chunk: int = 512,
                       descending: bool = True) -> torch.Tensor:
    """Average precision of every neuron's activation as a score for every class, [C, D].

    Same value as scikit-learn's ``average_precision_score`` (tied activations share one
    threshold). ``descending=False`` scores the negated activation (-X) without a copy of X.
    """
    N, D = X.shape
    out = torch.zeros(n_classes, D, dtype=torch.float64)
    onehot = torch.nn.functional.one_hot(y, n_classes).double()  # [N, C]
    npos = onehot.sum(0)  # [C]
    ranks = torch.arange(1, N + 1, dtype=torch.float64)
    for s in range(0, D, chunk):
        xs = X[:, s : s + chunk]
        vals, idx = xs.sort(0, descending=descending)
        # position of the last element of each tie group
        is_end = torch.ones_like(vals, dtype=torch.bool)
        is_end[:-1] = vals[:-1] != vals[1:]
        pos = torch.where(is_end, torch.arange(N)[:, None].expand_as(vals), torch.full_like(idx, N))
        end = pos.flip(0).cummin(0).values.flip(0)  # [N, d]
        for c in range(n_classes):
            lab = onehot[:, c][idx]  # [N, d]
            tp = lab.cumsum(0)
            prec_end = tp.gather(0, end) / ranks[end]
            out[c, s : s + chunk] = (lab * prec_end).sum(0) / npos[c]
    return out


class AveragePrecision(NeuronRanker):
    """Per-neuron average precision of the activation for a class (the toolkit's "IoU").

    ``per_class_[z, i]`` is AP(h_i, class z) minus the class prevalence (chance level).
    With ``direction="both"`` (default) a neuron may also signal a class by firing *less*:
    the better of AP(h) and AP(-h) counts; ``direction="positive"`` is the published
    behaviour.  Binary labels: ``scores_`` is the row of the second class (``classes_[1]``);
    more classes: the maximum over classes.
    """

    def __init__(self, k: int | None = None, direction: str = "both", seed: int = 0,
                 random_state: int | None = None):
        self._store(locals())

    def _rank(self, X, y, groups):
        if self.direction not in ("both", "positive"):
            raise ValueError(f"direction must be 'both' or 'positive', got {self.direction!r}")
        C = len(self.classes_)
        Xt = torch.from_numpy(X)
        yt = torch.from_numpy(y)
        ap = _average_precision(Xt, yt, C)
        if self.direction == "both":
            ap = torch.maximum(ap, _average_precision(Xt, yt, C, descending=False))
        prev = torch.bincount(yt, minlength=C).double() / len(y)
        self.average_precision_ = ap.numpy()
        self.per_class_ = (ap - prev[:, None]).numpy()
        self.scores_ = self.per_class_[1] if C == 2 else self.per_class_.max(0)


class Random(NeuronRanker):
    """A seeded random ranking: the baseline every ranking should beat."""

    def _rank(self, X, y, groups):
        rng = np.random.default_rng(self.seed_)
        self.scores_ = rng.random(X.shape[1])
