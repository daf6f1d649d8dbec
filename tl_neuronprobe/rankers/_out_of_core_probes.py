"""Out-of-core fits of the probe-based rankers: Linear and L1 on mini-batches drawn chunk by chunk, Gaussian
from per-class means and scatter matrices accumulated in one pass. The entry point is ``_out_of_core.py``.

Linear / L1: each epoch visits the chunks in a seeded random order and shuffles the rows of each chunk with the
probe trainer's own generator, so when one chunk holds every training row the mini-batches, the standardization
and the result are those of the in-memory fit, bit for bit; with several chunks a batch never mixes chunks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..core.validation import split_indices
from ..data.chunks import ActivationChunks
from ..probes import StandardizationSums, renamed_param, train_softmax_batches
from ._linear import L1, Linear

__all__ = ["fit_linear", "fit_l1", "fit_gaussian", "ChunkBatches"]


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


def _mean_abs_deviation(chunks: ActivationChunks, mean: "torch.Tensor | None", max_rows: int = 16384) -> np.ndarray:
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


def _train(ranker: Any, chunks: ActivationChunks, y: np.ndarray, positions: np.ndarray, *, standardize: bool,
           batch_size: int, shuffle: bool, seed: int, **train: Any):
    """Standardize and train one softmax probe on the rows ``positions``; returns W, b, mean, scale, info."""
    mean, scale = _standardization(chunks, positions)[:2] if standardize else (None, None)
    y_tr = y[positions]

    def make_batches(gen: torch.Generator) -> ChunkBatches:
        return ChunkBatches(chunks, positions, y_tr, batch_size, shuffle, gen, seed)

    W, b, info = train_softmax_batches(make_batches, chunks.n_neurons, len(ranker.classes_), mean=mean, scale=scale,
                                       batch_size=batch_size, seed=seed, device=ranker.device, **train)
    return W, b, mean, scale, info


def _in_memory(chunks: ActivationChunks, positions: np.ndarray) -> np.ndarray:
    """The rows ``positions`` as one array (a split small enough to hold)."""
    out = np.empty((len(positions), chunks.n_neurons), dtype=np.float32)
    for pos, X in chunks.iter(positions):
        out[np.searchsorted(positions, pos)] = X
    return out


#: the least memory forward selection may use out of core, whatever the chunk budget
REFINE_FLOOR_BYTES = 16 * 2**20


def refine_limits(budget: int, n_neurons: int, candidates: int, k: int) -> tuple[int, int]:
    """Candidates and rows for Linear's forward selection within a quarter of ``budget`` bytes: half of that for
    the candidates' Gram matrix (12 bytes an entry: float32 product, float64 copy), half for their rows, held
    twice as float32 (the read and the centered copy)."""
    share = budget // 8
    m = int(max(1, min(candidates, n_neurons, int((share / 12) ** 0.5))))
    return m, max(1, share // (8 * (m + int(k))))


def _columns(chunks: ActivationChunks, rows: np.ndarray, neurons: np.ndarray) -> np.ndarray:
    """The activations of ``neurons`` at the sorted ``rows``, ``[len(rows), len(neurons)]``, in one pass."""
    out = np.empty((len(rows), len(neurons)), dtype=np.float32)
    for pos, X in chunks.iter(rows):
        out[np.searchsorted(rows, pos)] = X[:, neurons]
    return out


def fit_linear(ranker: Linear, chunks: ActivationChunks, y: np.ndarray, moments: Any, opts: dict) -> None:
    s = ranker._checked_settings()
    solver, tr, dv = ranker._split(s, y, chunks.n_neurons, chunks.groups, ranker.seed_)
    if solver == "lbfgs" or len(dv):  # full-batch L-BFGS (<= lbfgs_below values) or a dev split: in memory
        if len(dv) and len(dv) > chunks.chunk_rows:
            raise ValueError(f"early stopping out of core holds the dev split in memory: {len(dv)} rows exceed the "
                             f"chunk of {chunks.chunk_rows}; raise chunk_bytes or use early_stopping=False")
        if solver == "lbfgs" or len(tr) <= chunks.chunk_rows:
            ranker._rank(_in_memory(chunks, np.arange(chunks.n_rows)), y, chunks.groups)
            return
        raise ValueError("early stopping out of core is supported only when the training split fits one chunk")
    epochs = ranker._resolve_auto(s, chunks.n_neurons, len(tr))
    progress = renamed_param(ranker, "progress", "verbose")
    l1s = ranker._l1s(s)  # the reported probe, then Linear's sparser ranking probe (one weight matrix)
    W, b, mean, scale, info = _train(
        ranker, chunks, y, tr, standardize=s["standardize"], batch_size=s["batch_size"], shuffle=s["shuffle"],
        seed=ranker.seed_, l1=l1s, l2=[s["l2"]] * len(l1s), epochs=epochs, lr=s["lr"], init=s["init"],
        average=s.get("average", False), progress=progress, desc="linear")
    mad = _mean_abs_deviation(chunks, mean) if s["mass"] == "contribution" else None
    ranker._adopt(s, W, b, mean, scale, info, mad)
    budget = max(chunks.chunk_rows * chunks.n_neurons * 4, REFINE_FLOOR_BYTES)  # the chunk budget, bytes
    candidates, max_rows = refine_limits(budget, chunks.n_neurons, ranker.refine_candidates, s.get("refine_k") or 0)
    read = ranker._refine(s, y, tr, lambda rows, neurons: _columns(chunks, rows, neurons), chunks.groups,
                          max_rows, candidates)
    ranker.n_passes_ += int(s["standardize"]) + info["epochs"] + int(mad is not None) + int(read)


def fit_l1(ranker: L1, chunks: ActivationChunks, y: np.ndarray, moments: Any, opts: dict) -> None:
    if ranker.backend != "torch":
        raise ValueError(f"L1(backend={ranker.backend!r}) needs X in memory; out of core use backend='torch'")
    C, N = len(ranker.classes_), chunks.n_rows
    cw = N / (C * np.bincount(y, minlength=C))  # balanced classes
    W, b, mean, scale, info = _train(
        ranker, chunks, y, np.arange(N), standardize=True, batch_size=256, shuffle=True, seed=ranker.seed_,
        l1=1.0 / (ranker.C * N), class_weight=torch.as_tensor(cw, dtype=torch.float32), epochs=ranker.epochs,
        lr=3e-3)
    ranker.coef_, ranker.intercept_ = W[0].cpu().numpy(), b[0].cpu().numpy()
    ranker.n_iter_ = info["epochs"]
    ranker.n_passes_ += 1 + info["epochs"]
    ranker._mean, ranker._scale = mean, scale
    ranker.per_class_ = np.abs(ranker.coef_)
    ranker.scores_ = np.abs(ranker.coef_).sum(0)


class ClassScatter:
    """Per-class count, mean and scatter ``sum (x - mean)(x - mean)^T`` (float64), merged chunk by chunk, and
    each neuron's overall moments (for the variance floor and the constant neurons of the split)."""

    def __init__(self, n_classes: int, n_neurons: int):
        C, D = n_classes, n_neurons
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


