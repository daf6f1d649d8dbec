"""Univariate rankers: one score per neuron from its activations and the labels, no probe.

Probeless, MeanDifference, FStatistic, MutualInformation, AveragePrecision and the Random
baseline; the probe-based rankers live in ``_linear.py`` and ``_gaussian.py``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from sklearn.feature_selection import f_classif, mutual_info_classif

from ._base import NeuronRanker

__all__ = ["Probeless", "MeanDifference", "FStatistic", "MutualInformation", "AveragePrecision", "Random"]


class Probeless(NeuronRanker):
    """Antverg & Belinkov (2022): r_i = sum over class pairs |q(z)_i - q(z')_i|.

    ``per_class_[z, i] = sum_{z' != z} |q(z)_i - q(z')_i|``, the per-class variant.
    ``class_means_`` holds q(z).  One pass over the data, no probe.
    """

    def _rank(self, X, y, groups):
        C = len(self.classes_)
        Xt = torch.from_numpy(X)
        yt = torch.from_numpy(y)
        sums = torch.zeros(C, X.shape[1], dtype=torch.float64).index_add_(0, yt, Xt.double())
        q = sums / torch.bincount(yt, minlength=C).double()[:, None]
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
        C = len(self.classes_)
        Xt = torch.from_numpy(X).double()
        yt = torch.from_numpy(y)
        cnt = torch.bincount(yt, minlength=C).double()
        sums = torch.zeros(C, X.shape[1], dtype=torch.float64).index_add_(0, yt, Xt)
        total = sums.sum(0)
        pos = sums / cnt[:, None]
        neg = (total - sums) / (len(y) - cnt)[:, None]
        d = (pos - neg).abs()
        if self.standardize:
            sd = Xt.std(0).clamp_min(1e-12)
            d = d / sd
        self.per_class_ = d.numpy()
        self.scores_ = d.max(0).values.numpy()


class FStatistic(NeuronRanker):
    """ANOVA F statistic of every neuron against the classes (scikit-learn ``f_classif``)."""

    def _rank(self, X, y, groups):
        with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # constant features: handled below
            F, p = f_classif(X, y)
        F = np.where(np.isfinite(F), F, -np.inf)
        self.pvalues_ = p
        self.scores_ = F


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

    def _rank(self, X, y, groups):
        if self.estimator == "sklearn":
            self.scores_ = mutual_info_classif(X, y, random_state=self.seed_) / math.log(2)
            return
        if self.estimator != "binned":
            raise ValueError(f"estimator must be 'binned' or 'sklearn', got {self.estimator!r}")
        C = len(self.classes_)
        N, D = X.shape
        B = int(self.n_bins)
        Xt = torch.from_numpy(X)
        qs = torch.linspace(0, 1, B + 1)[1:-1]
        counts = torch.zeros(C, D, B, dtype=torch.float64)
        yt = torch.from_numpy(y)
        for s in range(0, D, 1024):
            xs = Xt[:, s : s + 1024]
            srt = xs.sort(0).values
            pos = (qs * (N - 1)).round().long()
            edges = srt[pos]  # [B-1, d]
            bins = torch.zeros_like(xs, dtype=torch.long)
            for e in edges:
                bins += (xs > e).long()
            flat = yt[:, None] * (xs.shape[1] * B) + torch.arange(xs.shape[1]) * B + bins
            cnt = torch.bincount(flat.reshape(-1), minlength=C * xs.shape[1] * B)
            counts[:, s : s + xs.shape[1]] = cnt.view(C, xs.shape[1], B).double()
        p = counts / N
        pc = p.sum(2, keepdim=True)  # p(class), per neuron
        pb = p.sum(0, keepdim=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            term = torch.where(p > 0, p * torch.log2(p / (pc * pb)), torch.zeros_like(p))
        self.scores_ = term.sum((0, 2)).numpy()


def _average_precision(X: torch.Tensor, y: torch.Tensor, n_classes: int, chunk: int = 512) -> torch.Tensor:
    """Average precision of every neuron's activation as a score for every class, [C, D].

    Same value as scikit-learn's ``average_precision_score`` (tied activations share one
    threshold).
    """
    N, D = X.shape
    out = torch.zeros(n_classes, D, dtype=torch.float64)
    onehot = torch.nn.functional.one_hot(y, n_classes).double()  # [N, C]
    npos = onehot.sum(0)  # [C]
    ranks = torch.arange(1, N + 1, dtype=torch.float64)
    for s in range(0, D, chunk):
        xs = X[:, s : s + chunk]
        vals, idx = xs.sort(0, descending=True)
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
            ap = torch.maximum(ap, _average_precision(-Xt, yt, C))
        prev = torch.bincount(yt, minlength=C).double() / len(y)
        self.average_precision_ = ap.numpy()
        self.per_class_ = (ap - prev[:, None]).numpy()
        self.scores_ = self.per_class_[1] if C == 2 else self.per_class_.max(0)


class Random(NeuronRanker):
    """A seeded random ranking: the baseline every ranking should beat."""

    def _rank(self, X, y, groups):
        rng = np.random.default_rng(self.seed_)
        self.scores_ = rng.random(X.shape[1])
