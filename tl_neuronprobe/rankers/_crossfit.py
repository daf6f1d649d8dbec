"""Cross-fitted single-neuron dev MI for the Gaussian ranker: its first pick and the order after the greedy stop.

Not the greedy step (``_greedy_scan.py``) nor the probe (``probes.GaussianProbe``): only each neuron alone, scored
on every row once, by a one-neuron Gaussian probe fitted on the other folds.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..probes import GaussianProbe

LOG_2PI = math.log(2 * math.pi)


def crossfit_folds(n: int, n_folds: int, groups: "np.ndarray | None", seed: int) -> np.ndarray:
    """Fold of every row, ``[n]``: seeded, whole ``groups`` (e.g. sentences) in one fold."""
    rng = np.random.default_rng(seed)
    if groups is None:
        return rng.permutation(n) % n_folds
    _, inv = np.unique(groups, return_inverse=True)
    return (rng.permutation(int(inv.max()) + 1) % n_folds)[inv]


class SingleNeuronCV:
    """Mean over rows of log((1 - mix) p(y | h_j) + mix p(y)) for every neuron j, each row scored by the fold's
    one-neuron Gaussians fitted on the other folds (the estimate and floors of ``probe``, which stays unfitted).

    Rows arrive in any number of pieces: first every piece through :meth:`add_sums` (per fold and class: count,
    sum, sum of squares, float64), then every piece through :meth:`add_scores`.  A class with fewer than two
    training rows in a fold is left out of that fold's model and its rows there out of the score (counted in
    ``rows_skipped``).
    """

    def __init__(self, probe: GaussianProbe, n_classes: int, n_neurons: int, n_folds: int, prior_mix: float,
                 n_dims_total: int, block_elements: int = 2**22):
        self.probe, self.C, self.D, self.K = probe, n_classes, n_neurons, n_folds
        self.mix, self.Dt, self.block = float(prior_mix), int(n_dims_total), int(block_elements)
        self.s1 = torch.zeros(n_folds * n_classes, n_neurons, dtype=torch.float64)
        self.s2 = torch.zeros_like(self.s1)
        self.count = torch.zeros(n_folds * n_classes, dtype=torch.float64)
        self.total = torch.zeros(n_neurons, dtype=torch.float64)
        self.rows, self.rows_skipped = 0, 0
        self._models: dict[int, tuple] = {}

    def add_sums(self, X: np.ndarray, y: np.ndarray, fold: np.ndarray) -> None:
        key = torch.from_numpy(np.asarray(fold) * self.C + np.asarray(y)).long()
        x = torch.from_numpy(np.asarray(X)).double()
        self.s1.index_add_(0, key, x)
        self.s2.index_add_(0, key, x.square())
        self.count.index_add_(0, key, torch.ones(len(key), dtype=torch.float64))

    def _model(self, k: int) -> tuple:
        """Fold k's one-neuron Gaussians: (classes kept, mean, variance, log prior), each ``[C', D]`` / ``[C']``."""
        if k in self._models:
            return self._models[k]
        s1 = self.s1.view(self.K, self.C, self.D)
        s2 = self.s2.view(self.K, self.C, self.D)
        cnt = self.count.view(self.K, self.C)
        n = cnt.sum(0) - cnt[k]  # training counts per class: every fold but k
        S1, S2 = s1.sum(0) - s1[k], s2.sum(0) - s2[k]
        keep = n >= 2
        n, S1, S2 = n[keep], S1[keep], S2[keep]
        mean = S1 / n[:, None]
        scatter = (S2 - S1 * mean).clamp_min(0.0)  # sum of squared deviations, per class
        N = n.sum()
        grand = S1.sum(0) / N
        pooled = ((S2.sum(0) - N * grand.square()) / (N - 1)).clamp_min(0.0)  # each neuron's overall variance
        floor = (self.probe.var_floor * pooled).clamp_min(self.probe.scale_floor * float(pooled.mean()) + 1e-30)
        lam = torch.maximum(scatter / (n[:, None] - 1), floor[None])
        den = torch.as_tensor(self.probe._denominator(n.numpy(), self.Dt), dtype=torch.float64)
        var = (lam + scatter) / den[:, None]
        logpi = torch.log(n / N)
        self._models[k] = (keep, mean, var, logpi)
        return self._models[k]

    @torch.no_grad()
    def add_scores(self, X: np.ndarray, y: np.ndarray, fold: np.ndarray) -> None:
        fold, y = np.asarray(fold), np.asarray(y)
        for k in np.unique(fold):
            keep, mean, var, logpi = self._model(int(k))
            cls = torch.nonzero(keep).flatten().numpy()
            rows = np.flatnonzero((fold == k) & np.isin(y, cls))
            self.rows_skipped += int((fold == k).sum()) - len(rows)
            if len(rows) == 0:
                continue
            yk = torch.from_numpy(np.searchsorted(cls, y[rows]))
            x = torch.from_numpy(np.asarray(X)[rows]).double()
            step = max(1, self.block // max(1, len(rows) * len(cls)))
            for s in range(0, self.D, step):
                sl = slice(s, s + step)
                r = x[None, :, sl] - mean[:, None, sl]  # [C', n, d]
                joint = logpi[:, None, None] - 0.5 * (LOG_2PI + var[:, None, sl].log() + r.square() / var[:, None, sl])
                post = joint.gather(0, yk.view(1, -1, 1).expand(1, len(rows), joint.shape[2]))[0] - torch.logsumexp(joint, 0)
                if self.mix > 0:
                    post = torch.logaddexp(post + math.log1p(-self.mix), (math.log(self.mix) + logpi[yk])[:, None])
                self.total[sl] += post.sum(0)
            self.rows += len(rows)

    def scores(self) -> np.ndarray:
        """Per neuron, the mean over scored rows of the mixed log p(y | h_j) (nats): -H(Z | h_j) cross-fitted."""
        if self.rows == 0:
            raise ValueError("no row could be scored: every class has fewer than two training rows in every fold")
        return (self.total / self.rows).numpy()
