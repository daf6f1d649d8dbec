"""Probe-based rankers: LCA's elastic-net softmax probe (``Linear``), the L1 probe, and the
weight-mass ordering; the searches over them live in ``_linear_search.py``.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np
import sklearn
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

from ..core.validation import split_indices, resolve_device, to_numpy
from ..probes import LogisticProbes, checked_X, renamed_param, softmax_logits, standardization, train_softmax
from ._base import NeuronRanker, order_from_scores
from ._forward import evenly_spaced, forward_selection
from ._linear_search import LambdaSearch, MinimalSubset, minimal_subset, search_lambdas

__all__ = ["Linear", "L1", "weight_mass_order"]


def weight_mass_order(W: Any, steps: int = 100) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Weight-mass ordering of Dalvi et al. (2019) / Durrani et al. (2020).

    For class c, sort |W_c,i| descending and take the smallest prefix whose cumulative sum
    reaches p * sum_i |W_c,i| (at least one neuron); the top set at p is the union over
    classes.  p sweeps 0, 1/steps, ..., 1 and neurons are appended as they enter.  Ties
    within one step (the toolkit leaves them in set-iteration order) are broken by the
    neuron's total absolute weight over classes, then by index: the first step alone adds
    one neuron per class and the next ones add hundreds, so this decides the small-k sets.
    (The largest-share tie-break suggested in the methods notes favours rare classes, whose
    weight sits on few neurons; docs/rankers.md has the comparison.)  Neurons with zero weight
    everywhere come last.

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
    # cleaner default: standardized inputs, shuffled batches, the full epochs (no early stopping)
    # l2 = 0.1 (Fan et al. 2023's value): the L2 part of the elastic net gives correlated neurons
    # similar weights, which makes the weight-mass ranking stable across seeds (docs/rankers.md)
    "fast": dict(l1=1e-3, l2=0.1, standardize=True, lr="auto", batch_size="auto", epochs=10, shuffle=True, early_stopping=False,
                 init="zeros", min_steps=300, solver="auto", average=True, mass="contribution", ranking_l1=3e-3,
                 refine_k=200),
    # NeuroX toolkit: 10 epochs, batch 32, Adam 1e-3, no shuffling, no standardization, mass of |W|
    "neurox": dict(l1=1e-3, l2=1e-3, standardize=False, lr=1e-3, batch_size=32, epochs=10, shuffle=False, early_stopping=False,
                   init="torch", min_steps=0, solver="adam", mass="weight", ranking_l1=None, refine_k=0),
    # Antverg & Belinkov's code: Adam 1e-2, batch 32, 10 epochs
    "antverg": dict(l1=1e-3, l2=1e-2, standardize=False, lr=1e-2, batch_size=32, epochs=10, shuffle=True, early_stopping=False,
                    init="torch", min_steps=0, solver="adam", mass="weight", ranking_l1=None, refine_k=0),
}

#: forward selection (``refine_k``) looks at most at this many evenly spaced training rows
REFINE_ROWS = 50_000


def mean_abs_deviation(X: torch.Tensor, mean: "torch.Tensor | None", max_rows: int = 16384) -> np.ndarray:
    """Per column, the mean of ``|x - mean|`` over the rows of X (at most ``max_rows``, evenly spaced)."""
    rows = torch.arange(X.shape[0])
    every = len(rows) <= max_rows  # then blocks of rows are slices, not gathered copies
    if not every:
        rows = rows[torch.linspace(0, len(rows) - 1, max_rows).long()]
    center = X[rows[:512]].float().mean(0) if mean is None else mean.cpu().float()
    total = torch.zeros(X.shape[1], dtype=torch.float64)
    for i in range(0, len(rows), 256):
        block = X[i: i + 256] if every else torch.index_select(X, 0, rows[i: i + 256])
        total += (block.float() - center).abs_().sum(0)
    return (total / len(rows)).numpy()


def _gather(X: np.ndarray, rows: np.ndarray, neurons: np.ndarray) -> np.ndarray:
    """``X[rows][:, neurons]`` as float32, gathering the columns first when every row is wanted (faster)."""
    Xt = torch.from_numpy(X)
    if len(rows) == X.shape[0] and np.array_equal(rows, np.arange(len(rows))):
        return Xt.index_select(1, torch.from_numpy(neurons)).float().numpy()
    return Xt.index_select(0, torch.from_numpy(rows)).index_select(1, torch.from_numpy(neurons)).float().numpy()


# `penalty` is deprecated from scikit-learn 1.8 (l1_ratio alone says it), required before
_L1_PENALTY = {} if tuple(int(v) for v in sklearn.__version__.split(".")[:2]) >= (1, 8) else {"penalty": "l1"}


class _ProbeMixin:
    """``predict``, ``predict_proba`` and ``score`` of a ranker whose ``decision_function`` gives logits."""

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities of the fitted probe, ``[N, C]``."""
        return torch.from_numpy(self.decision_function(X)).softmax(-1).numpy()

    def predict(self, X: Any) -> np.ndarray:
        """Labels predicted by the fitted probe."""
        logits = self.decision_function(X)
        return self.classes_[logits.argmax(1)]

    def score(self, X: Any, y: Any) -> float:
        """Accuracy of the probe on (X, y), a float."""
        return float((self.predict(X) == to_numpy(y).reshape(-1)).mean())


