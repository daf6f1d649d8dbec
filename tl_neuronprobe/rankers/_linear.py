"""Probe-based rankers: LCA's elastic-net softmax probe (``Linear``), the L1 probe, and the
weight-mass ordering; the searches over them live in ``_linear_search.py``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import sklearn
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

from ..core.config import Config
from ..core.validation import to_numpy
from ..probes import SoftmaxTrainer, checked_X, softmax_fit, softmax_logits, standardization
from ._base import NeuronRanker, order_from_scores
from ._forward import evenly_spaced, forward_selection
from ._out_of_core_probes import (REFINE_FLOOR_BYTES, chunk_columns, chunk_mean_abs_deviation, refine_limits,
                                  rows_in_memory, train_chunks)

__all__ = ["Linear", "L1", "weight_mass_order"]


def weight_mass_order(W: Any, n_steps: int = 100) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Weight-mass ordering of Dalvi et al. (2019) / Durrani et al. (2020).

    For class c, sort |W_c,i| descending and take the smallest prefix whose cumulative sum
    reaches p * sum_i |W_c,i| (at least one neuron); the top set at p is the union over
    classes.  p sweeps 0, 1/n_steps, ..., 1 and neurons are appended as they enter.  Ties
    within one step (the toolkit leaves them in set-iteration order) are broken by the
    neuron's total absolute weight over classes, then by index: the first step alone adds
    one neuron per class and the next ones add hundreds, so this decides the small-k sets.
    (The largest-share tie-break suggested in the methods notes favours rare classes, whose
    weight sits on few neurons; docs/rankers.md has the comparison.)  Neurons with zero weight
    everywhere come last.

    Returns ``(order, entry_step, share, score)``: ``share [C, D]`` is |W_c,i| / sum_i |W_c,i|,
    ``entry_step [D]`` the step at which each neuron enters (``n_steps + 1`` = never), and
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
    step_sorted = np.floor(before * n_steps + 1e-9).astype(np.int64) + 1
    step_sorted[:, 0] = 0
    # never reached: all the mass is already ahead of it (zero weights)
    step_sorted[(before >= 1 - 1e-9) | (srt <= 0)] = n_steps + 1
    step_sorted[tot[:, 0] <= 0, :] = n_steps + 1
    step_sorted = np.minimum(step_sorted, n_steps + 1)
    entry = np.full((C, D), n_steps + 1, dtype=np.int64)
    np.put_along_axis(entry, idx, step_sorted, axis=1)
    entry_step = entry.min(0)
    total = A.sum(0)
    tie = total / total.max() if total.max() > 0 else total  # in [0, 1]
    order = np.lexsort((np.arange(D), -tie, entry_step)).astype(np.int64)
    score = (n_steps + 1 - entry_step) + 0.5 * tie
    return order, entry_step, share, score


#: the weight-mass ordering's steps (p = 0, 1/100, ..., 1)
MASS_STEPS = 100
#: forward selection (``refine_k``) looks among this many neurons of the weight-mass ordering
REFINE_CANDIDATES = 1000

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
    ``l1``/``l2`` default to ``1e-3``/``0.1`` (``l1=None`` is ``1e-3``; the l2 of Fan et al.
    2023: the L2 part gives correlated neurons similar weights, so the ranking no longer
    depends on the seed's shuffling; figures in docs/rankers.md); ``Linear.from_preset("neurox")`` uses
    ``1e-3``/``1e-3`` (the toolkit's demo), ``"antverg"`` ``1e-3``/``1e-2``; the values used are
    ``l1_``/``l2_``.

    ``mass="contribution"`` (the default) measures a neuron's weight for class c by its
    typical contribution to the class's logit, ``|W_c,i| * mean|x_i - mean_i|`` on the scale the probe
    sees (``contribution_scale_`` holds the second factor), before the weight-mass (or mean) ordering;
    ``mass="weight"`` (the ``"neurox"``/``"antverg"`` presets') uses ``|W_c,i|`` as published. On
    standardized inputs a neuron that fires rarely but hugely gets weights as large as a broadly
    informative one while contributing to few words (measured on real English in docs/rankers.md).

    ``ranking_l1`` (None: ``3e-3`` while ``l1`` is None, else ``l1``'s value; pass
    ``l1``'s value to rank by the reported probe) orders the neurons by a
    second, sparser probe trained jointly with the reported one (the same mini-batches, one weight matrix
    ``[2C, D]``, so one pass over the data): a stronger L1 concentrates each class's mass on fewer
    neurons, which ranks better at small k, while the reported probe (``coef_``, ``score``) keeps ``l1``
    and its accuracy. ``ranking_coef_`` holds the ranking probe's weights (``coef_`` when they are the same).

    ``refine_k`` (``200``; ``0`` = off, as in the published presets) orders the first ``refine_k``
    neurons by forward selection (:func:`~tl_neuronprobe.rankers.forward_selection`: greedy least squares on
    the class indicators, over at most 50,000 evenly spaced training rows) among the top
    1,000 (``REFINE_CANDIDATES``) of the weight-mass ordering; it stops early when a step no longer beats
    chance or no longer helps accuracy on a held-out fifth of the training groups, and the rest keep their
    mass order. Forward selection sees each candidate standardized and clipped at ``refine_clip`` (3)
    standard deviations (``None``: raw): least squares would otherwise count against a neuron every unit it
    fires beyond its usual range on a few words of its class, which a logistic probe does not (tune-set
    figures in docs/rankers-real.md, session 6). The probe proposes, forward selection decides the order a
    small probe should take them in: a neuron that repeats one already taken (a redundant copy, which the
    elastic net deliberately weights alike) moves down, one that adds what the taken ones lack moves up. On
    held-out real English this raised a fresh probe's accuracy on the top 5-20 by 1-10 points
    (docs/rankers-real.md); ``order_mass_`` keeps LCA's own ordering and ``forward_`` the refined head.

    ``trainer`` (a :class:`~tl_neuronprobe.probes.SoftmaxTrainer`; None = its defaults) says how the probe is
    trained. The default trains on standardized inputs (weights are then comparable
    across neurons of different scale) with Adam on shuffled mini-batches for the full 10
    epochs (``max_steps``; at least ``min_steps=300`` optimizer steps on small data).  It does not stop early on dev
    accuracy: accuracy plateaus long before the L1 term has pushed the weights of unneeded
    neurons down, and the ranking needs that (``SoftmaxTrainer(patience=2)`` keeps the epoch with
    the best accuracy on a ``dev_size`` split instead, by group if ``groups`` is given).  Its
    learning rate is ``0.1 / sqrt(n_neurons)`` (2.6e-3 for 1,536 neurons, 1e-3 for 9,216: Adam
    moves every weight by about lr per step, so the logits move by about lr * sqrt(D)), its
    batch about 1/80 of the training words (64 to 256), and the weights are averaged over
    about one epoch of steps (Polyak averaging, which smooths Adam's noise).  Problems with
    at most ``lbfgs_below`` values in X (``solver="auto"``) are instead solved to convergence
    with full-batch L-BFGS (|w| smoothed as sqrt(w^2 + 1e-6) - 1e-3), which is faster and exact there.
    ``Linear.from_preset("neurox")`` reproduces the toolkit (raw inputs, Adam 1e-3, batch 32, 10 epochs, no
    shuffling, no dev split); ``"antverg"`` Antverg & Belinkov's settings. ``device``: where the probe trains;
    ``progress``: a progress bar. The lambda search of Durrani et al. is :class:`LinearCV`.

    Fitted: ``coef_ [C, D]`` (on the standardized scale when standardized), ``intercept_``, ``ranking_coef_``,
    ``ranking_l1_``,
    ``order_``, ``scores_`` (descending order = ``order_``), ``per_class_ [C, D]`` (each
    neuron's share of its class's weight, or contribution, mass), ``order_mean_abs_``, ``mean_abs_``,
    ``contribution_scale_`` (None with ``mass="weight"``), ``forward_`` (the neurons forward selection
    ordered, first ones of ``order_``; empty when ``refine_k=0``).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 400)
    >>> X = rng.normal(size=(400, 20)).astype("float32"); X[:, 7] += 3 * y
    >>> int(Linear(seed=0).fit(X, y).order_[0])
    7
    """

    #: each preset's constructor parameters (JSON-able: the trainer as ``SoftmaxTrainer.to_dict()``); see
    #: :meth:`from_preset`
    PRESETS: dict[str, dict[str, Any]] = {
        # cleaner default: standardized inputs, shuffled batches, the full epochs (no early stopping); l2 = 0.1
        # (Fan et al. 2023's value): the L2 part of the elastic net gives correlated neurons similar weights,
        # which makes the weight-mass ranking stable across seeds (docs/rankers.md)
        "fast": {},
        # NeuroX toolkit: 10 epochs, batch 32, Adam 1e-3, no shuffling, no standardization, mass of |W|
        "neurox": dict(l1=1e-3, l2=1e-3, mass="weight", refine_k=0, trainer=SoftmaxTrainer(
            max_steps=10, min_steps=0, batch_size=32, lr=1e-3, standardize=False, shuffle=False, average=False,
            init="torch", solver="adam").to_dict()),
        # Antverg & Belinkov's code: Adam 1e-2, batch 32, 10 epochs
        "antverg": dict(l1=1e-3, l2=1e-2, mass="weight", refine_k=0, trainer=SoftmaxTrainer(
            max_steps=10, min_steps=0, batch_size=32, lr=1e-2, standardize=False, shuffle=True, average=False,
            init="torch", solver="adam").to_dict()),
    }

    def __init__(
        self, k: int | None = None, l1: float | None = None, l2: float = 0.1, ranking_l1: float | None = None,
        ordering: str = "mass", mass: str = "contribution", refine_k: int = 200, refine_clip: float | None = 3.0,
        trainer: "SoftmaxTrainer | None" = None, device: str = "cpu", seed: int = 0, progress: bool = False,
    ):
        self._store(locals())

    @classmethod
    def from_preset(cls, name: str, **params: Any) -> "Linear":
        """A ``Linear`` with a preset's parameters (:attr:`PRESETS`); ``params`` override them.

        ``"fast"`` is ``Linear()``; ``"neurox"`` the NeuroX toolkit (raw inputs, Adam 1e-3, batch 32, 10 epochs,
        no shuffling, ``l2=1e-3``, mass of ``|W|``, no forward selection); ``"antverg"`` Antverg & Belinkov's
        settings (Adam 1e-2, shuffled, ``l2=1e-2``).

        Examples
        --------
        >>> Linear.from_preset("neurox").trainer.lr
        0.001
        """
        if name not in cls.PRESETS:
            raise ValueError(f"unknown Linear preset {name!r}; use one of {sorted(cls.PRESETS)}")
        merged = {**cls.PRESETS[name], **params}
        if isinstance(merged.get("trainer"), dict):
            merged["trainer"] = Config.from_dict(merged["trainer"])
        return cls(**merged)

    # -- training --------------------------------------------------------------------------
    def _trainer(self) -> SoftmaxTrainer:
        """``trainer`` as a :class:`SoftmaxTrainer` (None: the default; a dict: as ``to_dict`` wrote it)."""
        t = self.trainer
        if t is None:
            return SoftmaxTrainer()
        if isinstance(t, dict):
            t = Config.from_dict({"type": "SoftmaxTrainer", **t})
        if not isinstance(t, SoftmaxTrainer):
            raise TypeError(f"trainer must be a SoftmaxTrainer, got {type(t).__name__}")
        return t

    def _settings(self) -> dict:
        """The penalties and orderings of this fit: ``l1`` None is 1e-3 ranked by a 3e-3 probe (``ranking_l1``)."""
        return {"l1": 1e-3 if self.l1 is None else self.l1, "l2": self.l2, "mass": self.mass,
                "refine_k": self.refine_k,
                "ranking_l1": self.ranking_l1 if self.ranking_l1 is not None else (3e-3 if self.l1 is None else None)}

    def _train(self, X: np.ndarray, y: np.ndarray, n_classes: int, groups, l1s, l2s, seed: int, progress: bool,
               desc: str = "linear"):
        """Train one probe per (l1, l2) pair; returns W [P, C, D], b [P, C], mean, scale, info."""
        return self._trainer().fit(X, y, n_classes, l1s, l2s, groups=groups, seed=seed, device=self.device,
                                   progress=progress, desc=desc)

    def _checked_settings(self) -> dict:
        if self.ordering not in ("mass", "mean_abs"):
            raise ValueError(f"ordering must be 'mass' or 'mean_abs', got {self.ordering!r}")
        s = self._settings()
        if s["mass"] not in ("contribution", "weight"):
            raise ValueError(f"mass must be 'contribution' or 'weight', got {s['mass']!r}")
        if int(s.get("refine_k") or 0) < 0:
            raise ValueError(f"refine_k must be >= 0, got {s.get('refine_k')!r}")
        if self.refine_clip is not None and not float(self.refine_clip) > 0:
            raise ValueError(f"refine_clip must be > 0 or None, got {self.refine_clip!r}")
        return s

    def _rank(self, X, y, groups):
        s = self._checked_settings()
        trainer = self._trainer()
        solver, train_rows, _ = trainer.split(y, X.shape[1], groups, self.seed_)
        C, lbfgs = len(self.classes_), solver == "lbfgs"
        wanted = self._l1s(s)
        l1s = wanted if not lbfgs else wanted[:1]  # Adam: both probes in one weight matrix, one pass
        W, b, mean, scale, info = self._train(X, y, C, groups, l1s, [s["l2"]] * len(l1s), self.seed_, self.progress)
        if len(l1s) < len(wanted):  # L-BFGS's line search would couple two probes: solve each alone
            W = torch.cat([W, self._train(X, y, C, groups, wanted[1:], [s["l2"]], self.seed_, self.progress)[0]])
        mad = mean_abs_deviation(torch.from_numpy(X), mean) if s["mass"] == "contribution" else None
        self._adopt(s, W, b, mean, scale, info, mad)
        self._refine(s, y, train_rows, lambda rows, neurons: _gather(X, rows, neurons), groups)

    def _fit_chunks(self, chunks, y, moments, opts) -> None:
        """Adam on mini-batches drawn chunk by chunk (one chunk holding every row: the in-memory fit, bit for
        bit); L-BFGS or a dev split read the rows into memory."""
        s = self._checked_settings()
        trainer = self._trainer()
        solver, tr, dv = trainer.split(y, chunks.n_neurons, chunks.groups, self.seed_)
        if solver == "lbfgs" or len(dv):  # full-batch L-BFGS (<= lbfgs_below values) or a dev split: in memory
            if len(dv) and len(dv) > chunks.chunk_rows:
                raise ValueError(f"early stopping out of core holds the dev split in memory: {len(dv)} rows exceed "
                                 f"the chunk of {chunks.chunk_rows}; raise chunk_bytes or use patience=None")
            if solver == "lbfgs" or len(tr) <= chunks.chunk_rows:
                self._rank(rows_in_memory(chunks, np.arange(chunks.n_rows)), y, chunks.groups)
                return
            raise ValueError("early stopping out of core is supported only when the training split fits one chunk")
        lr, batch_size, epochs = trainer.schedule(chunks.n_neurons, len(tr))
        l1s = self._l1s(s)  # the reported probe, then the sparser ranking probe (one weight matrix)
        W, b, mean, scale, info = train_chunks(
            chunks, y, tr, len(self.classes_), standardize=trainer.standardize, batch_size=batch_size,
            shuffle=trainer.shuffle, seed=self.seed_, device=self.device, l1=l1s, l2=[s["l2"]] * len(l1s),
            epochs=epochs, lr=lr, init=trainer.init, average=trainer.average, progress=self.progress, desc="linear")
        mad = chunk_mean_abs_deviation(chunks, mean) if s["mass"] == "contribution" else None
        self._adopt(s, W, b, mean, scale, info, mad)
        budget = max(chunks.chunk_rows * chunks.n_neurons * 4, REFINE_FLOOR_BYTES)  # the chunk budget, bytes
        candidates, max_rows = refine_limits(budget, chunks.n_neurons, REFINE_CANDIDATES, s.get("refine_k") or 0)
        read = self._refine(s, y, tr, lambda rows, neurons: chunk_columns(chunks, rows, neurons), chunks.groups,
                            max_rows, candidates)
        self.n_passes_ += int(trainer.standardize) + info["epochs"] + int(mad is not None) + int(read)

    def _refine(self, s: dict, y: np.ndarray, train_rows: np.ndarray, columns, groups=None,
                max_rows: int = REFINE_ROWS, max_candidates: "int | None" = None) -> bool:
        """Order the head of ``order_`` by forward selection (``refine_k``) among its top ``REFINE_CANDIDATES``
        (at most ``max_candidates``), on at most ``max_rows`` evenly spaced training rows;
        ``columns(rows, neurons)`` returns those activations, ``[len(rows), len(neurons)]``. Returns whether
        it read them (a pass over the rows out of core, even when forward selection then takes nothing)."""
        k = int(s.get("refine_k") or 0)
        self.forward_ = np.array([], dtype=np.int64)
        if k == 0:
            return False
        candidates = self.order_[:min(REFINE_CANDIDATES, max_candidates or REFINE_CANDIDATES)]
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
        order, entry, share, mass_score = weight_mass_order(A, MASS_STEPS)
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