def fit_gaussian(ranker: Any, chunks: ActivationChunks, y: np.ndarray, moments: Any, opts: dict) -> None:
    """Per-class scatter of the training split in one pass, the dev split in memory, the same greedy steps."""
    tr, dv = split_indices(len(y), ranker.dev_size, groups=chunks.groups, y=y, seed=ranker.seed_,
                           min_train_per_class=2)
    ranker.train_index_, ranker.dev_index_ = tr, dv
    acc = ClassScatter(len(ranker.classes_), chunks.n_neurons)
    for pos, X in chunks.iter(tr):
        acc.update(X, y[pos])
    ranker.probe_ = ranker._new_probe()
    present = acc.count > 0
    ranker.probe_.fit_moments(ranker.classes_[present], acc.count[present], acc.mean[present],
                              acc.scatter[present], acc.variance())
    avail = ~(acc.max - acc.min == 0).numpy() & ~ranker.constant_
    single = None
    if ranker.cv is not None:  # two more passes over every row: the fold sums, then the scores
        every = np.arange(len(y))
        single = ranker._crossfit_scores(lambda: chunks.iter(every), y, chunks.groups, chunks.n_neurons)
        ranker.n_passes_ += 2
    ranker._select(_in_memory(chunks, dv), y[dv], avail, single)
    ranker.n_passes_ += 2
