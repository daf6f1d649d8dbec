"""Sufficient statistics of the univariate rankers, accumulated chunk by chunk in float64.

Per-class counts, means and centred sums of squares (merged with Chan et al.'s pairwise update, so no
catastrophic cancellation), per-neuron minimum and maximum; quantile bin edges and per-class bin counts for the
binned mutual information and the histogram average precision. The in-memory rankers compute the same
statistics from one chunk, so a fit in memory and a fit out of core share every formula. No ranking here.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["ClassMoments", "quantile_edges", "BinCounts", "binned_mutual_information", "histogram_average_precision"]

_TEMP_BYTES = 4 << 20  # each float64 / int64 temporary of a sub-block: 4 MiB whatever the chunk


def _block_rows(n_neurons: int) -> int:
    """Rows per sub-block so that one [rows, n_neurons] 8-byte temporary is at most 4 MiB (16 at least)."""
    return max(16, _TEMP_BYTES // (8 * max(1, n_neurons)))


class ClassMoments:
    """Per-class ``count [C]``, ``mean [C, D]``, ``m2 [C, D]`` (sum of squared deviations), ``min``/``max [D]``."""

    def __init__(self, n_classes: int, width: int):
        C, D = int(n_classes), int(width)
        self.count = torch.zeros(C, dtype=torch.float64)
        self.mean = torch.zeros(C, D, dtype=torch.float64)
        self.m2 = torch.zeros(C, D, dtype=torch.float64)
        self.min = torch.full((D,), math.inf, dtype=torch.float64)
        self.max = torch.full((D,), -math.inf, dtype=torch.float64)

    @classmethod
    def from_array(cls, X: np.ndarray, y: np.ndarray, n_classes: int) -> "ClassMoments":
        m = cls(n_classes, X.shape[1])
        m.update(X, y)
        return m

    def update(self, X: "np.ndarray | torch.Tensor", y: "np.ndarray | torch.Tensor") -> None:
        """Add rows ``X [n, D]`` with labels ``y [n]`` (in sub-blocks of 4 MiB temporaries)."""
        Xt, yt = torch.as_tensor(X), torch.as_tensor(y, dtype=torch.long)
        step = _block_rows(Xt.shape[1])
        for s in range(0, Xt.shape[0], step):
            self._merge(Xt[s: s + step].double(), yt[s: s + step])

    def _merge(self, x: torch.Tensor, y: torch.Tensor) -> None:
        C = self.count.shape[0]
        cnt = torch.bincount(y, minlength=C).double()
        mean_b = torch.zeros_like(self.mean).index_add_(0, y, x) / cnt.clamp_min(1.0)[:, None]
        m2_b = torch.zeros_like(self.m2).index_add_(0, y, (x - mean_b[y]).square_())
        self._combine(cnt, mean_b, m2_b, x.amin(0), x.amax(0))

    def merge(self, other: "ClassMoments") -> "ClassMoments":
        """Add another accumulator's rows (e.g. another rank's chunks); returns self."""
        self._combine(other.count, other.mean, other.m2, other.min, other.max)
        return self

    def _combine(self, cnt, mean_b, m2_b, lo, hi) -> None:
        """Chan et al.'s pairwise update with a batch of ``cnt`` rows per class."""
        n = self.count + cnt
        delta = mean_b - self.mean
        w = torch.where(n > 0, cnt / n.clamp_min(1.0), torch.zeros_like(n))[:, None]
        self.m2 += m2_b + delta.square() * (self.count * w[:, 0])[:, None]
        self.mean += delta * w
        self.count = n
        self.min = torch.minimum(self.min, lo)
        self.max = torch.maximum(self.max, hi)

    @property
    def n(self) -> float:
        return float(self.count.sum())

    def sums(self) -> torch.Tensor:
        return self.mean * self.count[:, None]

    def total_mean(self) -> torch.Tensor:
        return self.sums().sum(0) / self.n

    def within(self) -> torch.Tensor:
        """Within-class sum of squares per neuron."""
        return self.m2.sum(0)

    def between(self) -> torch.Tensor:
        """Between-class sum of squares per neuron."""
        return (self.count[:, None] * (self.mean - self.total_mean()).square()).sum(0)

    def variance(self, ddof: int = 1) -> torch.Tensor:
        """Each neuron's variance over all rows."""
        return (self.within() + self.between()) / (self.n - ddof)

    def constant(self) -> np.ndarray:
        return (self.max - self.min == 0).numpy()