class Linear(_ProbeMixin, NeuronRanker):
    """Linguistic correlation analysis (Dalvi et al. 2019; Durrani et al. 2020).

    A softmax probe trained with the elastic net of the published codes,
    ``mean CE + l1 * sum|W| + l2 * ||W||_2`` (unsquared norm; bias unregularized), then
    neurons ordered by per-class weight mass (:func:`weight_mass_order`,
    ``ordering="mass"``) or by mean |weight| over classes (``ordering="mean_abs"``, Antverg &
    Belinkov's code).  Both orders are always stored (``order_mass_``, ``order_mean_abs_``).
    ``l1``/``l2`` default to the preset's: ``1e-3``/``0.1`` for ``"fast"`` (the l2 of Fan et al.
    2023: the L2 part gives correlated neurons similar weights, so the ranking no longer
    depends on the seed's shuffling; figures in docs/rankers.md), ``1e-3``/``1e-3`` for
    ``"neurox"`` (the toolkit's demo), ``1e-3``/``1e-2`` for ``"antverg"``; the values used are
    ``l1_``/``l2_``.

    ``mass="contribution"`` (the ``"fast"`` preset's) measures a neuron's weight for class c by its
    typical contribution to the class's logit, ``|W_c,i| * mean|x_i - mean_i|`` on the scale the probe
    sees (``contribution_scale_`` holds the second factor), before the weight-mass (or mean) ordering;
    ``mass="weight"`` (the ``"neurox"``/``"antverg"`` presets') uses ``|W_c,i|`` as published. On
    standardized inputs a neuron that fires rarely but hugely gets weights as large as a broadly
    informative one while contributing to few words (measured on real English in docs/rankers.md).

    ``ranking_l1`` (``3e-3`` in the ``"fast"`` preset, ``l1`` in the others and whenever ``l1`` is given; pass
    ``l1``'s value to rank by the reported probe) orders the neurons by a
    second, sparser probe trained jointly with the reported one (the same mini-batches, one weight matrix
    ``[2C, D]``, so one pass over the data): a stronger L1 concentrates each class's mass on fewer
    neurons, which ranks better at small k, while the reported probe (``coef_``, ``score``) keeps ``l1``
    and its accuracy. ``ranking_coef_`` holds the ranking probe's weights (``coef_`` when they are the same).

    ``refine_k`` (``200`` in the ``"fast"`` preset, ``0`` = off in the others) orders the first ``refine_k``
    neurons by forward selection (:func:`~tl_neuronprobe.rankers.forward_selection`: greedy least squares on
    the class indicators, over at most 50,000 evenly spaced training rows) among the top
    ``refine_candidates`` (1,000) of the weight-mass ordering; it stops early when a step no longer beats
    chance or no longer helps accuracy on a held-out fifth of the training groups, and the rest keep their
    mass order. Forward selection sees each candidate standardized and clipped at ``refine_clip`` (3)
    standard deviations (``None``: raw): least squares would otherwise count against a neuron every unit it
    fires beyond its usual range on a few words of its class, which a logistic probe does not (tune-set
    figures in docs/rankers-real.md, session 6). The probe proposes, forward selection decides the order a
    small probe should take them in: a neuron that repeats one already taken (a redundant copy, which the
    elastic net deliberately weights alike) moves down, one that adds what the taken ones lack moves up. On
    held-out real English this raised a fresh probe's accuracy on the top 5-20 by 1-10 points
    (docs/rankers-real.md); ``order_mass_`` keeps LCA's own ordering and ``forward_`` the refined head.

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

    Fitted: ``coef_ [C, D]`` (on the standardized scale when standardized), ``intercept_``, ``ranking_coef_``,
    ``ranking_l1_``,
    ``order_``, ``scores_`` (descending order = ``order_``), ``per_class_ [C, D]`` (each
    neuron's share of its class's weight, or contribution, mass), ``order_mean_abs_``, ``mean_abs_``,
    ``contribution_scale_`` (None with ``mass="weight"``), ``forward_`` (the neurons forward selection
    ordered, first ones of ``order_``; empty when ``refine_k=0``).
    """

    def __init__(
        self, k: int | None = None, l1: float | None = None, l2: float | None = None, ordering: str = "mass",
        mass_steps: int = 100, preset: str = "fast", mass: str | None = None, ranking_l1: float | None = None,
        refine_k: int | None = None, refine_candidates: int = 1000, refine_clip: float | None = 3.0,
        epochs: int | None = None, batch_size: int | None = None,
        lr: float | None = None, standardize: bool | None = None, early_stopping: bool | None = None,
        dev_size: float = 0.1, patience: int = 2, solver: str | None = None, max_iter: int = 100,
        lbfgs_below: int = 2_000_000, device: str = "cpu", seed: int = 0, progress: bool = False,
        random_state: int | None = None, verbose: bool | None = None,
    ):
        self._store(locals())

    # -- training --------------------------------------------------------------------------
    def _settings(self) -> dict:
        if self.preset not in _PRESETS:
            raise ValueError(f"preset must be one of {sorted(_PRESETS)}, got {self.preset!r}")
        s = dict(_PRESETS[self.preset])
        for name in ("l1", "l2", "epochs", "batch_size", "lr", "standardize", "solver", "early_stopping", "mass",
                     "ranking_l1", "refine_k"):
            v = getattr(self, name)
            if v is not None:
                s[name] = v
        if self.l1 is not None and self.ranking_l1 is None:  # a chosen l1 ranks by its own probe
            s["ranking_l1"] = None
        return s

    def _split(self, s: dict, y: np.ndarray, n_neurons: int, groups, seed: int):
        """The solver, and the training and dev rows (a dev split only for early stopping with Adam)."""
        tr, dv = np.arange(len(y)), np.array([], dtype=np.int64)
        if s["early_stopping"] and self.dev_size and self.dev_size > 0:
            tr, dv = split_indices(len(y), self.dev_size, groups=groups, y=y, seed=seed, min_train_per_class=1)
        solver = s["solver"]
        if solver == "auto":
            solver = "lbfgs" if len(tr) * n_neurons <= self.lbfgs_below else "adam"
        if solver == "lbfgs":  # no early stopping: train on everything
            tr, dv = np.arange(len(y)), np.array([], dtype=np.int64)
        return solver, tr, dv

    @staticmethod
    def _resolve_auto(s: dict, n_neurons: int, n_train: int) -> int:
        """Fill the "auto" learning rate and batch size of settings ``s``; returns the epochs to run."""
        if s["lr"] == "auto":  # Adam moves every weight ~lr per step; the logits move ~lr * sqrt(D)
            s["lr"] = 0.1 / np.sqrt(n_neurons)
        if s["batch_size"] == "auto":  # about 80 steps per epoch, batches of 64 to 256
            s["batch_size"] = int(np.clip(round(n_train / 80), 64, 256))
        steps_per_epoch = max(1, -(-n_train // s["batch_size"]))
        return max(s["epochs"], min(200, -(-s["min_steps"] // steps_per_epoch)))

    def _train(self, X: np.ndarray, y: np.ndarray, n_classes: int, groups, l1s, l2s, seed: int, progress: bool,
               desc: str = "linear"):
        """Train one probe per (l1, l2) pair; returns W [P, C, D], b [P, C], mean, scale, info."""
        s = self._settings()
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
        solver, tr, dv = self._split(s, y, Xt.shape[1], groups, seed)
        rows = None if len(tr) == len(y) else torch.from_numpy(tr)  # the training rows, not copied
        mean, scale = standardization(Xt, rows)[:2] if s["standardize"] else (None, None)
        epochs = self._resolve_auto(s, Xt.shape[1], len(tr))
        dev_rows = torch.from_numpy(dv) if len(dv) else None
        W, b, info = train_softmax(
            Xt.to(resolve_device(self.device)), yt, n_classes, n_probes=len(l1s), rows=rows, mean=mean, scale=scale,
            l1=l1s, l2=l2s, X_dev=Xt[dev_rows] if dev_rows is not None else None,
            y_dev=yt[dev_rows] if dev_rows is not None else None, epochs=epochs, batch_size=s["batch_size"],
            lr=s["lr"], shuffle=s["shuffle"], patience=self.patience if s["early_stopping"] else None,
            init=s["init"], solver=solver, average=s.get("average", False), max_iter=self.max_iter, seed=seed,
            device=resolve_device(self.device), progress=progress, desc=desc,
        )
        return W, b, mean, scale, info

    def _checked_settings(self) -> dict:
        if self.ordering not in ("mass", "mean_abs"):
            raise ValueError(f"ordering must be 'mass' or 'mean_abs', got {self.ordering!r}")
        s = self._settings()
        if s["mass"] not in ("contribution", "weight"):
            raise ValueError(f"mass must be 'contribution' or 'weight', got {s['mass']!r}")
        if int(s.get("refine_k") or 0) < 0 or self.refine_candidates < 1:
            raise ValueError(f"refine_k must be >= 0 and refine_candidates >= 1, got {s.get('refine_k')!r} and "
                             f"{self.refine_candidates!r}")
        if self.refine_clip is not None and not float(self.refine_clip) > 0:
            raise ValueError(f"refine_clip must be > 0 or None, got {self.refine_clip!r}")
        return s

    def _rank(self, X, y, groups):
        s = self._checked_settings()
        progress = renamed_param(self, "progress", "verbose")
        solver, train_rows, _ = self._split(s, y, X.shape[1], groups, self.seed_)
        C, lbfgs = len(self.classes_), solver == "lbfgs"
        wanted = self._l1s(s)
        l1s = wanted if not lbfgs else wanted[:1]  # Adam: both probes in one weight matrix, one pass
        W, b, mean, scale, info = self._train(X, y, C, groups, l1s, [s["l2"]] * len(l1s), self.seed_, progress)
        if len(l1s) < len(wanted):  # L-BFGS's line search would couple two probes: solve each alone
            W = torch.cat([W, self._train(X, y, C, groups, wanted[1:], [s["l2"]], self.seed_, progress)[0]])
        mad = mean_abs_deviation(torch.from_numpy(X), mean) if s["mass"] == "contribution" else None
        self._adopt(s, W, b, mean, scale, info, mad)
        self._refine(s, y, train_rows, lambda rows, neurons: _gather(X, rows, neurons), groups)

    def _refine(self, s: dict, y: np.ndarray, train_rows: np.ndarray, columns, groups=None,
                max_rows: int = REFINE_ROWS, max_candidates: "int | None" = None) -> bool:
        """Order the head of ``order_`` by forward selection (``refine_k``) among its top ``refine_candidates``
        (at most ``max_candidates``), on at most ``max_rows`` evenly spaced training rows;
        ``columns(rows, neurons)`` returns those activations, ``[len(rows), len(neurons)]``. Returns whether
        it read them (a pass over the rows out of core, even when forward selection then takes nothing)."""
        k = int(s.get("refine_k") or 0)
        self.forward_ = np.array([], dtype=np.int64)
        if k == 0:
            return False
        candidates = self.order_[:min(self.refine_candidates, max_candidates or self.refine_candidates)]
        candidates = candidates[~self.constant_[candidates]]  # constant_ is a mask
        if len(candidates) == 0:
            return False
        rows = evenly_spaced(train_rows, min(max_rows, REFINE_ROWS))
        head = candidates[forward_selection(columns(rows, candidates), y[rows], k, len(self.classes_),
                                            groups=None if groups is None else np.asarray(groups)[rows],
                                            seed=self.seed_, clip=self.refine_clip)]
        rest = self.order_[~np.isin(self.order_, head)]
        scores = np.asarray(self.scores_, dtype=np.float64).copy()
        finite = scores[np.isfinite(scores)]
        top = finite.max() if len(finite) else 0.0
        scores[head] = top + 1.0 + np.arange(len(head), 0, -1)  # descending order of scores_ stays order_
        self.forward_, self.order_, self.scores_ = head, np.concatenate([head, rest]), scores
        return True

    @staticmethod
    def _l1s(s: dict) -> list:
        """The l1 of the reported probe, then that of the ranking probe when it differs (``ranking_l1``)."""
        rank_l1 = s.get("ranking_l1")
        if rank_l1 is None or float(rank_l1) == float(s["l1"]):
            return [s["l1"]]
        if not float(rank_l1) >= 0:
            raise ValueError(f"ranking_l1 must be >= 0 or None, got {rank_l1!r}")
        return [s["l1"], rank_l1]

    def _adopt(self, s: dict, W, b, mean, scale, info: dict, mad: "np.ndarray | None") -> None:
        """Store a trained probe (``W [P, C, D]``: the reported probe, then the ranking probe if P = 2) and its
        orderings; ``mad`` the mean |x - mean| per neuron."""
        self.l1_, self.l2_ = float(s["l1"]), float(s["l2"])
        joint = W.shape[0] > 1
        self.ranking_l1_ = float(self._l1s(s)[-1]) if joint else self.l1_
        self.contribution_scale_ = None
        if mad is not None:  # E|x_i - mean_i| on the scale the probe sees
            self.contribution_scale_ = mad / (scale.cpu().numpy() if scale is not None else 1.0)
        self._set_probe(W[0], b[0], mean, scale, W[1] if joint else None)
        self.n_epochs_ = info["epochs"]
        self.n_iter_ = info.get("evaluations", info["epochs"])  # L-BFGS: loss evaluations; Adam: epochs
        self.dev_accuracy_ = float(info["dev_accuracy"][0]) if "dev_accuracy" in info else None

    def _set_probe(self, W: torch.Tensor, b: torch.Tensor, mean, scale, W_rank: "torch.Tensor | None" = None) -> None:
        """Store the probe (``W``, ``b``) and order the neurons by ``W_rank``'s mass (default ``W``)."""
        W = W.cpu().clone()
        W[:, torch.from_numpy(self.constant_)] = 0.0  # constant inputs carry nothing
        self.coef_ = W.numpy()
        if W_rank is None:
            self.ranking_coef_ = self.coef_
        else:
            W_rank = W_rank.cpu().clone()
            W_rank[:, torch.from_numpy(self.constant_)] = 0.0
            self.ranking_coef_ = W_rank.numpy()
        self.intercept_ = b.cpu().numpy()
        self._mean = mean.cpu() if mean is not None else None
        self._scale = scale.cpu() if scale is not None else None
        contribution = getattr(self, "contribution_scale_", None)
        R = self.ranking_coef_
        A = np.abs(R) if contribution is None else np.abs(R) * contribution[None, :]
        order, entry, share, mass_score = weight_mass_order(A, self.mass_steps)
        mean_abs = A.mean(0)
        self.entry_step_ = entry
        self.per_class_ = share
        self.mean_abs_ = mean_abs
        self.order_mass_ = order_from_scores(mass_score, self.constant_)
        self.order_mean_abs_ = order_from_scores(mean_abs, self.constant_)
        if self.ordering == "mass":
            self.scores_, self.order_ = mass_score, self.order_mass_
        else:
            self.scores_, self.order_ = mean_abs, self.order_mean_abs_

    # -- probe interface -------------------------------------------------------------------
    def decision_function(self, X: Any) -> np.ndarray:
        """Logits of the fitted probe, ``[N, C]``."""
        check_is_fitted(self, "coef_")
        Xn = checked_X(self, X, reset=False)
        W = torch.from_numpy(self.coef_)[None]
        b = torch.from_numpy(self.intercept_)[None]
        with torch.no_grad():
            return softmax_logits(torch.from_numpy(Xn), W, b, self._mean, self._scale)[:, 0].numpy()

    # -- Durrani et al.'s searches (separate results; this ranker is left as it is) ---------------
    def search_lambdas(self, X: Any, y: Any, grid: Sequence[tuple[float, float]] | None = None,
                       tolerance: float = 0.01, test_size: float = 0.2, groups: Any = None,
                       refit: bool = True) -> LambdaSearch:
        """Grid search over (l1, l2), :func:`search_lambdas` with this ranker's settings.

        Returns a :class:`LambdaSearch`; records the choice as ``best_l1_``/``best_l2_`` (and
        the table as ``lambda_search_``) but changes neither ``l1``/``l2`` nor the fit of this
        ranker: with ``refit`` the result holds a fresh ranker fitted with the chosen penalties.
        """
        res = search_lambdas(self, X, y, grid=grid, tolerance=tolerance, test_size=test_size, groups=groups,
                             refit=refit)
        self.best_l1_, self.best_l2_, self.lambda_search_ = res.l1, res.l2, res.table
        return res

    def minimal_subset(self, X: Any, y: Any, delta: float = 0.01, ks: Sequence[int] | None = None,
                       test_size: float = 0.2, groups: Any = None,
                       probe: LogisticProbes | None = None) -> MinimalSubset:
        """The fewest top neurons within ``delta`` of the oracle accuracy, :func:`minimal_subset`
        with this ranker's settings (ranked by a fresh copy; this ranker is left as it is)."""
        return minimal_subset(self, X, y, delta=delta, ks=ks, test_size=test_size, groups=groups, probe=probe)


class L1(_ProbeMixin, NeuronRanker):
    """L1-regularized logistic regression (Gurnee et al.: C = 0.1, balanced classes).

    Neurons are scored by the summed |coefficient| over classes on standardized inputs.
    ``backend="torch"`` (default, fast) minimizes sklearn's objective divided by C * N,
    i.e. balanced mean cross-entropy + ``|W|_1 / (C * N)``, with Adam; ``"sklearn"`` uses
    ``LogisticRegression(l1_ratio=1, solver="saga")``.
    """

    def __init__(self, k: int | None = None, C: float = 0.1, backend: str = "torch", epochs: int = 20,
                 max_iter: int = 200, device: str = "cpu", seed: int = 0, random_state: int | None = None):
        self._store(locals())

    def _rank(self, X, y, groups):
        C = len(self.classes_)
        Xt = torch.from_numpy(X)
        mean, scale, _ = standardization(Xt)
        if self.backend == "sklearn":
            self.coef_, self.intercept_ = self._saga(((Xt - mean) / scale).numpy(), y, C)
        elif self.backend == "torch":
            cw = len(y) / (C * np.bincount(y, minlength=C))  # balanced classes
            W, b, info = train_softmax(
                Xt, torch.from_numpy(y), C, mean=mean, scale=scale,
                l1=1.0 / (self.C * len(y)), class_weight=torch.as_tensor(cw, dtype=torch.float32),
                epochs=self.epochs, batch_size=256, lr=3e-3, patience=None,
                seed=self.seed_, device=self.device,
            )
            self.coef_ = W[0].cpu().numpy()
            self.intercept_ = b[0].cpu().numpy()
            self.n_iter_ = info["epochs"]
        else:
            raise ValueError(f"backend must be 'torch' or 'sklearn', got {self.backend!r}")
        self._mean, self._scale = mean, scale
        self.per_class_ = np.abs(self.coef_)
        self.scores_ = np.abs(self.coef_).sum(0)

    def _saga(self, Z: np.ndarray, y: np.ndarray, C: int) -> tuple[np.ndarray, np.ndarray]:
        """scikit-learn's saga on standardized inputs; a binary fit's one row becomes two."""
        clf = LogisticRegression(C=self.C, l1_ratio=1.0, solver="saga", class_weight="balanced",
                                 max_iter=self.max_iter, random_state=self.seed_, **_L1_PENALTY)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(Z, y)
        self.n_iter_ = int(np.max(clf.n_iter_))
        if clf.coef_.shape[0] > 1:
            return clf.coef_, np.broadcast_to(clf.intercept_, (C,)).copy()
        coef, icpt = clf.coef_[0], clf.intercept_[0]  # binary: one row, for the second class
        return np.vstack([-coef / 2, coef / 2]), np.array([-icpt / 2, icpt / 2])

    def decision_function(self, X: Any) -> np.ndarray:
        """Logits of the fitted probe, ``[N, C]``."""
        check_is_fitted(self, "coef_")
        Xn = checked_X(self, X, reset=False)
        W = torch.from_numpy(np.ascontiguousarray(self.coef_, dtype=np.float32))[None]
        b = torch.from_numpy(np.asarray(self.intercept_, dtype=np.float32))[None]
        with torch.no_grad():
            return softmax_logits(torch.from_numpy(Xn), W, b, self._mean, self._scale)[:, 0].numpy()
