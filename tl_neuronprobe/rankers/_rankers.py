"""Neuron rankers: which neurons encode an attribute?

Every ranker is a scikit-learn estimator and feature selector::

    r = tnp.rankers.Probeless().fit(X, y)      # X [n_words, n_neurons], y labels
    r.order_        # every neuron, best first
    r.scores_       # one score per neuron (higher is better)
    r.per_class_    # [n_classes, n_neurons] per-class scores, where the method has them
    Pipeline([("select", tnp.rankers.Linear(k=50)), ("clf", LogisticRegression())])

``k=None`` keeps every neuron; ``k`` keeps ``order_[:k]``.  Rankers that fit a probe
(:class:`Linear`, :class:`Gaussian`, :class:`L1`) also expose ``predict`` and ``score``.

Input handling, shared by all rankers: NaN/inf raise (naming rows and columns); X and y
of different lengths raise; fewer than two classes, or a class with a single example,
raise (naming the class); ``k`` larger than the number of neurons raises.  Constant
neurons (no variance in the fitted data) get the worst score and go last, flagged in
``constant_``.  Duplicate neurons are ranked independently (equal scores, ties broken by
index); the greedy Gaussian ranker does not pick a duplicate of a chosen neuron early,
since it adds no information.  Everything random is seeded by ``random_state``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator
from sklearn.feature_selection import SelectorMixin
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from ..core.validation import few_threads, check_groups, check_k, check_X, check_y, resolve_device, split_indices, to_numpy
from ..probes import GaussianProbe, LogisticProbes, softmax_logits, standardization, train_softmax

__all__ = [
    "NeuronRanker",
    "Linear",
    "Gaussian",
    "Probeless",
    "MeanDifference",
    "FStatistic",
    "MutualInformation",
    "L1",
    "AveragePrecision",
    "Random",
    "MinimalSubset",
    "weight_mass_order",
    "make_ranker",
    "RANKERS",
]


def _constant_columns(X: np.ndarray) -> np.ndarray:
    return np.ptp(X, axis=0) == 0


def _order_from_scores(scores: np.ndarray, constant: np.ndarray | None = None) -> np.ndarray:
    """Indices sorted by descending score, ties by index; constant/NaN scores last."""
    s = np.asarray(scores, dtype=np.float64).copy()
    s[~np.isfinite(s)] = -np.inf
    if constant is not None:
        s[constant] = -np.inf
    # lexsort: last key is primary
    return np.lexsort((np.arange(len(s)), -s)).astype(np.int64)


class NeuronRanker(SelectorMixin, BaseEstimator):
    """Base class: validation, ``order_``, ``scores_`` and the selector interface."""

    _min_class_count = 2

    def __init__(self, k: int | None = None, random_state: int = 0):
        self.k = k
        self.random_state = random_state

    # -- subclass hook ---------------------------------------------------------------------
    def _rank(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None) -> None:
        """Set ``scores_`` (and ``per_class_``); may set ``order_`` itself."""
        raise NotImplementedError

    # -- public API ------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, groups: Any = None) -> "NeuronRanker":
        """Rank the neurons (columns) of ``X`` for labels ``y``.

        ``groups`` (e.g. sentence ids) keeps whole groups on one side of any internal
        train/dev split.
        """
        Xn = check_X(X)
        y_enc, classes = check_y(y, Xn.shape[0], min_count=self._min_class_count)
        groups = check_groups(groups, Xn.shape[0])
        check_k(self.k, Xn.shape[1])
        self.classes_ = classes
        self.n_features_in_ = Xn.shape[1]
        self.constant_ = _constant_columns(Xn)
        if hasattr(self, "order_"):
            del self.order_
        self._rank(Xn, y_enc, groups)
        if not hasattr(self, "order_") or self.order_ is None:
            self.order_ = _order_from_scores(self.scores_, self.constant_)
        self.scores_ = np.asarray(self.scores_, dtype=np.float64)
        self.scores_[self.constant_] = -np.inf
        return self

    def top(self, k: int) -> np.ndarray:
        """Indices of the ``k`` best neurons."""
        check_is_fitted(self, "order_")
        k = check_k(k, self.n_features_in_)
        return self.order_[:k].copy()

    @property
    def ranks_(self) -> np.ndarray:
        """Rank of every neuron (0 = best)."""
        check_is_fitted(self, "order_")
        r = np.empty_like(self.order_)
        r[self.order_] = np.arange(len(self.order_))
        return r

    def _get_support_mask(self) -> np.ndarray:
        check_is_fitted(self, "order_")
        k = check_k(self.k, self.n_features_in_)
        mask = np.zeros(self.n_features_in_, dtype=bool)
        mask[self.order_ if k is None else self.order_[:k]] = True
        return mask

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags


# ========================================================================================
# score-based rankers
# ========================================================================================


class Probeless(NeuronRanker):
    """Antverg & Belinkov (2022): r_i = sum over class pairs |q(z)_i - q(z')_i|.

    ``per_class_[z, i] = sum_{z' != z} |q(z)_i - q(z')_i|``, the per-class variant.
    ``class_means_`` holds q(z).  One pass over the data, no probe.
    """

    def __init__(self, k: int | None = None, random_state: int = 0):
        super().__init__(k=k, random_state=random_state)

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

    def __init__(self, k: int | None = None, standardize: bool = False, random_state: int = 0):
        super().__init__(k=k, random_state=random_state)
        self.standardize = standardize

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

    def __init__(self, k: int | None = None, random_state: int = 0):
        super().__init__(k=k, random_state=random_state)

    def _rank(self, X, y, groups):
        from sklearn.feature_selection import f_classif

        import warnings

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

    def __init__(self, k: int | None = None, n_bins: int = 16, estimator: str = "binned", random_state: int = 0):
        super().__init__(k=k, random_state=random_state)
        self.n_bins = n_bins
        self.estimator = estimator

    def _rank(self, X, y, groups):
        if self.estimator == "sklearn":
            from sklearn.feature_selection import mutual_info_classif

            self.scores_ = mutual_info_classif(X, y, random_state=self.random_state) / math.log(2)
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

    def __init__(self, k: int | None = None, direction: str = "both", random_state: int = 0):
        super().__init__(k=k, random_state=random_state)
        self.direction = direction

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

    def __init__(self, k: int | None = None, random_state: int = 0):
        super().__init__(k=k, random_state=random_state)

    def _rank(self, X, y, groups):
        rng = np.random.default_rng(self.random_state)
        self.scores_ = rng.random(X.shape[1])


# ========================================================================================
# probe-based rankers
# ========================================================================================


def weight_mass_order(W: Any, steps: int = 100) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Weight-mass ordering of Dalvi et al. (2019) / Durrani et al. (2020).

    For class c, sort |W_c,i| descending and take the smallest prefix whose cumulative sum
    reaches p * sum_i |W_c,i| (at least one neuron); the top set at p is the union over
    classes.  p sweeps 0, 1/steps, ..., 1 and neurons are appended as they enter.  Ties
    within one step (the toolkit leaves them in set-iteration order) are broken by the
    neuron's total absolute weight over classes, then by index: the first step alone adds
    one neuron per class and the next ones add hundreds, so this decides the small-k sets.
    (The largest-share tie-break suggested in the methods notes favours rare classes, whose
    weight sits on few neurons; on the synthetic benchmark its top-10 retrained up to 6 points
    worse, docs/rankers.md.)  Neurons with zero weight everywhere come last.

    Returns ``(order, entry_step, share, score)``: ``share [C, D]`` is |W_c,i| / sum_i |W_c,i|,
    ``entry_step [D]`` the step at which each neuron enters (``steps + 1`` = never), and
    ``score`` a number whose descending order is ``order``.
    """
    A = np.abs(to_numpy(W).astype(np.float64))
    if A.ndim != 2:
        raise ValueError("W must be [n_classes, n_neurons]")
    C, D = A.shape
    tot = A.sum(1, keepdims=True)
    share = np.divide(A, tot, out=np.zeros_like(A), where=tot > 0)
    idx = np.argsort(-share, axis=1, kind="stable")
    srt = np.take_along_axis(share, idx, axis=1)
    before = np.cumsum(srt, axis=1) - srt  # class mass strictly ahead of each neuron
    step_sorted = np.floor(before * steps + 1e-9).astype(np.int64) + 1
    step_sorted[:, 0] = 0
    # never reached: all the mass is already ahead of it (zero weights)
    step_sorted[(before >= 1 - 1e-9) | (srt <= 0)] = steps + 1
    step_sorted[tot[:, 0] <= 0, :] = steps + 1
    step_sorted = np.minimum(step_sorted, steps + 1)
    entry = np.full((C, D), steps + 1, dtype=np.int64)
    np.put_along_axis(entry, idx, step_sorted, axis=1)
    entry_step = entry.min(0)
    total = A.sum(0)
    tie = total / total.max() if total.max() > 0 else total  # in [0, 1]
    order = np.lexsort((np.arange(D), -tie, entry_step)).astype(np.int64)
    score = (steps + 1 - entry_step) + 0.5 * tie
    return order, entry_step, share, score


_PRESETS = {
    # cleaner default: standardized inputs, shuffled large batches, early stopping
    # l2 = 0.1 (Fan et al. 2023's value): the L2 part of the elastic net gives correlated neurons
    # similar weights, which makes the weight-mass ranking stable across seeds (docs/rankers.md)
    "fast": dict(l1=1e-3, l2=0.1, standardize=True, lr="auto", batch_size="auto", epochs=10, shuffle=True, early_stopping=False,
                 init="zeros", min_steps=300, solver="auto", average=True),
    # NeuroX toolkit: 10 epochs, batch 32, Adam 1e-3, no shuffling, no standardization
    "neurox": dict(l1=1e-3, l2=1e-3, standardize=False, lr=1e-3, batch_size=32, epochs=10, shuffle=False, early_stopping=False,
                   init="torch", min_steps=0, solver="adam"),
    # Antverg & Belinkov's code: Adam 1e-2, batch 32, 10 epochs
    "antverg": dict(l1=1e-3, l2=1e-2, standardize=False, lr=1e-2, batch_size=32, epochs=10, shuffle=True, early_stopping=False,
                    init="torch", min_steps=0, solver="adam"),
}


@dataclass
class MinimalSubset:
    """Result of :meth:`Linear.minimal_subset`."""

    k: int
    share: float
    neurons: np.ndarray
    accuracy: float
    oracle_accuracy: float
    curve: pd.DataFrame = field(repr=False)


class Linear(NeuronRanker):
    """Linguistic correlation analysis (Dalvi et al. 2019; Durrani et al. 2020).

    A softmax probe trained with the elastic net of the published codes,
    ``mean CE + l1 * sum|W| + l2 * ||W||_2`` (unsquared norm; bias unregularized), then
    neurons ordered by per-class weight mass (:func:`weight_mass_order`,
    ``ordering="mass"``) or by mean |weight| over classes (``ordering="mean_abs"``, Antverg &
    Belinkov's code).  Both orders are always stored (``order_mass_``, ``order_mean_abs_``).
    ``l1``/``l2`` default to the preset's: ``1e-3``/``0.1`` for ``"fast"`` (the l2 of Fan et al.
    2023: the L2 part gives correlated neurons similar weights, so the ranking no longer
    depends on the seed's shuffling; the retrained top-k of seeds 0/1/2 went from
    0.754/0.831/0.830 at ``l2=1e-3`` to 0.847/0.858/0.859 on MiniLM), ``1e-3``/``1e-3`` for
    ``"neurox"`` (the toolkit's demo), ``1e-3``/``1e-2`` for ``"antverg"``; the values used are
    ``l1_``/``l2_``.

    ``preset="fast"`` (default) trains on standardized inputs (weights are then comparable
    across neurons of different scale) with Adam on shuffled mini-batches for the full 10
    epochs (at least ``300`` optimizer steps on small data).  It does not stop early on dev
    accuracy: accuracy plateaus long before the L1 term has pushed the weights of unneeded
    neurons down, and the ranking needs that (``early_stopping=True`` keeps the epoch with
    the best accuracy on a ``dev_size`` split instead, by group if ``groups`` is given).  Its
    learning rate is ``0.1 / sqrt(n_neurons)`` (2.6e-3 for 1,536 neurons, 1e-3 for 9,216: Adam
    moves every weight by about lr per step, so the logits move by about lr * sqrt(D)), its
    batch about 1/80 of the training words (64 to 256), and the weights are averaged over
    about one epoch of steps (Polyak averaging, which smooths Adam's noise).  Problems with
    at most ``lbfgs_below`` values in X (``solver="auto"``) are instead solved to convergence
    with full-batch L-BFGS (|w| smoothed, see :func:`~tl_neuronprobe.probes.train_softmax`),
    which is faster and exact there.  ``preset="neurox"`` reproduces the toolkit (raw inputs, Adam 1e-3,
    batch 32, 10 epochs, no shuffling, no dev split); ``"antverg"`` Antverg & Belinkov's
    settings.  ``epochs``, ``batch_size``, ``lr``, ``standardize`` and ``early_stopping``
    override the preset.

    Fitted: ``coef_ [C, D]`` (on the standardized scale when standardized), ``intercept_``,
    ``order_``, ``scores_`` (descending order = ``order_``), ``per_class_ [C, D]`` (each
    neuron's share of its class's weight mass), ``order_mean_abs_``, ``mean_abs_``.
    """

    def __init__(
        self,
        k: int | None = None,
        l1: float | None = None,
        l2: float | None = None,
        ordering: str = "mass",
        mass_steps: int = 100,
        preset: str = "fast",
        epochs: int | None = None,
        batch_size: int | None = None,
        lr: float | None = None,
        standardize: bool | None = None,
        early_stopping: bool | None = None,
        dev_size: float = 0.1,
        patience: int = 2,
        solver: str | None = None,
        max_iter: int = 100,
        lbfgs_below: int = 2_000_000,
        device: str = "cpu",
        random_state: int = 0,
        verbose: bool = False,
    ):
        super().__init__(k=k, random_state=random_state)
        self.solver = solver
        self.max_iter = max_iter
        self.lbfgs_below = lbfgs_below
        self.l1 = l1
        self.l2 = l2
        self.ordering = ordering
        self.mass_steps = mass_steps
        self.preset = preset
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.standardize = standardize
        self.early_stopping = early_stopping
        self.dev_size = dev_size
        self.patience = patience
        self.device = device
        self.verbose = verbose

    # -- training --------------------------------------------------------------------------
    def _settings(self) -> dict:
        if self.preset not in _PRESETS:
            raise ValueError(f"preset must be one of {sorted(_PRESETS)}, got {self.preset!r}")
        s = dict(_PRESETS[self.preset])
        for name in ("l1", "l2", "epochs", "batch_size", "lr", "standardize", "solver", "early_stopping"):
            v = getattr(self, name)
            if v is not None:
                s[name] = v
        return s

    def _train(self, X: np.ndarray, y: np.ndarray, groups, l1s, l2s, desc="linear"):
        """Train one probe per (l1, l2) pair; returns W [P, C, D], b [P, C], mean, scale."""
        s = self._settings()
        dev = resolve_device(self.device)
        Xt = torch.from_numpy(X)
        yt = torch.from_numpy(y)
        tr = np.arange(len(y))
        dv = np.array([], dtype=np.int64)
        if s["early_stopping"] and self.dev_size and self.dev_size > 0:
            tr, dv = split_indices(
                len(y), self.dev_size, groups=groups, y=y, seed=self.random_state, min_train_per_class=1
            )
        solver = s["solver"]
        if solver == "auto":
            solver = "lbfgs" if len(tr) * Xt.shape[1] <= self.lbfgs_below else "adam"
        if solver == "lbfgs":  # no early stopping: train on everything
            tr, dv = np.arange(len(y)), np.array([], dtype=np.int64)
        rows = None if len(tr) == len(y) else torch.from_numpy(tr)  # the training rows, not copied
        if s["standardize"]:
            mean, scale, _ = standardization(Xt, rows)
        else:
            mean = scale = None
        n_train = len(tr)
        if s["lr"] == "auto":  # Adam moves every weight ~lr per step; the logits move ~lr * sqrt(D)
            s["lr"] = 0.1 / np.sqrt(Xt.shape[1])
        if s["batch_size"] == "auto":  # about 80 steps per epoch, batches of 64 to 256
            s["batch_size"] = int(np.clip(round(n_train / 80), 64, 256))
        steps_per_epoch = max(1, -(-n_train // s["batch_size"]))
        epochs = max(s["epochs"], min(200, -(-s["min_steps"] // steps_per_epoch)))
        W, b, info = train_softmax(
            Xt.to(dev),
            yt,
            len(self.classes_),
            n_probes=len(l1s),
            rows=rows,
            mean=mean,
            scale=scale,
            l1=l1s,
            l2=l2s,
            X_dev=Xt[torch.from_numpy(dv)] if len(dv) else None,
            y_dev=yt[torch.from_numpy(dv)] if len(dv) else None,
            epochs=epochs,
            batch_size=s["batch_size"],
            lr=s["lr"],
            shuffle=s["shuffle"],
            patience=self.patience if s["early_stopping"] else None,
            init=s["init"],
            solver=solver,
            average=s.get("average", False),
            max_iter=self.max_iter,
            seed=self.random_state,
            device=dev,
            verbose=self.verbose,
            desc=desc,
        )
        return W, b, mean, scale, info

    def _rank(self, X, y, groups):
        if self.ordering not in ("mass", "mean_abs"):
            raise ValueError(f"ordering must be 'mass' or 'mean_abs', got {self.ordering!r}")
        s = self._settings()
        W, b, mean, scale, info = self._train(X, y, groups, [s["l1"]], [s["l2"]])
        self.l1_, self.l2_ = float(s["l1"]), float(s["l2"])
        self._set_probe(W[0], b[0], mean, scale)
        self.n_epochs_ = info["epochs"]
        self.dev_accuracy_ = float(info["dev_accuracy"][0]) if "dev_accuracy" in info else None

    def _set_probe(self, W: torch.Tensor, b: torch.Tensor, mean, scale) -> None:
        W = W.cpu().clone()
        W[:, torch.from_numpy(self.constant_)] = 0.0  # constant inputs carry nothing
        self.coef_ = W.numpy()
        self.intercept_ = b.cpu().numpy()
        self._mean = mean.cpu() if mean is not None else None
        self._scale = scale.cpu() if scale is not None else None
        order, entry, share, mass_score = weight_mass_order(self.coef_, self.mass_steps)
        mean_abs = np.abs(self.coef_).mean(0)
        self.entry_step_ = entry
        self.per_class_ = share
        self.mean_abs_ = mean_abs
        self.order_mass_ = _order_from_scores(mass_score, self.constant_)
        self.order_mean_abs_ = _order_from_scores(mean_abs, self.constant_)
        if self.ordering == "mass":
            self.scores_, self.order_ = mass_score, self.order_mass_
        else:
            self.scores_, self.order_ = mean_abs, self.order_mean_abs_

    # -- probe interface -------------------------------------------------------------------
    def decision_function(self, X: Any) -> np.ndarray:
        """Logits of the fitted probe, ``[N, C]``."""
        check_is_fitted(self, "coef_")
        Xn = check_X(X)
        if Xn.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {Xn.shape[1]} neurons, the probe was fit on {self.n_features_in_}")
        W = torch.from_numpy(self.coef_)[None]
        b = torch.from_numpy(self.intercept_)[None]
        with torch.no_grad():
            return softmax_logits(torch.from_numpy(Xn), W, b, self._mean, self._scale)[:, 0].numpy()

    def predict_proba(self, X: Any) -> np.ndarray:
        return torch.from_numpy(self.decision_function(X)).softmax(-1).numpy()

    def predict(self, X: Any) -> np.ndarray:
        scores = self.decision_function(X)
        return self.classes_[scores.argmax(1)]

    def score(self, X: Any, y: Any) -> float:
        """Accuracy of the probe on (X, y)."""
        return float((self.predict(X) == to_numpy(y).reshape(-1)).mean())

    # -- Durrani et al.'s lambda search ----------------------------------------------------
    def search_lambdas(
        self,
        X: Any,
        y: Any,
        grid: Sequence[tuple[float, float]] | None = None,
        tolerance: float = 0.01,
        test_size: float = 0.2,
        groups: Any = None,
        refit: bool = True,
    ) -> pd.DataFrame:
        """Grid search over (l1, l2): keep the most regularized setting whose held-out
        accuracy stays within ``tolerance`` of the unregularized probe (Durrani et al. 2020).

        All settings are trained at once (one weight matrix).  Sets ``l1``/``l2`` to the
        choice, and with ``refit`` fits on all of X.  Returns one row per setting with its
        held-out accuracy and whether it was chosen.
        """
        Xn = check_X(X)
        y_enc, classes = check_y(y, Xn.shape[0])
        groups = check_groups(groups, Xn.shape[0])
        if grid is None:
            vals = [0.0, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1]
            grid = [(a, b) for a in vals for b in vals]
        grid = [(float(a), float(b)) for a, b in grid]
        if (0.0, 0.0) not in grid:
            grid = [(0.0, 0.0)] + grid
        tr, te = split_indices(len(y_enc), test_size, groups=groups, y=y_enc, seed=self.random_state,
                               min_train_per_class=2)
        self.classes_ = classes
        self.constant_ = _constant_columns(Xn[tr])
        W, b, mean, scale, _ = self._train(
            Xn[tr], y_enc[tr], None if groups is None else groups[tr],
            [g[0] for g in grid], [g[1] for g in grid], desc="lambda grid",
        )
        with torch.no_grad():
            logit = softmax_logits(torch.from_numpy(Xn[te]), W, b, mean, scale)
        acc = (logit.argmax(-1).numpy() == y_enc[te][:, None]).mean(0)
        table = pd.DataFrame({"l1": [g[0] for g in grid], "l2": [g[1] for g in grid], "accuracy": acc})
        base = float(table.loc[(table.l1 == 0) & (table.l2 == 0), "accuracy"].iloc[0])
        ok = table[table.accuracy >= base - tolerance]
        best = ok.assign(total=ok.l1 + ok.l2).sort_values(["total", "l1"], ascending=False).index[0]
        table["chosen"] = table.index == best
        self.l1, self.l2 = float(table.loc[best, "l1"]), float(table.loc[best, "l2"])
        self.lambda_search_ = table
        if refit:
            self.fit(Xn, classes[y_enc], groups=groups)
        return table

    # -- Durrani et al.'s minimal subset ---------------------------------------------------
    def minimal_subset(
        self,
        X: Any,
        y: Any,
        delta: float = 0.01,
        ks: Sequence[int] | None = None,
        test_size: float = 0.2,
        groups: Any = None,
        probe: LogisticProbes | None = None,
    ) -> MinimalSubset:
        """The fewest top neurons whose retrained probe reaches the oracle accuracy within ``delta``.

        The ranking is fitted on a training split; a fresh logistic probe is trained on all
        neurons (the oracle) and on the top-k for a coarse grid of k, then k is refined by
        bisection between the last failing and first passing grid point.  Returns k, its
        share of all neurons, the neurons, both accuracies and the accuracy curve.
        """
        Xn = check_X(X)
        y_enc, classes = check_y(y, Xn.shape[0])
        groups = check_groups(groups, Xn.shape[0])
        D = Xn.shape[1]
        tr, te = split_indices(len(y_enc), test_size, groups=groups, y=y_enc, seed=self.random_state,
                               min_train_per_class=2)
        gtr = None if groups is None else groups[tr]
        self.fit(Xn[tr], classes[y_enc[tr]], groups=gtr)
        order = self.order_
        probe = probe if probe is not None else LogisticProbes(random_state=self.random_state)
        if ks is None:
            ks = sorted({int(round(1.5**i)) for i in range(0, 64) if 1.5**i <= D} | {D})
        ks = sorted({check_k(int(k), D) for k in ks} | {D})
        results: dict[int, float] = {}

        def evaluate(kk: list[int]) -> None:
            kk = [k for k in kk if k not in results]
            if not kk:
                return
            probe.fit(Xn[tr], y_enc[tr], [order[:k] for k in kk], groups=gtr)
            for k, a in zip(kk, probe.score(Xn[te], y_enc[te])):
                results[k] = float(a)

        evaluate(ks)
        oracle = results[D]
        target = oracle - delta
        passing = [k for k in ks if results[k] >= target]
        k_hi = min(passing)
        below = [k for k in ks if k < k_hi]
        k_lo = max(below) if below else 0
        while k_hi - k_lo > 1:
            mid = (k_lo + k_hi) // 2
            evaluate([mid])
            if results[mid] >= target:
                k_hi = mid
            else:
                k_lo = mid
        curve = pd.DataFrame(sorted(results.items()), columns=["k", "accuracy"])
        return MinimalSubset(
            k=k_hi,
            share=k_hi / D,
            neurons=order[:k_hi].copy(),
            accuracy=results[k_hi],
            oracle_accuracy=oracle,
            curve=curve,
        )


class L1(NeuronRanker):
    """L1-regularized logistic regression (Gurnee et al.: C = 0.1, balanced classes).

    Neurons are scored by the summed |coefficient| over classes on standardized inputs.
    ``backend="torch"`` (default, fast) minimizes sklearn's objective divided by C * N,
    i.e. balanced mean cross-entropy + ``|W|_1 / (C * N)``, with Adam; ``"sklearn"`` uses
    ``LogisticRegression(l1_ratio=1, solver="saga")``.
    """

    def __init__(
        self,
        k: int | None = None,
        C: float = 0.1,
        backend: str = "torch",
        epochs: int = 20,
        max_iter: int = 200,
        device: str = "cpu",
        random_state: int = 0,
    ):
        super().__init__(k=k, random_state=random_state)
        self.C = C
        self.backend = backend
        self.epochs = epochs
        self.max_iter = max_iter
        self.device = device

    def _rank(self, X, y, groups):
        C = len(self.classes_)
        Xt = torch.from_numpy(X)
        mean, scale, _ = standardization(Xt)
        cnt = np.bincount(y, minlength=C)
        cw = len(y) / (C * cnt)
        if self.backend == "sklearn":
            from sklearn.linear_model import LogisticRegression

            Z = ((Xt - mean) / scale).numpy()
            import sklearn

            major, minor = (int(v) for v in sklearn.__version__.split(".")[:2])
            pen = {} if (major, minor) >= (1, 8) else {"penalty": "l1"}  # `penalty` is deprecated from 1.8
            clf = LogisticRegression(
                C=self.C, l1_ratio=1.0, solver="saga", class_weight="balanced",
                max_iter=self.max_iter, random_state=self.random_state, **pen,
            )
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                clf.fit(Z, y)
            coef = clf.coef_
            if coef.shape[0] == 1:  # binary: one row, for the second class
                coef = np.vstack([-coef[0] / 2, coef[0] / 2])
            self.coef_ = coef
            self.intercept_ = np.broadcast_to(clf.intercept_, (C,)).copy() if C > 2 else np.array(
                [-clf.intercept_[0] / 2, clf.intercept_[0] / 2])
        elif self.backend == "torch":
            W, b, _ = train_softmax(
                Xt, torch.from_numpy(y), C, mean=mean, scale=scale,
                l1=1.0 / (self.C * len(y)), class_weight=torch.as_tensor(cw, dtype=torch.float32),
                epochs=self.epochs, batch_size=256, lr=3e-3, patience=None,
                seed=self.random_state, device=self.device,
            )
            self.coef_ = W[0].cpu().numpy()
            self.intercept_ = b[0].cpu().numpy()
        else:
            raise ValueError(f"backend must be 'torch' or 'sklearn', got {self.backend!r}")
        self._mean, self._scale = mean, scale
        self.per_class_ = np.abs(self.coef_)
        self.scores_ = np.abs(self.coef_).sum(0)

    def decision_function(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "coef_")
        Xn = check_X(X)
        W = torch.from_numpy(np.ascontiguousarray(self.coef_, dtype=np.float32))[None]
        b = torch.from_numpy(np.asarray(self.intercept_, dtype=np.float32))[None]
        return softmax_logits(torch.from_numpy(Xn), W, b, self._mean, self._scale)[:, 0].numpy()

    def predict(self, X: Any) -> np.ndarray:
        scores = self.decision_function(X)
        return self.classes_[scores.argmax(1)]

    def score(self, X: Any, y: Any) -> float:
        return float((self.predict(X) == to_numpy(y).reshape(-1)).mean())


# ========================================================================================
# Gaussian (intrinsic probing)
# ========================================================================================


class Gaussian(NeuronRanker):
    """Intrinsic probing (Torroba Hennigen et al. 2020): greedy selection with a Gaussian probe.

    One Gaussian per class (:class:`~tl_neuronprobe.probes.GaussianProbe`, NIW prior) is
    fitted on a training split; neurons are added greedily, each time the one that most
    raises the dev-set mean log p(z | h_S), i.e. the dev mutual information
    I = H(Z) - H(Z | h_S) (``mi_``, bits, one entry per step; H(Z) from the training
    class frequencies).  A probe on a subset is a slice of the fitted means and
    covariances.

    The candidate scan is vectorized: with the Cholesky factor L_z of Sigma_z[S, S] and
    B_z = L_z^{-1} Sigma_z[S, :], every candidate's conditional variance and every dev
    point's conditional mean are kept up to date by rank-1 (Schur complement) updates, so
    one step scores all candidates for all classes at once in O(C * N_dev * D), instead of
    building C * D multivariate normals.  The scan runs in float32 over blocks of
    ``chunk_size`` candidates stored contiguously (``[block, class, point, candidate]``), so
    every elementwise pass streams memory once; the best ``refine`` candidates are re-scored
    exactly in float64 before choosing.

    ``order_``: the ``max_features`` greedily selected neurons first (``selected_``), then
    the rest by their single-neuron dev MI, which is ``scores_``.

    On CPU the scan runs on ``n_threads`` threads (default 1: it is memory-bound, and on a
    busy machine multi-threaded small ops stall; ``None`` keeps torch's setting).  The NIW
    estimate shrinks covariances by N_z / (N_z + 2D + 4); with D large against the class
    sizes, the Gaussians are narrow and the dev MI can be negative (the ranking is still the
    published one).
    """

    def __init__(
        self,
        k: int | None = None,
        max_features: int = 50,
        dev_size: float = 0.1,
        kappa0: float = 0.01,
        nu0: float | None = None,
        refine: int = 8,
        chunk_size: int = 32,
        max_memory_gb: float = 1.5,
        dtype: torch.dtype = torch.float64,
        n_threads: int | None = 1,
        device: str = "cpu",
        random_state: int = 0,
        verbose: bool = False,
    ):
        super().__init__(k=k, random_state=random_state)
        self.n_threads = n_threads
        self.max_features = max_features
        self.dev_size = dev_size
        self.kappa0 = kappa0
        self.nu0 = nu0
        self.refine = refine
        self.chunk_size = chunk_size
        self.max_memory_gb = max_memory_gb
        self.dtype = dtype
        self.device = device
        self.verbose = verbose

    def _rank(self, X, y, groups):
        tr, dv = split_indices(len(y), self.dev_size, groups=groups, y=y, seed=self.random_state,
                               min_train_per_class=2)
        self.train_index_, self.dev_index_ = tr, dv
        probe = GaussianProbe(kappa0=self.kappa0, nu0=self.nu0, dtype=self.dtype, device=self.device)
        probe.fit(X[tr], self.classes_[y[tr]])
        self.probe_ = probe
        avail = ~_constant_columns(X[tr]) & ~self.constant_
        m = min(int(self.max_features), int(avail.sum()))
        if m < 1:
            raise ValueError("every neuron is constant on the training split; nothing to rank")
        flush = torch.set_flush_denormal(True)  # exp of very negative numbers: no slow denormals
        try:
            with few_threads(float(len(self.classes_)) * len(dv) * X.shape[1], n_threads=self.n_threads):
                selected, mi, single = self._greedy(probe, X[dv], y[dv], m, avail)
        finally:
            if flush:
                torch.set_flush_denormal(False)
        self.selected_ = np.asarray(selected, dtype=np.int64)
        self.mi_ = np.asarray(mi)
        single = np.where(avail, single, -np.inf)
        self.scores_ = single
        rest = _order_from_scores(single, ~avail)
        rest = rest[~np.isin(rest, self.selected_)]
        self.order_ = np.concatenate([self.selected_, rest])

    # -- the vectorized greedy scan --------------------------------------------------------
    @torch.no_grad()
    def _greedy(self, probe: GaussianProbe, Xdev: np.ndarray, ydev: np.ndarray, m: int, avail: np.ndarray):
        f64 = probe.dtype
        dev = probe.means_.device
        C, D = probe.means_.shape
        Nd = Xdev.shape[0]
        mu = probe.means_
        v = probe.variances().clone()  # conditional variances given S, [C, D]
        h = torch.from_numpy(Xdev).to(dev, f64)
        yd = torch.from_numpy(ydev).to(dev)
        logpi = probe.log_priors_
        lp = logpi[:, None].expand(C, Nd).clone()  # log pi_z + log N(h_S | z), [C, Nd]
        a = torch.zeros(C, Nd, 0, dtype=f64, device=dev)  # L^{-1}(h_S - mu_S)
        B = torch.zeros(C, 0, D, dtype=f64, device=dev)  # L^{-1} Sigma[S, :]
        # Candidates are scanned in blocks of ``cs``; every block's data is contiguous
        # ([block, class, point, candidate]), so each elementwise pass streams memory once.
        cs = max(1, min(int(self.chunk_size), D))
        nb = -(-D // cs)
        Dp = nb * cs

        def blocked(t: torch.Tensor) -> torch.Tensor:  # [..., D] -> [nb, ..., cs], zero-padded
            t = torch.nn.functional.pad(t, (0, Dp - D))
            return t.unflatten(-1, (nb, cs)).movedim(-2, 0).contiguous()

        h32 = blocked(h.float())  # [nb, Nd, cs]
        store = C * Nd * Dp * 4 <= self.max_memory_gb * 2**30
        # conditional means of every candidate for every class and dev point, kept up to date
        mu_b = blocked(mu.float())  # [nb, C, cs]
        cmean = mu_b[:, :, None, :].expand(nb, C, Nd, cs).contiguous() if store else None  # [nb, C, Nd, cs]
        priors = torch.as_tensor(probe.priors_, dtype=f64)
        H = float(-(priors * priors.log()).sum())
        avail_t = torch.from_numpy(avail.copy()).to(dev)
        tiny = 1e-12 * float(v.mean())
        selected, mis = [], []
        single = None
        log2pi = math.log(2 * math.pi)
        ycol = yd.view(1, Nd, 1).expand(1, Nd, cs)
        r = torch.empty(C, Nd, cs, device=dev)
        q = torch.empty(C, Nd, cs, device=dev)

        def exact(cands: torch.Tensor) -> torch.Tensor:
            cm = mu[:, None, cands] + (a @ B[:, :, cands] if B.shape[1] else 0.0)
            vc = v[:, cands].clamp_min(tiny)
            rr = h[None, :, cands] - cm
            delta = -0.5 * (log2pi + vc.log())[:, None, :] - 0.5 * rr.square() / vc[:, None, :]
            joint = lp[:, :, None] + delta
            true = joint.gather(0, yd.view(1, Nd, 1).expand(1, Nd, len(cands)))[0]
            return (true - torch.logsumexp(joint, 0)).mean(0)

        for step in tqdm(range(m), desc="gaussian greedy", disable=not self.verbose):
            # ---- scan all candidates (float32): one log-sum-exp over classes per (point, candidate) ----
            v32 = v.clamp_min(tiny).float()
            scale = blocked((0.5 / v32).sqrt())  # [nb, C, cs]
            logg = blocked(-0.5 * (log2pi + v32.log()))  # [nb, C, cs]
            # log p(z | h_S): a per-point shift that cancels in the objective, keeps float32 small
            lpf = (lp - torch.logsumexp(lp, 0)).float()[:, :, None]  # [C, Nd, 1]
            Bf = None if store else blocked(B.float())  # [nb, C, t, cs]
            af = None if store else a.float()
            obj = torch.empty(nb, cs, dtype=torch.float32, device=dev)
            for blk in range(nb):
                if store:
                    cm = cmean[blk]
                else:
                    cm = mu_b[blk][:, None, :] + (af @ Bf[blk] if Bf.shape[2] else 0.0)
                # joint log p(z, h_S, h_j) for every class, point and candidate:
                # log p(z | h_S) + log N(h_j; conditional mean, conditional variance)
                torch.sub(h32[blk][None], cm, out=r).mul_(scale[blk][:, None, :])
                torch.add(lpf, logg[blk][:, None, :], out=q).addcmul_(r, r, value=-1.0)
                qt = q.gather(0, ycol)[0]
                mx = q.amax(0)
                # log-sum-exp over classes; the max term is exp(0) = 1, so no underflow of the sum;
                # clamping at -60 (a change below 1e-26) keeps exp off its slow path for huge arguments
                S = q.sub_(mx).clamp_min_(-60.0).exp_().sum(0)
                obj[blk] = (qt - mx - S.log()).mean(0)
            obj = obj.flatten()[:D]
            bad = ~torch.isfinite(obj)
            obj = torch.where(avail_t, obj, torch.full_like(obj, -math.inf))
            fix = torch.nonzero(bad & avail_t).flatten()
            if len(fix):  # underflow in float32: score those exactly
                for s in range(0, len(fix), 256):
                    obj[fix[s : s + 256]] = exact(fix[s : s + 256]).float()
            if step == 0:
                single = obj.double().cpu().numpy()
            n_ref = min(int(self.refine), int(avail_t.sum()))
            cands = torch.topk(obj, max(1, n_ref)).indices
            cands = cands.sort().values  # ties go to the smaller index
            ex = exact(cands)
            j = int(cands[int(torch.argmax(ex))])
            if step == 0:
                single[cands.cpu().numpy()] = ex.cpu().numpy()
            # ---- rank-1 update with neuron j ----
            row = probe.cov_rows([j])[:, 0, :]  # Sigma_z[j, :]
            l = B[:, :, j]  # [C, t]
            d = v[:, j].clamp_min(tiny).sqrt()  # [C]
            Brow = (row - torch.einsum("ct,ctd->cd", l, B)) / d[:, None]
            cm_j = mu[:, j][:, None] + (a @ l[:, :, None])[..., 0]  # [C, Nd]
            a_new = (h[:, j][None] - cm_j) / d[:, None]
            lp += -0.5 * (log2pi + 2 * d.log())[:, None] - 0.5 * a_new.square()
            v -= Brow.square()
            if store:  # cmean[z, n, :] += a_new[z, n] * Brow[z, :]
                cmean.addcmul_(a_new.float()[None, :, :, None], blocked(Brow.float())[:, :, None, :])
            a = torch.cat([a, a_new[:, :, None]], 2)
            B = torch.cat([B, Brow[:, None, :]], 1)
            avail_t[j] = False
            selected.append(j)
            cond = (lp.gather(0, yd[None])[0] - torch.logsumexp(lp, 0)).mean()
            mis.append((H + float(cond)) / math.log(2))
        return selected, mis, single

    # -- probe interface -------------------------------------------------------------------
    def _neurons(self, neurons):
        check_is_fitted(self, "probe_")
        if neurons is not None:
            return np.atleast_1d(to_numpy(neurons)).astype(np.int64)
        k = check_k(self.k, self.n_features_in_)
        return self.selected_ if k is None else self.order_[:k]

    def predict_proba(self, X: Any, neurons: Any = None) -> np.ndarray:
        """Class probabilities from the Gaussians sliced to ``neurons`` (default: the
        top-k if ``k`` is set, else the greedily selected neurons)."""
        return self.probe_.predict_proba(X, self._neurons(neurons))

    def predict(self, X: Any, neurons: Any = None) -> np.ndarray:
        return self.probe_.predict(X, self._neurons(neurons))

    def score(self, X: Any, y: Any, neurons: Any = None) -> float:
        return self.probe_.score(X, y, self._neurons(neurons))


# ========================================================================================
# registry
# ========================================================================================

RANKERS: dict[str, type] = {
    "linear": Linear,
    "gaussian": Gaussian,
    "probeless": Probeless,
    "mean_difference": MeanDifference,
    "f_statistic": FStatistic,
    "mutual_information": MutualInformation,
    "l1": L1,
    "average_precision": AveragePrecision,
    "random": Random,
}
_ALIASES = {"meandifference": "mean_difference", "mean_diff": "mean_difference", "f": "f_statistic",
            "fstatistic": "f_statistic", "anova": "f_statistic", "mi": "mutual_information",
            "mutualinformation": "mutual_information", "ap": "average_precision",
            "averageprecision": "average_precision", "iou": "average_precision"}


def make_ranker(name: str, **params: Any) -> NeuronRanker:
    """A ranker from its name (``"linear"``, ``"gaussian"``, ``"probeless"``, ...)."""
    key = name.strip().lower().replace("-", "_")
    key = _ALIASES.get(key.replace("_", ""), _ALIASES.get(key, key))
    if key not in RANKERS:
        raise ValueError(f"unknown ranker {name!r}; choose from {sorted(RANKERS)}")
    return RANKERS[key](**params)
