"""Univariate rankers: one score per neuron from its activations and the labels, no probe.

Probeless, MeanDifference, FStatistic, MutualInformation, AveragePrecision and the Random
baseline; the probe-based rankers live in ``_linear.py`` and ``_gaussian.py``.
"""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import scipy.stats
import torch
from sklearn.feature_selection import mutual_info_classif

from ._base import NeuronRanker
from ._moments import BinCounts, ClassMoments, binned_mutual_information, histogram_average_precision, quantile_edges
from ._out_of_core import bin_counts, column_sweep, edges_from_sample, gathered_columns

__all__ = ["Probeless", "MeanDifference", "FStatistic", "MutualInformation", "AveragePrecision", "Random"]


class Probeless(NeuronRanker):
    """Antverg & Belinkov (2022)'s class-mean differences: r_i = sum over class pairs w(z, z') |q(z)_i - q(z')_i|.

    ``q(z)`` is the mean activation of class ``z`` (``class_means_``). ``pair_weight`` says how much each pair
    counts, because a class of a few dozen words can otherwise own a neuron's score (GUM's 33-word Number=Ptan
    class made a clothing neuron the #2 Number neuron):

    * ``"frequency"`` (default): ``w(z, z') = p(z) p(z')``, the classes' shares of the fitted words, so ``r_i``
      is half the expected ``|q(z_a)_i - q(z_b)_i|`` over two random words ``a, b``: a class of 30 words in
      3,000 weighs 1% of a pair of big classes per pair it is in;
    * ``"uniform"``: ``w = 1``, the published estimator.

    With two classes both give the same order. ``per_class_[z, i] = sum_{z' != z} w(z, z') |q(z)_i - q(z')_i|``,
    the per-class variant (``scores_`` is half its column sum). ``driver_class_[i]`` names the class whose pairs
    give neuron ``i`` the most score and ``driver_share_[i]`` their share of it (``per_class_[z, i] /
    scores_[i]``: 1 when every pair that counts involves that class; 0 for a neuron with no score); with two
    classes both are in the one pair and the first is named. One pass over the data, no probe.
    """

    def __init__(self, k: int | None = None, pair_weight: str = "frequency", seed: int = 0):
        self._store(locals())

    def _rank(self, X, y, groups):
        self._from_moments(ClassMoments.from_array(X, y, len(self.classes_)))

    def _fit_chunks(self, chunks, y, moments, opts) -> None:
        self._from_moments(moments)  # the in-memory fit uses the same moments

    def _from_moments(self, m: ClassMoments) -> None:
        if self.pair_weight not in ("frequency", "uniform"):
            raise ValueError(f"pair_weight must be 'frequency' or 'uniform', got {self.pair_weight!r}")
        q = m.mean.numpy()
        p = (m.count / m.n).numpy() if self.pair_weight == "frequency" else np.ones(q.shape[0])
        # pair by pair, elementwise: equal neurons get bit-equal scores whatever their column (a batched
        # reduction over [C, C, D] rounded a duplicate column differently out of core)
        per_class = np.zeros_like(q)
        scores = np.zeros(q.shape[1])
        for a, b in combinations(range(q.shape[0]), 2):
            d = p[a] * p[b] * np.abs(q[a] - q[b])
            per_class[a] += d
            per_class[b] += d
            scores += d
        self.class_means_, self.per_class_, self.scores_ = q, per_class, scores
        driver = per_class.argmax(0)
        self.driver_class_ = np.asarray(self.classes_)[driver]
        top = per_class[driver, np.arange(q.shape[1])]
        self.driver_share_ = np.divide(top, self.scores_, out=np.zeros_like(top), where=self.scores_ > 0)