class L1(_ProbeMixin, NeuronRanker):
    """L1-regularized logistic regression (Gurnee et al.: C = 0.1, balanced classes).

    Neurons are scored by the summed |coefficient| over classes on standardized inputs.
    ``backend="torch"`` (default, fast) minimizes sklearn's objective divided by C * N,
    i.e. balanced mean cross-entropy + ``|W|_1 / (C * N)``, with Adam; ``"sklearn"`` uses
    ``LogisticRegression(l1_ratio=1, solver="saga")``. ``max_steps``: the torch backend's epochs;
    ``saga_max_steps``: saga's iterations.
    """

    def __init__(self, k: int | None = None, C: float = 0.1, backend: str = "torch", max_steps: int = 20,
                 saga_max_steps: int = 200, device: str = "cpu", seed: int = 0):
        self._store(locals())

    def _rank(self, X, y, groups):
        C = len(self.classes_)
        Xt = torch.from_numpy(X)
        mean, scale, _ = standardization(Xt)
        if self.backend == "sklearn":
            self.coef_, self.intercept_ = self._saga(((Xt - mean) / scale).numpy(), y, C)
        elif self.backend == "torch":
            cw = len(y) / (C * np.bincount(y, minlength=C))  # balanced classes
            W, b, info = softmax_fit(
                Xt, torch.from_numpy(y), C, mean=mean, scale=scale,
                l1=1.0 / (self.C * len(y)), class_weight=torch.as_tensor(cw, dtype=torch.float32),
                epochs=self.max_steps, batch_size=256, lr=3e-3, patience=None,
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

    def _fit_chunks(self, chunks, y, moments, opts) -> None:
        if self.backend != "torch":
            raise ValueError(f"L1(backend={self.backend!r}) needs X in memory; out of core use backend='torch'")
        C, N = len(self.classes_), chunks.n_rows
        cw = N / (C * np.bincount(y, minlength=C))  # balanced classes
        W, b, mean, scale, info = train_chunks(
            chunks, y, np.arange(N), C, standardize=True, batch_size=256, shuffle=True, seed=self.seed_,
            device=self.device, l1=1.0 / (self.C * N), class_weight=torch.as_tensor(cw, dtype=torch.float32),
            epochs=self.max_steps, lr=3e-3)
        self.coef_, self.intercept_ = W[0].cpu().numpy(), b[0].cpu().numpy()
        self.n_iter_ = info["epochs"]
        self.n_passes_ += 1 + info["epochs"]
        self._mean, self._scale = mean, scale
        self.per_class_ = np.abs(self.coef_)
        self.scores_ = np.abs(self.coef_).sum(0)

    def _saga(self, Z: np.ndarray, y: np.ndarray, C: int) -> tuple[np.ndarray, np.ndarray]:
        """scikit-learn's saga on standardized inputs; a binary fit's one row becomes two."""
        clf = LogisticRegression(C=self.C, l1_ratio=1.0, solver="saga", class_weight="balanced",
                                 max_iter=self.saga_max_steps, random_state=self.seed_, **_L1_PENALTY)
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
