"""The chunked passes of the probe-based rankers' ``_fit_chunks``: Linear and L1 on mini-batches drawn chunk by
chunk, Gaussian from per-class means and scatter matrices accumulated in one pass (the rankers call these; this
module does not know them).

Linear / L1: each epoch visits the chunks in a seeded random order and shuffles the rows of each chunk with the
probe trainer's own generator, so when one chunk holds every training row the mini-batches, the standardization
and the result are those of the in-memory fit, bit for bit; with several chunks a batch never mixes chunks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..data.chunks import ActivationChunks
from ..probes import StandardizationSums
from ..probes import softmax_fit_batches

__all__ = ["ChunkBatches", "ClassScatter", "train_chunks", "chunk_mean_abs_deviation", "rows_in_memory",
           "refine_limits", "chunk_columns"]


class ChunkBatches:
    """Mini-batches of the rows ``positions`` of ``chunks`` for the probe trainer (``steps_per_epoch``,
    ``epoch()``): chunk order from ``order_seed``, rows within a chunk shuffled by ``gen``."""

    def __init__(self, chunks: ActivationChunks, positions: np.ndarray, y: np.ndarray, batch_size: int,
                 shuffle: bool, gen: torch.Generator, order_seed: int):
        self.chunks, self.positions, self.y = chunks, positions, torch.from_numpy(y)
        self.batch_size, self.shuffle, self.gen = int(batch_size), shuffle, gen
        self.n_chunks = chunks.n_chunks(positions)
        self.order_rng = np.random.default_rng([int(order_seed), 1])
        sizes = [len(positions[c * chunks.chunk_rows: (c + 1) * chunks.chunk_rows]) for c in range(self.n_chunks)]
        self.steps_per_epoch = max(1, sum(-(-n // self.batch_size) for n in sizes))
        self.buf = torch.empty(min(self.batch_size, len(positions)), chunks.n_neurons)
        self._single: tuple[np.ndarray, np.ndarray] | None = None  # one chunk: read once, kept

    def _chunks(self):
        if self.n_chunks == 1:
            if self._single is None:
                self._single = next(iter(self.chunks.iter(self.positions)))
            yield self._single
            return
        order = self.order_rng.permutation(self.n_chunks) if self.shuffle else None
        yield from self.chunks.iter(self.positions, order)

    def epoch(self):
        for pos, X in self._chunks():
            Xt, yc = torch.from_numpy(X), self.y[torch.from_numpy(pos)]
            n = len(pos)
            perm = torch.randperm(n, generator=self.gen) if self.shuffle else None
            for s in range(0, n, self.batch_size):
                if perm is None:
                    yield Xt[s: s + self.batch_size], yc[s: s + self.batch_size]
                    continue
                idx = perm[s: s + self.batch_size]
                yield torch.index_select(Xt, 0, idx, out=self.buf[: len(idx)]), yc[idx]


def _standardization(chunks: ActivationChunks, positions: np.ndarray):
    """``probes.standardization`` over the rows ``positions``, chunk by chunk (bit-identical when chunks are
    whole multiples of 256 rows and the first holds at least 512)."""
    sums = StandardizationSums()
    for _, X in chunks.iter(positions):
        sums.update(torch.from_numpy(X))
    return sums.result()


def chunk_mean_abs_deviation(chunks: ActivationChunks, mean: "torch.Tensor | None",
                             max_rows: int = 16384) -> np.ndarray:
    """``_linear.mean_abs_deviation`` over every row, chunk by chunk (same evenly spaced rows, same blocks)."""
    rows = torch.arange(chunks.n_rows)
    if len(rows) > max_rows:
        rows = rows[torch.linspace(0, len(rows) - 1, max_rows).long()]
    positions = rows.numpy()
    center = None if mean is None else mean.cpu().float()
    total = torch.zeros(chunks.n_neurons, dtype=torch.float64)
    for _, X in chunks.iter(positions):
        Xt = torch.from_numpy(X)
        if center is None:
            center = Xt[:512].float().mean(0)
        for i in range(0, len(Xt), 256):
            total += (Xt[i: i + 256].float() - center).abs_().sum(0)
    return (total / len(positions)).numpy()


def train_chunks(chunks: ActivationChunks, y: np.ndarray, positions: np.ndarray, n_classes: int, *,
                 standardize: bool, batch_size: int, shuffle: bool, seed: int, device: Any, **train: Any):
    """Standardize and train one softmax probe on the rows ``positions``; returns W, b, mean, scale, info."""
    mean, scale = _standardization(chunks, positions)[:2] if standardize else (None, None)
    y_tr = y[positions]

    def make_batches(gen: torch.Generator) -> ChunkBatches:
        return ChunkBatches(chunks, positions, y_tr, batch_size, shuffle, gen, seed)

    W, b, info = softmax_fit_batches(make_batches, chunks.n_neurons, n_classes, mean=mean, scale=scale,
                                        batch_size=batch_size, seed=seed, device=device, **train)
    return W, b, mean, scale, info


def rows_in_memory(chunks: ActivationChunks, positions: np.ndarray) -> np.ndarray:
    """The rows ``positions`` as one array (a split small enough to hold)."""
    out = np.empty((len(positions), chunks.n_neurons), dtype=np.float32)
    for pos, X in chunks.iter(positions):
        out[np.searchsorted(positions, pos)] = X
    return out


#: the least memory forward selection may use out of core, whatever the chunk budget
REFINE_FLOOR_BYTES = 16 * 2**20


def refine_limits(budget: int, width: int, candidates: int, k: int) -> tuple[int, int]:
    """Candidates and rows for Linear's forward selection within a quarter of ``budget`` bytes: half of that for
    the candidates' Gram matrix (12 bytes an entry: float32 product, float64 copy), half for their rows, held
    twice as float32 (the read and the centered copy)."""
    share = budget // 8
    m = int(max(1, min(candidates, width, int((share / 12) ** 0.5))))
    return m, max(1, share // (8 * (m + int(k))))


def chunk_columns(chunks: ActivationChunks, rows: np.ndarray, neurons: np.ndarray) -> np.ndarray:
    """The activations of ``neurons`` at the sorted ``rows``, ``[len(rows), len(neurons)]``, in one pass."""
    out = np.empty((len(rows), len(neurons)), dtype=np.float32)
    for pos, X in chunks.iter(rows):
        out[np.searchsorted(rows, pos)] = X[:, neurons]
    return out


class ClassScatter:
    """Per-class count, mean and scatter ``sum (x - mean)(x - mean)^T`` (float64), merged chunk by chunk, and
    each neuron's overall moments (for the variance floor and the constant neurons of the split)."""

    def __init__(self, n_classes: int, width: int):
        C, D = n_classes, width
        self.count = np.zeros(C, dtype=np.int64)
        self.mean = torch.zeros(C, D, dtype=torch.float64)
        self.scatter = torch.zeros(C, D, D, dtype=torch.float64)
        self.min = torch.full((D,), float("inf"), dtype=torch.float64)
        self.max = torch.full((D,), float("-inf"), dtype=torch.float64)

    def update(self, X: np.ndarray, y: np.ndarray) -> None:
        x = torch.from_numpy(X).double()
        self.min, self.max = torch.minimum(self.min, x.amin(0)), torch.maximum(self.max, x.amax(0))
        for c in np.unique(y):
            xc = x[torch.from_numpy(y == c)]
            nb, na = len(xc), int(self.count[c])
            mb = xc.mean(0)
            xc -= mb
            delta = mb - self.mean[c]
            n = na + nb
            self.scatter[c] += xc.t() @ xc + torch.outer(delta, delta) * (na * nb / n)
            self.mean[c] += delta * (nb / n)
            self.count[c] = n

    def variance(self) -> torch.Tensor:
        """Each neuron's variance over all rows (ddof 1)."""
        n = self.count.sum()
        grand = (self.mean * torch.from_numpy(self.count).double()[:, None]).sum(0) / n
        within = torch.diagonal(self.scatter, dim1=1, dim2=2).sum(0)
        between = (torch.from_numpy(self.count).double()[:, None] * (self.mean - grand).square()).sum(0)
        return (within + between) / (n - 1)
