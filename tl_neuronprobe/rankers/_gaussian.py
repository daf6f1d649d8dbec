"""The Gaussian ranker of intrinsic probing: greedy forward selection under a Gaussian probe.

The numerics of one greedy step are in ``_greedy_scan.py``; the probe in ``probes.GaussianProbe``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from ..core.validation import check_k, few_threads, split_indices, to_numpy
from ..core.config import Config
from ..probes import GaussianProbe
from ._base import NeuronRanker, constant_columns, order_from_scores
from ._crossfit import SingleNeuronCV, crossfit_folds
from ._greedy_scan import GreedyScan
from ._out_of_core_probes import ClassScatter, rows_in_memory

__all__ = ["Gaussian", "GaussianScan"]


@dataclasses.dataclass(frozen=True)
class GaussianScan(Config):
    """How :class:`Gaussian`'s greedy scan computes (not what it selects): its ``scan=``.

    Parameters
    ----------
    refine : int
        Best candidates of each float32 scan re-scored exactly before choosing.
    candidates_per_block : int
        Candidate neurons scanned together (stored contiguously).
    max_memory_gb : float
        Memory the scan may keep between steps (above it, it recomputes).
    n_threads : int or None
        CPU threads of the scan (1: it is memory-bound; None keeps torch's setting).
    dtype : str
        Precision of the probe and of the exact re-scoring.

    Examples
    --------
    >>> GaussianScan(candidates_per_block=8).refine
    8
    """

    refine: int = 8
    candidates_per_block: int = 32
    max_memory_gb: float = 1.5
    n_threads: "int | None" = 1
    dtype: str = "float64"

    def validate(self) -> None:
        if int(self.refine) < 1 or int(self.candidates_per_block) < 1:
            raise ValueError(f"refine and candidates_per_block must be >= 1, got {self.refine!r}, "
                             f"{self.candidates_per_block!r}")
        if self.dtype not in ("float64", "float32"):
            raise ValueError(f"dtype must be 'float64' or 'float32', got {self.dtype!r}")


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
    ``scan.candidates_per_block`` candidates stored contiguously (``[block, class, point, candidate]``), so
    every elementwise pass streams memory once; the best ``scan.refine`` candidates are re-scored
    exactly in float64 before choosing.

    Covariances are the NIW posterior mean (``estimate="mean"``, the default), which does
    not depend on the number of neurons D; ``estimate="published"`` is the published code's
    estimate, which shrinks every covariance by N_z / (N_z + 2D + 4): with D large against the
    class sizes the Gaussians are narrow and the dev MI goes negative (see
    :class:`~tl_neuronprobe.probes.GaussianProbe`).

    Stopping: after the first pick, greedy selection stops when the best candidate raises the
    dev MI by ``min_gain`` bits or less (default 0: it adds nothing); ``n_selected_`` says
    how many picks were made (at most ``max_k``) and ``mi_`` has one entry per pick.
    Past that point the candidates' gains are ties or noise, and ranking them greedily would
    fill the order by index.  ``min_gain=None`` never stops (the published loop).

    Dev score: each dev word counts log((1 - prior_mix) p(z | h_S) + prior_mix p(z)), the
    log-loss of the Gaussian classifier mixed with the class priors (default ``prior_mix=0.01``).
    That is still a proper classifier, so H(Z) minus its dev log-loss is a (variational) lower
    bound on the MI, but one dev word 20 standard deviations from its class (activations are
    not Gaussian: a present-tense word on which the past-tense L0.N1477 fires) costs at most
    -log(0.01 p(z)) instead of hundreds of nats, which on MiniLM decided the first pick by
    which sentences fell into the dev split.  ``prior_mix=0`` is the published score.

    First pick and ``scores_`` (``cv=10``, the default): each neuron alone is scored on every
    word, by one-neuron Gaussians fitted on the other ``cv`` folds (whole ``groups`` per fold),
    and the greedy selection starts from the best.  On one 10% dev split two near-equal neurons
    (MiniLM's past-tense L0.N474 and L0.N1477, 0.004 bits apart cross-fitted) swapped places
    by 0.02-0.03 bits with the sentences that fell into the split, so the first pick changed
    with ``groups``.  Later picks use the single split, as published.  ``cv=None``: the first
    pick and ``scores_`` from the dev split alone.

    ``Gaussian.from_preset("published")`` (``estimate="published", min_gain=None, prior_mix=0,
    cv=None``) reproduces the published selection.

    ``order_``: the greedily selected neurons first (``selected_``), then the rest by their
    single-neuron MI (``scores_``, mean log p(z | h_j) in nats: -H(Z | h_j)).

    On CPU the scan runs on ``scan.n_threads`` threads (default 1: it is memory-bound, and on a
    busy machine multi-threaded small ops stall; ``None`` keeps torch's setting); ``scan`` (a
    :class:`GaussianScan`, None = its defaults) holds the other compute knobs. ``nu0``: the NIW prior's
    degrees of freedom (None: D + 2), see :class:`~tl_neuronprobe.probes.GaussianProbe`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 400)
    >>> X = rng.normal(size=(400, 10)).astype("float32"); X[:, 3] += 3 * y
    >>> int(Gaussian(max_k=2, cv=None).fit(X, y).order_[0])
    3
    """

    def __init__(
        self, k: int | None = None, max_k: int = 50, dev_size: float = 0.1, cv: int | None = 10,
        estimate: str = "mean", nu0: float | None = None, min_gain: float | None = 0.0, prior_mix: float = 0.01,
        scan: "GaussianScan | None" = None, device: str = "cpu", seed: int = 0, progress: bool = False,
    ):
        self._store(locals())

    def _scan(self) -> GaussianScan:
        if self.scan is None:
            return GaussianScan()
        if isinstance(self.scan, dict):
            return Config.from_dict({"type": "GaussianScan", **self.scan})
        return self.scan

    @classmethod
    def from_preset(cls, name: str, **params: Any) -> "Gaussian":
        """``"default"`` (posterior mean, prior-mixed dev score, stop when nothing is gained) or ``"published"``
        (Torroba Hennigen et al.'s estimate and score, every step taken); ``params`` override the preset."""
        presets = {"default": {}, "published": dict(estimate="published", min_gain=None, prior_mix=0.0, cv=None)}
        if name not in presets:
            raise ValueError(f"unknown Gaussian preset {name!r}; use one of {sorted(presets)}")
        return cls(**{**presets[name], **params})

    def _rank(self, X, y, groups):
        tr, dv = split_indices(len(y), self.dev_size, groups=groups, y=y, seed=self.seed_, min_train_per_class=2)
        self.train_index_, self.dev_index_ = tr, dv
        self.probe_ = self._new_probe()
        self.probe_.fit(X[tr], self.classes_[y[tr]])
        single = None
        if self.cv is not None:
            blocks = [np.arange(s, min(s + 4096, len(y))) for s in range(0, len(y), 4096)]
            single = self._crossfit_scores(lambda: ((b, X[b]) for b in blocks), y, groups, X.shape[1])
        self._select(X[dv], y[dv], ~constant_columns(X[tr]) & ~self.constant_, single)

    def _fit_chunks(self, chunks, y, moments, opts) -> None:
        """Per-class scatter of the training split in one pass, the dev split in memory, the same greedy steps."""
        tr, dv = split_indices(len(y), self.dev_size, groups=chunks.groups, y=y, seed=self.seed_,
                               min_train_per_class=2)
        self.train_index_, self.dev_index_ = tr, dv
        acc = ClassScatter(len(self.classes_), chunks.n_neurons)
        for pos, X in chunks.iter(tr):
            acc.update(X, y[pos])
        self.probe_ = self._new_probe()
        present = acc.count > 0
        self.probe_.fit_moments(self.classes_[present], acc.count[present], acc.mean[present],
                                acc.scatter[present], acc.variance())
        avail = ~(acc.max - acc.min == 0).numpy() & ~self.constant_
        single = None
        if self.cv is not None:  # two more passes over every row: the fold sums, then the scores
            every = np.arange(len(y))
            single = self._crossfit_scores(lambda: chunks.iter(every), y, chunks.groups, chunks.n_neurons)
            self.n_passes_ += 2
        self._select(rows_in_memory(chunks, dv), y[dv], avail, single)
        self.n_passes_ += 2

    def _crossfit_scores(self, pieces, y: np.ndarray, groups, n_neurons: int) -> np.ndarray:
        """Cross-fitted single-neuron scores over all rows; ``pieces()`` yields ``(row positions, rows)`` (two
        passes: the fold sums, then the scores)."""
        if int(self.cv) < 2:
            raise ValueError(f"cv={self.cv}: need at least 2 folds (or None for the dev split alone)")
        folds = crossfit_folds(len(y), int(self.cv), groups, self.seed_)
        cvs = SingleNeuronCV(self._new_probe(), len(self.classes_), n_neurons, int(self.cv), self.prior_mix,
                             n_neurons)
        for pos, Xp in pieces():
            cvs.add_sums(Xp, y[pos], folds[pos])
        for pos, Xp in pieces():
            cvs.add_scores(Xp, y[pos], folds[pos])
        self.cv_rows_skipped_ = cvs.rows_skipped
        return cvs.scores()

    def _new_probe(self) -> GaussianProbe:
        """The unfitted probe with this ranker's prior and estimate (also used out of core)."""
        return GaussianProbe(nu0=self.nu0, dtype=self._scan().dtype, device=self.device, estimate=self.estimate)

    def _select(self, Xdev: np.ndarray, ydev: np.ndarray, avail: np.ndarray, single: "np.ndarray | None" = None) -> None:
        """The greedy selection with the fitted ``probe_`` on the dev rows; sets the order and scores.  With
        ``single`` (cross-fitted single-neuron scores) the first pick is their best and they are ``scores_``."""
        m = min(int(self.max_k), int(avail.sum()))
        if m < 1:
            raise ValueError("every neuron is constant on the training split; nothing to rank")
        flush = torch.set_flush_denormal(True)  # exp of very negative numbers: no slow denormals
        try:
            with few_threads(float(len(self.classes_)) * len(ydev) * Xdev.shape[1], n_threads=self._scan().n_threads):
                selected, mi, single = self._greedy(Xdev, ydev, m, avail, single)
        finally:
            if flush:
                torch.set_flush_denormal(False)
        self.selected_ = np.asarray(selected, dtype=np.int64)
        self.n_selected_ = len(selected)
        self.mi_ = np.asarray(mi)
        self.scores_ = np.where(avail, single, -np.inf)
        rest = order_from_scores(self.scores_, ~avail)
        self.order_ = np.concatenate([self.selected_, rest[~np.isin(rest, self.selected_)]])

    @torch.no_grad()
    def _greedy(self, Xdev: np.ndarray, ydev: np.ndarray, m: int, avail: np.ndarray, single=None):
        """Up to ``m`` greedy steps, stopping (after the first) when the best gain is at most ``min_gain``
        bits; returns the picks, the dev MI after each, and the single-neuron scores."""
        cfg = self._scan()
        scan = GreedyScan(self.probe_, Xdev, ydev, avail, cfg.candidates_per_block, cfg.max_memory_gb, self.prior_mix)
        progress = self.progress
        selected, mis = [], []
        for step in tqdm(range(m), desc="gaussian greedy", disable=not progress):
            if step == 0 and single is not None:
                j = int(order_from_scores(np.where(avail, single, -np.inf), ~avail)[0])
                mis.append(scan.add(j))
                selected.append(j)
                continue
            obj = scan.scan()
            j, cands, exact = scan.choose(obj, cfg.refine)
            if step == 0:  # the first scan scores every neuron alone; its re-scored ones exactly
                single = obj.double().cpu().numpy()
                single[cands.cpu().numpy()] = exact.cpu().numpy()
            elif self.min_gain is not None and scan.gain_bits(float(exact.max())) <= self.min_gain:
                break
            mis.append(scan.add(j))
            selected.append(j)
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
        neurons = self._neurons(neurons)
        return self.probe_.predict_proba(X, neurons)

    def predict(self, X: Any, neurons: Any = None) -> np.ndarray:
        neurons = self._neurons(neurons)
        return self.probe_.predict(X, neurons)

    def score(self, X: Any, y: Any, neurons: Any = None) -> float:
        neurons = self._neurons(neurons)
        return self.probe_.score(X, y, neurons)