class MeanDifference(NeuronRanker):
    """Gurnee et al. (2023): |E[h | class] - E[h | rest]| (one-vs-rest per class).

    ``per_class_`` holds the one-vs-rest differences; ``scores_`` is their maximum over
    classes (for two classes both rows are equal).  ``standardize=True`` divides by the
    neuron's standard deviation (the published default is raw activations).
    """

    def __init__(self, k: int | None = None, standardize: bool = False, seed: int = 0):
        self._store(locals())

    def _rank(self, X, y, groups):
        self._from_moments(ClassMoments.from_array(X, y, len(self.classes_)))

    def _fit_chunks(self, chunks, y, moments, opts) -> None:
        self._from_moments(moments)  # the in-memory fit uses the same moments

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

    def _fit_chunks(self, chunks, y, moments, opts) -> None:
        self._from_moments(moments)  # the in-memory fit uses the same moments

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

    def __init__(self, k: int | None = None, n_bins: int = 16, estimator: str = "binned", seed: int = 0):
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

    def _fit_chunks(self, chunks, y, moments, opts) -> None:
        self._check_estimator()
        if self.estimator != "binned":
            raise ValueError("MutualInformation(estimator='sklearn') (k-NN) needs X in memory; out of core use "
                             "estimator='binned'")
        C, B = len(self.classes_), int(self.n_bins)
        if opts["exact"]:  # every neuron's MI depends on its column alone: exact, block by block
            self.edge_rows_ = chunks.n_rows
            counts = torch.zeros(C, B, chunks.n_neurons, dtype=torch.float64)  # neurons last, for the gather
            done = np.zeros(chunks.n_neurons, dtype=bool)
            for cols, block, temp_cols in column_sweep(self, chunks, 16):
                part = BinCounts(quantile_edges(block, B, block=temp_cols), C)
                part.update(block, y)
                counts[:, :, cols] = part.table().transpose(1, 2)
                done[cols] = True
            counts = gathered_columns(counts, done).transpose(1, 2)
        else:
            edges, self.edge_rows_ = edges_from_sample(chunks, B)
            counts = bin_counts(chunks, y, edges, C)
            self.n_passes_ += 2
        self._from_counts(counts)

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

    def __init__(self, k: int | None = None, direction: str = "both", seed: int = 0):
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

    def _fit_chunks(self, chunks, y, moments, opts) -> None:
        if self.direction not in ("both", "positive"):
            raise ValueError(f"direction must be 'both' or 'positive', got {self.direction!r}")
        C = len(self.classes_)
        if opts["exact"]:
            ap = torch.zeros(C, chunks.n_neurons, dtype=torch.float64)
            done = np.zeros(chunks.n_neurons, dtype=bool)
            yt = torch.from_numpy(y)
            for cols, block, temp_cols in column_sweep(self, chunks, 128):  # sort, tie ends, cumsums: < 128 B
                ap[:, cols] = _average_precision(block, yt, C, chunk=temp_cols)
                if self.direction == "both":
                    neg = _average_precision(block, yt, C, chunk=temp_cols, descending=False)
                    ap[:, cols] = torch.maximum(ap[:, cols], neg)
                done[cols] = True
            ap = gathered_columns(ap, done)
            self.bins_ = None
        else:
            edges, m = edges_from_sample(chunks, opts["bins"])
            counts = bin_counts(chunks, y, edges, C)
            self.n_passes_ += 2
            ap = histogram_average_precision(counts, descending=True)
            if self.direction == "both":
                ap = torch.maximum(ap, histogram_average_precision(counts, descending=False))
            self.bins_ = opts["bins"]
        prev = moments.count / moments.n
        self.average_precision_ = ap.numpy()
        self.per_class_ = (ap - prev[:, None]).numpy()
        self.scores_ = self.per_class_[1] if C == 2 else self.per_class_.max(0)


class Random(NeuronRanker):
    """A seeded random ranking: the baseline every ranking should beat."""

    def _fit_chunks(self, chunks, y, moments, opts) -> None:
        self._rank(np.empty((0, chunks.n_neurons), dtype=np.float32), y[:0], None)

    def _rank(self, X, y, groups):
        rng = np.random.default_rng(self.seed_)
        self.scores_ = rng.random(X.shape[1])
