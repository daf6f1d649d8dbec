"""The Gaussian ranker of intrinsic probing: greedy forward selection under a Gaussian probe.

The numerics of one greedy step are in ``_greedy_scan.py``; the probe in ``probes.GaussianProbe``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from ..core.validation import check_k, few_threads, split_indices, to_numpy
from ..probes import GaussianProbe, renamed_param
from ._base import NeuronRanker, constant_columns, order_from_scores
from ._greedy_scan import GreedyScan

__all__ = ["Gaussian"]


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
        self, k: int | None = None, max_features: int = 50, dev_size: float = 0.1, kappa0: float = 0.01,
        nu0: float | None = None, refine: int = 8, chunk_size: int = 32, max_memory_gb: float = 1.5,
        dtype: str | torch.dtype = "float64", n_threads: int | None = 1, device: str = "cpu", seed: int = 0,
        progress: bool = False, random_state: int | None = None, verbose: bool | None = None,
    ):
        self._store(locals())

    def _rank(self, X, y, groups):
        tr, dv = split_indices(len(y), self.dev_size, groups=groups, y=y, seed=self.seed_, min_train_per_class=2)
        self.train_index_, self.dev_index_ = tr, dv
        self.probe_ = GaussianProbe(kappa0=self.kappa0, nu0=self.nu0, dtype=self.dtype, device=self.device)
        self.probe_.fit(X[tr], self.classes_[y[tr]])
        self._select(X[dv], y[dv], ~constant_columns(X[tr]) & ~self.constant_)

    def _select(self, Xdev: np.ndarray, ydev: np.ndarray, avail: np.ndarray) -> None:
        """The greedy selection with the fitted ``probe_`` on the dev rows; sets the order and scores."""
        m = min(int(self.max_features), int(avail.sum()))
        if m < 1:
            raise ValueError("every neuron is constant on the training split; nothing to rank")
        flush = torch.set_flush_denormal(True)  # exp of very negative numbers: no slow denormals
        try:
            with few_threads(float(len(self.classes_)) * len(ydev) * Xdev.shape[1], n_threads=self.n_threads):
                selected, mi, single = self._greedy(Xdev, ydev, m, avail)
        finally:
            if flush:
                torch.set_flush_denormal(False)
        self.selected_ = np.asarray(selected, dtype=np.int64)
        self.mi_ = np.asarray(mi)
        self.scores_ = np.where(avail, single, -np.inf)
        rest = order_from_scores(self.scores_, ~avail)
        self.order_ = np.concatenate([self.selected_, rest[~np.isin(rest, self.selected_)]])

    @torch.no_grad()
    def _greedy(self, Xdev: np.ndarray, ydev: np.ndarray, m: int, avail: np.ndarray):
        """``m`` greedy steps; returns the picks, the dev MI after each, and the single-neuron scores."""
        scan = GreedyScan(self.probe_, Xdev, ydev, avail, self.chunk_size, self.max_memory_gb)
        progress = renamed_param(self, "progress", "verbose")
        selected, mis, single = [], [], None
        for step in tqdm(range(m), desc="gaussian greedy", disable=not progress):
            obj = scan.scan()
            j, cands, exact = scan.choose(obj, self.refine)
            if step == 0:  # the first scan scores every neuron alone; its re-scored ones exactly
                single = obj.double().cpu().numpy()
                single[cands.cpu().numpy()] = exact.cpu().numpy()
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