def quantile_edges(X: "np.ndarray | torch.Tensor", n_bins: int, block: int = 256) -> torch.Tensor:
    """Inner edges ``[n_bins - 1, D]`` of per-neuron quantile bins: the sorted values at positions
    ``round(q (N - 1))``, q = 1/n_bins, ..., (n_bins - 1)/n_bins (order statistics by partial sorts of
    ``block`` columns at a time: the values of a full sort, several times faster)."""
    Xn = np.asarray(X)
    N, D = Xn.shape
    qs = torch.linspace(0, 1, int(n_bins) + 1)[1:-1]
    pos = (qs * (N - 1)).round().long().numpy()
    out = np.empty((len(qs), D), dtype=Xn.dtype)
    for s in range(0, D, block):
        cols = np.ascontiguousarray(Xn[:, s: s + block].T)  # each neuron's values contiguous
        out[:, s: s + block] = np.partition(cols, np.unique(pos), axis=1)[:, pos].T
    return torch.from_numpy(out)


class BinCounts:
    """Per-class counts ``[C, D, B]`` of each neuron's bin, bin = number of inner edges strictly below x."""

    def __init__(self, edges: torch.Tensor, n_classes: int):
        self.edges = edges  # [B - 1, D], sorted down each column
        self.edges_t = edges.t().contiguous()
        self.C, self.D, self.B = int(n_classes), edges.shape[1], edges.shape[0] + 1
        self.counts = torch.zeros(self.C * self.D * self.B, dtype=torch.int64)

    def update(self, X: "np.ndarray | torch.Tensor", y: "np.ndarray | torch.Tensor") -> None:
        Xt, yt = torch.as_tensor(X), torch.as_tensor(y, dtype=torch.long)
        col = torch.arange(self.D) * self.B
        step = _block_rows(self.D)
        for s in range(0, Xt.shape[0], step):
            xs = Xt[s: s + step].to(self.edges.dtype)
            if self.B <= 32:  # a few comparisons beat a binary search per value
                bins = torch.zeros(xs.shape, dtype=torch.int64)
                for e in self.edges:
                    bins += xs > e
            else:
                bins = torch.searchsorted(self.edges_t, xs.t().contiguous(), side="left").t()
            flat = (yt[s: s + step, None] * (self.D * self.B) + col + bins).reshape(-1)
            self.counts += torch.bincount(flat, minlength=self.counts.numel())

    def table(self) -> torch.Tensor:
        return self.counts.view(self.C, self.D, self.B).double()


def binned_mutual_information(counts: torch.Tensor) -> np.ndarray:
    """Plug-in I(bin; class) in bits per neuron from counts ``[C, D, B]``."""
    p = counts / counts[:, 0, :].sum()
    pc = p.sum(2, keepdim=True)
    pb = p.sum(0, keepdim=True)
    term = torch.where(p > 0, p * torch.log2(p / (pc * pb)), torch.zeros_like(p))
    return term.sum((0, 2)).numpy()


def histogram_average_precision(counts: torch.Tensor, descending: bool = True) -> torch.Tensor:
    """Average precision ``[C, D]`` of every neuron for every class when its activation is known only up to
    its bin (the words of one bin tie: they share one threshold, as ``average_precision_score`` ties do)."""
    c = counts.flip(2) if descending else counts  # best bin first
    tp = c.cumsum(2)  # [C, D, B] positives at or above each bin
    total = c.sum(0, keepdim=True).cumsum(2)
    prec = torch.where(total > 0, tp / total.clamp_min(1.0), torch.zeros_like(tp))
    npos = c.sum(2)  # [C, D]
    return (c * prec).sum(2) / npos.clamp_min(1.0)
