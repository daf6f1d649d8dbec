"""The vectorized candidate scan of the Gaussian ranker's greedy selection (its numerics only).

With the Cholesky factor L_z of Sigma_z[S, S] and B_z = L_z^{-1} Sigma_z[S, :], every
candidate's conditional variance and every dev point's conditional mean are kept up to date by
rank-1 (Schur complement) updates, so one step scores all candidates for all classes at once.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..probes import GaussianProbe

LOG_2PI = math.log(2 * math.pi)


class GreedyScan:
    """State of the greedy selection: log p(z, h_S) per dev point, and the conditionals given S."""

    def __init__(self, probe: GaussianProbe, Xdev: np.ndarray, ydev: np.ndarray, avail: np.ndarray,
                 chunk_size: int, max_memory_gb: float, prior_mix: float = 0.0):
        f64, dev = probe.dtype_, probe.means_.device
        C, D = probe.means_.shape
        Nd = Xdev.shape[0]
        self.probe, self.C, self.D, self.Nd = probe, C, D, Nd
        self.mu = probe.means_
        self.v = probe.variances().clone()  # conditional variances given S, [C, D]
        self.h = torch.from_numpy(Xdev).to(dev, f64)
        self.yd = torch.from_numpy(ydev).to(dev)
        self.lp = probe.log_priors_[:, None].expand(C, Nd).clone()  # log pi_z + log N(h_S | z), [C, Nd]
        self.a = torch.zeros(C, Nd, 0, dtype=f64, device=dev)  # L^{-1}(h_S - mu_S)
        self.B = torch.zeros(C, 0, D, dtype=f64, device=dev)  # L^{-1} Sigma[S, :]
        # candidates are scanned in blocks of ``cs``; every block's data is contiguous
        # ([block, class, point, candidate]), so each elementwise pass streams memory once
        self.cs = max(1, min(int(chunk_size), D))
        self.nb = -(-D // self.cs)
        self.h32 = self.blocked(self.h.float())  # [nb, Nd, cs]
        self.store = C * Nd * self.nb * self.cs * 4 <= max_memory_gb * 2**30
        self.mu_b = self.blocked(self.mu.float())  # [nb, C, cs]
        # conditional means of every candidate for every class and dev point, kept up to date
        self.cmean = self.mu_b[:, :, None, :].expand(self.nb, C, Nd, self.cs).contiguous() if self.store else None
        priors = torch.as_tensor(probe.priors_, dtype=f64)
        self.H = float(-(priors * priors.log()).sum())
        # the dev score is log((1 - prior_mix) p(z | h_S) + prior_mix p(z)): log(1 - mix) and log(mix p(y)) per point
        if not 0.0 <= float(prior_mix) < 1.0:
            raise ValueError(f"prior_mix={prior_mix} must be in [0, 1)")
        self.mix = float(prior_mix)
        self.log_keep = math.log1p(-self.mix)
        self.log_floor = (math.log(self.mix) + probe.log_priors_[self.yd]) if self.mix > 0 else None  # [Nd]
        self.avail = torch.from_numpy(avail.copy()).to(dev)
        self.tiny = 1e-12 * float(self.v.mean())
        self.ycol = self.yd.view(1, Nd, 1).expand(1, Nd, self.cs)
        self.r = torch.empty(C, Nd, self.cs, device=dev)
        self.q = torch.empty(C, Nd, self.cs, device=dev)

    def blocked(self, t: torch.Tensor) -> torch.Tensor:
        """``[..., D]`` -> ``[nb, ..., cs]``, zero-padded."""
        t = torch.nn.functional.pad(t, (0, self.nb * self.cs - self.D))
        return t.unflatten(-1, (self.nb, self.cs)).movedim(-2, 0).contiguous()

    def mixed(self, log_post: torch.Tensor) -> torch.Tensor:
        """log((1 - mix) p(y | h) + mix p(y)) from log p(y | h) of every dev point (``[Nd, ...]``)."""
        if self.log_floor is None:
            return log_post
        floor = self.log_floor.to(log_post.dtype).view(-1, *([1] * (log_post.dim() - 1)))
        return torch.logaddexp(log_post + self.log_keep, floor)

    def exact(self, cands: torch.Tensor) -> torch.Tensor:
        """Dev mean log p(z | h_S, h_j) of the candidates, in float64."""
        cm = self.mu[:, None, cands] + (self.a @ self.B[:, :, cands] if self.B.shape[1] else 0.0)
        vc = self.v[:, cands].clamp_min(self.tiny)
        rr = self.h[None, :, cands] - cm
        joint = self.lp[:, :, None] + (-0.5 * (LOG_2PI + vc.log())[:, None, :] - 0.5 * rr.square() / vc[:, None, :])
        true = joint.gather(0, self.yd.view(1, self.Nd, 1).expand(1, self.Nd, len(cands)))[0]
        return self.mixed(true - torch.logsumexp(joint, 0)).mean(0)

    def _block_objective(self, blk: int, scale, logg, lpf, Bf, af) -> torch.Tensor:
        """One block's objective: a log-sum-exp over classes per (point, candidate), in float32."""
        cm = self.cmean[blk] if self.store else self.mu_b[blk][:, None, :] + (af @ Bf[blk] if Bf.shape[2] else 0.0)
        # joint log p(z, h_S, h_j) = log p(z | h_S) + log N(h_j; conditional mean, conditional variance)
        torch.sub(self.h32[blk][None], cm, out=self.r).mul_(scale[blk][:, None, :])
        q = torch.add(lpf, logg[blk][:, None, :], out=self.q).addcmul_(self.r, self.r, value=-1.0)
        qt = q.gather(0, self.ycol)[0]
        mx = q.amax(0)
        # the max term is exp(0) = 1, so the sum does not underflow; clamping at -60 (a change
        # below 1e-26) keeps exp off its slow path for huge arguments
        S = q.sub_(mx).clamp_min_(-60.0).exp_().sum(0)
        return self.mixed(qt - mx - S.log()).mean(0)

    def scan(self) -> torch.Tensor:
        """Every candidate's objective (float32; -inf for unavailable neurons), ``[D]``."""
        v32 = self.v.clamp_min(self.tiny).float()
        scale = self.blocked((0.5 / v32).sqrt())  # [nb, C, cs]
        logg = self.blocked(-0.5 * (LOG_2PI + v32.log()))  # [nb, C, cs]
        # log p(z | h_S): a per-point shift that cancels in the objective, keeps float32 small
        lpf = (self.lp - torch.logsumexp(self.lp, 0)).float()[:, :, None]  # [C, Nd, 1]
        Bf = None if self.store else self.blocked(self.B.float())  # [nb, C, t, cs]
        af = None if self.store else self.a.float()
        obj = torch.empty(self.nb, self.cs, dtype=torch.float32, device=self.h.device)
        for blk in range(self.nb):
            obj[blk] = self._block_objective(blk, scale, logg, lpf, Bf, af)
        obj = obj.flatten()[: self.D]
        bad = ~torch.isfinite(obj)
        obj = torch.where(self.avail, obj, torch.full_like(obj, -math.inf))
        fix = torch.nonzero(bad & self.avail).flatten()
        for s in range(0, len(fix), 256):  # underflow in float32: score those exactly
            obj[fix[s : s + 256]] = self.exact(fix[s : s + 256]).float()
        return obj

    def choose(self, obj: torch.Tensor, refine: int) -> tuple[int, torch.Tensor, torch.Tensor]:
        """The best candidate after re-scoring the top ``refine`` exactly; also those and their scores."""
        n_ref = min(int(refine), int(self.avail.sum()))
        cands = torch.topk(obj, max(1, n_ref)).indices.sort().values  # ties go to the smaller index
        ex = self.exact(cands)
        return int(cands[int(torch.argmax(ex))]), cands, ex

    def add(self, j: int) -> float:
        """Add neuron j to S by rank-1 updates; returns the dev mutual information (bits) after it."""
        row = self.probe.cov_rows([j])[:, 0, :]  # Sigma_z[j, :]
        l = self.B[:, :, j]  # [C, t]
        d = self.v[:, j].clamp_min(self.tiny).sqrt()  # [C]
        Brow = (row - torch.einsum("ct,ctd->cd", l, self.B)) / d[:, None]
        cm_j = self.mu[:, j][:, None] + (self.a @ l[:, :, None])[..., 0]  # [C, Nd]
        a_new = (self.h[:, j][None] - cm_j) / d[:, None]
        self.lp += -0.5 * (LOG_2PI + 2 * d.log())[:, None] - 0.5 * a_new.square()
        self.v -= Brow.square()
        if self.store:  # cmean[z, n, :] += a_new[z, n] * Brow[z, :]
            self.cmean.addcmul_(a_new.float()[None, :, :, None], self.blocked(Brow.float())[:, :, None, :])
        self.a = torch.cat([self.a, a_new[:, :, None]], 2)
        self.B = torch.cat([self.B, Brow[:, None, :]], 1)
        self.avail[j] = False
        return (self.H + self.conditional()) / math.log(2)

    def conditional(self) -> float:
        """The dev mean log p(z | h_S) of the current subset S (nats, the mixed score): -H(Z | h_S)."""
        return float(self.mixed(self.lp.gather(0, self.yd[None])[0] - torch.logsumexp(self.lp, 0)).mean())

    def gain_bits(self, objective: float) -> float:
        """How much a candidate whose dev mean log p(z | h_S, h_j) is ``objective`` raises the dev MI, in bits."""
        return (objective - self.conditional()) / math.log(2)
