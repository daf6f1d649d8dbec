"""The Gaussian probe of intrinsic probing: one Gaussian per class under the NIW prior (not the greedy ranker)."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from ..core.validation import resolve_device, to_numpy
from ._checks import checked_X, checked_y

__all__ = ["GaussianProbe"]


class GaussianProbe(ClassifierMixin, BaseEstimator):
    """p(z | h_S) ∝ p(z) N(h_S; mu_z[S], Sigma_z[S, S]) under the NIW prior of intrinsic probing.

    Prior (Torroba Hennigen et al. 2020): mu_0 = class mean, kappa_0 = 0.01, nu_0 = D + 2,
    Lambda_0 = diag(class covariance), so mu* = class mean; (kappa_0 drops out because mu_0
    is the class mean; it is kept as a documented parameter).  With S_z the class scatter and
    N_z the class size, ``estimate`` picks the covariance estimate:

    * ``"mean"`` (default): the posterior mean, Sigma* = (Lambda_0 + S_z) / (nu_0 + N_z - D - 1)
      = (Lambda_0 + S_z) / (N_z + 1).  The posterior of any block Sigma[S, S] is inverse-Wishart
      with nu_0 - (D - |S|) + N_z degrees of freedom, and its mean is this same slice: the
      estimate does not depend on D nor on the subset, so a probe on a subset is the posterior
      of that subset and, at the same time, a slice of one fitted model.
    * ``"published"``: the published code's Sigma* = (Lambda_0 + S_z) / (nu_0 + N_z + D + 2).
      D enters twice, so with D in the thousands and N_z in the hundreds every covariance is
      shrunk N_z / (N_z + 2D + 4), about tenfold on MiniLM (D = 1536), and held-out likelihoods
      collapse (negative dev MI).  Kept to reproduce the published rankings.

    D is the size of the full representation (``n_dims_total``).  Class priors are the
    training frequencies.  Covariances are built lazily from the stored class-centred data,
    so D can be large.  If round-off makes a slice indefinite, ``-10 * lambda_min * I`` is
    added (as the published code does).  Within-class variances are floored at ``var_floor``
    times the neuron's overall variance (a neuron that is constant within a class, e.g. a
    GELU/ReLU neuron that is silent for it, would otherwise give a degenerate Gaussian) and at
    ``scale_floor`` times the mean overall variance of the fitted neurons (the data scale): a
    near-constant neuron (std 1e-4 against a typical 0.2: float32 round-off around an
    activation's floor) would otherwise give needle-thin Gaussians that decide on round-off
    and score far below chance.  ``var_floored_`` marks the floored (class, neuron) pairs.
    """

    def __init__(
        self,
        kappa0: float = 0.01,
        nu0: float | None = None,
        dtype: str | torch.dtype = "float64",
        device: str | torch.device = "cpu",
        var_floor: float = 1e-4,
        estimate: str = "mean",
        scale_floor: float = 1e-6,
    ):
        self.kappa0 = kappa0
        self.nu0 = nu0
        self.dtype = dtype
        self.device = device
        self.var_floor = var_floor
        self.estimate = estimate
        self.scale_floor = scale_floor

    def fit(self, X: Any, y: Any, n_dims_total: int | None = None) -> "GaussianProbe":
        Xn = checked_X(self, X, reset=True)
        y_enc, classes = checked_y(self, y, Xn.shape[0], min_count=2, classifier=True)
        self.dtype_ = getattr(torch, self.dtype) if isinstance(self.dtype, str) else self.dtype
        dev = resolve_device(self.device)
        N, D = Xn.shape
        Dt = int(n_dims_total) if n_dims_total is not None else D
        if Dt < D:
            raise ValueError(f"n_dims_total={Dt} is smaller than the number of columns ({D})")
        C = len(classes)
        order = np.argsort(y_enc, kind="stable")
        counts = np.bincount(y_enc, minlength=C)
        Xs = torch.from_numpy(Xn[order]).to(dev, self.dtype_)
        offsets = np.concatenate([[0], np.cumsum(counts)])
        means = torch.stack([Xs[offsets[c] : offsets[c + 1]].mean(0) for c in range(C)])
        for c in range(C):
            Xs[offsets[c] : offsets[c + 1]] -= means[c]
        var = torch.stack(
            [Xs[offsets[c] : offsets[c + 1]].square().sum(0) / (counts[c] - 1) for c in range(C)]
        )
        pooled = torch.as_tensor(Xn, dtype=self.dtype_).var(0)  # each neuron's overall variance
        self._Xc, self._offsets, self._scatter = Xs, offsets, None
        return self._set_moments(classes, counts, means, var, pooled, Dt, dev)

    def fit_moments(self, classes: Any, counts: Any, means: torch.Tensor, scatter: torch.Tensor,
                    variance: torch.Tensor, n_dims_total: int | None = None) -> "GaussianProbe":
        """Fit from per-class sufficient statistics instead of rows (out of core): ``counts [C]``, ``means
        [C, D]``, ``scatter [C, D, D]`` (sum of (x - mean)(x - mean)^T over the class) and ``variance [D]``
        (each neuron's variance over all rows, ddof 1). The same estimate as :meth:`fit` on those rows."""
        self.dtype_ = getattr(torch, self.dtype) if isinstance(self.dtype, str) else self.dtype
        dev = resolve_device(self.device)
        counts = np.asarray(counts, dtype=np.int64)
        if counts.min() < 2:
            raise ValueError("every class needs at least two rows")
        scatter = torch.as_tensor(scatter).to(dev, self.dtype_)
        D = scatter.shape[-1]
        Dt = int(n_dims_total) if n_dims_total is not None else D
        var = torch.diagonal(scatter, dim1=1, dim2=2) / torch.as_tensor(counts - 1, dtype=self.dtype_)[:, None]
        self._Xc, self._offsets, self._scatter = None, None, scatter
        self.n_features_in_ = D
        return self._set_moments(np.asarray(classes), counts, torch.as_tensor(means).to(dev, self.dtype_), var,
                                 torch.as_tensor(variance).to(dev, self.dtype_), Dt, dev)

    def _set_moments(self, classes, counts, means, var, pooled, Dt, dev) -> "GaussianProbe":
        floor = (self.var_floor * pooled).clamp_min(self.scale_floor * float(pooled.mean()) + 1e-30)[None, :]
        self.var_floored_ = (var < floor).cpu().numpy()
        var = torch.maximum(var, floor)
        denominator = self._denominator(counts, Dt)
        self.classes_ = classes
        self.n_features_in_ = means.shape[1]
        self.n_dims_total_ = Dt
        self.counts_ = counts
        self.priors_ = counts / counts.sum()
        self.log_priors_ = torch.log(torch.as_tensor(self.priors_, dtype=self.dtype_, device=dev))
        self.means_ = means
        self.lambda0_ = var  # diag of Lambda_0, per class
        self.denominator_ = torch.as_tensor(denominator, dtype=self.dtype_, device=dev)
        return self

    def _denominator(self, counts: np.ndarray, Dt: int) -> np.ndarray:
        """Per class, the number (Lambda_0 + S_z) is divided by: ``estimate``'s rule (see the class doc)."""
        nu0 = float(Dt + 2) if self.nu0 is None else float(self.nu0)
        if self.estimate == "published":
            return nu0 + counts + Dt + 2.0
        if self.estimate != "mean":
            raise ValueError(f"estimate={self.estimate!r}: use 'mean' (posterior mean) or 'published'")
        den = nu0 + counts - Dt - 1.0
        if den.min() <= 0:
            raise ValueError(f"estimate='mean' needs nu0 + N_z > D + 1 for the posterior mean to exist; nu0={nu0}, "
                             f"D={Dt}, smallest class N_z={counts.min()} (leave nu0=None for D + 2)")
        return den

    def _class_scatter(self, c: int, rows: torch.Tensor, cols: "torch.Tensor | None" = None) -> torch.Tensor:
        """The class's scatter S_z[rows, cols] (all columns for None)."""
        if self._scatter is not None:
            S = self._scatter[c][rows]
            return S if cols is None else S[:, cols]
        Xc = self._Xc[self._offsets[c] : self._offsets[c + 1]]
        return Xc[:, rows].t() @ (Xc if cols is None else Xc[:, cols])

    # -- covariance pieces (Sigma*) --------------------------------------------------------
    def variances(self) -> torch.Tensor:
        """diag Sigma*_z for every class, ``[C, D]``."""
        scatter_diag = torch.zeros_like(self.lambda0_)
        for c in range(len(self.classes_)):
            if self._scatter is not None:
                scatter_diag[c] = torch.diagonal(self._scatter[c])
                continue
            Xc = self._Xc[self._offsets[c] : self._offsets[c + 1]]
            scatter_diag[c] = Xc.square().sum(0)
        return (self.lambda0_ + scatter_diag) / self.denominator_[:, None]

    def cov_rows(self, rows: Any) -> torch.Tensor:
        """Sigma*_z[rows, :] for every class, ``[C, len(rows), D]``."""
        rows = torch.as_tensor(np.atleast_1d(to_numpy(rows)), dtype=torch.long)
        out = []
        for c in range(len(self.classes_)):
            r = self._class_scatter(c, rows).clone()  # [m, D]
            r[torch.arange(len(rows)), rows] += self.lambda0_[c, rows]
            out.append(r / self.denominator_[c])
        return torch.stack(out)

    def covariance(self, neurons: Any) -> torch.Tensor:
        """Sigma*_z[S, S], ``[C, k, k]``."""
        S = torch.as_tensor(np.atleast_1d(to_numpy(neurons)), dtype=torch.long)
        out = []
        for c in range(len(self.classes_)):
            cov = self._class_scatter(c, S, S).clone()
            cov.diagonal().add_(self.lambda0_[c, S])
            out.append(cov / self.denominator_[c])
        return torch.stack(out)

    def cholesky(self, neurons: Any) -> torch.Tensor:
        """Cholesky factors of the slices, with the published ``-10 lambda_min I`` fix."""
        cov = self.covariance(neurons)
        L, info = torch.linalg.cholesky_ex(cov)
        for _ in range(5):
            bad = torch.nonzero(info > 0).flatten()
            if len(bad) == 0:
                return L
            for c in bad.tolist():
                lam = torch.linalg.eigvalsh(cov[c]).min()
                shift = -10.0 * lam if lam < 0 else 1e-10 * cov[c].diagonal().mean()
                cov[c].diagonal().add_(shift)
            L, info = torch.linalg.cholesky_ex(cov)
        if bool((info > 0).any()):
            raise np.linalg.LinAlgError("covariance slice is not positive definite")
        return L

    def _resolve(self, neurons: Any) -> np.ndarray:
        check_is_fitted(self, "means_")
        if neurons is None:
            return np.arange(self.n_features_in_)
        S = np.atleast_1d(to_numpy(neurons)).astype(np.int64)
        if len(S) == 0:
            raise ValueError("need at least one neuron")
        if S.min() < 0 or S.max() >= self.n_features_in_:
            raise ValueError(f"neuron indices must be in [0, {self.n_features_in_})")
        return S

    def log_likelihood(self, X: Any, neurons: Any = None, chunk_rows: int = 4096) -> torch.Tensor:
        """log N(h_S; mu_z[S], Sigma_z[S,S]) for every row and class, ``[N, C]``."""
        S = self._resolve(neurons)
        Xn = checked_X(self, X, reset=False)
        L = self.cholesky(S)
        St = torch.from_numpy(S)
        mu = self.means_[:, St]  # [C, k]
        logdet = torch.log(torch.diagonal(L, dim1=1, dim2=2)).sum(1)  # [C]
        k = len(S)
        outs = []
        for s in range(0, Xn.shape[0], chunk_rows):
            h = torch.from_numpy(Xn[s : s + chunk_rows][:, S]).to(mu.device, self.dtype_)
            r = (h[None] - mu[:, None]).transpose(1, 2)  # [C, k, n]
            a = torch.linalg.solve_triangular(L, r, upper=False)
            ll = -0.5 * a.square().sum(1) - logdet[:, None] - 0.5 * k * math.log(2 * math.pi)
            outs.append(ll.t())
        return torch.cat(outs)

    def predict_log_proba(self, X: Any, neurons: Any = None) -> np.ndarray:
        joint = self.log_likelihood(X, neurons) + self.log_priors_
        return (joint - torch.logsumexp(joint, 1, keepdim=True)).cpu().numpy()

    def predict_proba(self, X: Any, neurons: Any = None) -> np.ndarray:
        return np.exp(self.predict_log_proba(X, neurons))

    def predict(self, X: Any, neurons: Any = None) -> np.ndarray:
        joint = self.log_likelihood(X, neurons) + self.log_priors_
        return self.classes_[joint.argmax(1).cpu().numpy()]

    def score(self, X: Any, y: Any, neurons: Any = None) -> float:
        """Accuracy on (X, y) using only ``neurons``."""
        return float((self.predict(X, neurons) == to_numpy(y).reshape(-1)).mean())

    def prefix_scores(self, X: Any, y: Any, order: Any, ks: Sequence[int], chunk_rows: int = 2048) -> np.ndarray:
        """Accuracy of the probe on ``order[:k]`` for every k in ``ks`` from one Cholesky.

        The Cholesky factor of a leading block is the leading block of the factor, so the
        log-likelihood of every prefix is a cumulative sum of one triangular solve.
        """
        order = self._resolve(order)
        ks = [int(k) for k in ks]
        kmax = max(ks)
        if kmax > len(order) or min(ks) < 1:
            raise ValueError(f"ks must be in [1, {len(order)}]")
        S = order[:kmax]
        Xn = checked_X(self, X, reset=False)
        yv = to_numpy(y).reshape(-1)
        y_enc = np.searchsorted(self.classes_, yv).clip(0, len(self.classes_) - 1)
        y_enc = np.where(self.classes_[y_enc] == yv, y_enc, -1)  # unseen classes never count as correct
        L = self.cholesky(S)
        mu = self.means_[:, torch.from_numpy(S)]
        logdiag = torch.log(torch.diagonal(L, dim1=1, dim2=2)).cumsum(1)  # [C, kmax]
        kidx = torch.as_tensor([k - 1 for k in ks])
        const = -0.5 * torch.as_tensor(ks, dtype=self.dtype_) * math.log(2 * math.pi)
        correct = np.zeros(len(ks))
        for s in range(0, Xn.shape[0], chunk_rows):
            h = torch.from_numpy(Xn[s : s + chunk_rows][:, S]).to(mu.device, self.dtype_)
            r = (h[None] - mu[:, None]).transpose(1, 2)
            a2 = torch.linalg.solve_triangular(L, r, upper=False).square().cumsum(1)  # [C, kmax, n]
            ll = -0.5 * a2[:, kidx] - logdiag[:, kidx, None] + const.to(mu.device)[None, :, None]
            joint = ll + self.log_priors_[:, None, None]
            pred = joint.argmax(0).cpu().numpy()  # [len(ks), n]
            truth = y_enc[s : s + chunk_rows]
            correct += (pred == truth[None]).sum(1)
        return correct / Xn.shape[0]
