"""Per-neuron average ranks for the chunked association: one sort of packed 64-bit keys per row, on a thread per
core.

Each float32 activation becomes an order-preserving unsigned 32-bit key (``-0.0`` counted as ``0.0``), packed
above its 32-bit word index; numpy's sort of unsigned 64-bit integers (AVX-512 where the CPU has it) then gives
the sorted values (high halves) and the sort order (low halves) in one pass. On rows of 50,000 words that
measured about 40% less CPU than ``np.argsort`` of the floats plus the gather of the sorted values, and 4x less
than torch's CPU sort. Ranks follow by one scatter per row; ties (equal keys) share their mean rank, fixed
afterwards on the tied positions only. Blocks of a few rows go to a pool of ``torch.get_num_threads()``
workers (numpy's sort and indexing release the GIL), each block small enough to stay in cache.
Not for choosing which neurons to rank (see :mod:`._associate`).
"""

from __future__ import annotations

import atexit
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

_POOL: dict[int, ThreadPoolExecutor] = {}
_BLOCK = 16  # neurons per task: 16 x 50,000 keys = 6.4 MB; 16 float32 columns = one 64-byte cache line


def _pool(workers: int) -> ThreadPoolExecutor:
    if workers not in _POOL:
        _POOL[workers] = ThreadPoolExecutor(workers, thread_name_prefix="tnp-rank")
    return _POOL[workers]


@atexit.register
def _shutdown() -> None:
    for p in _POOL.values():
        p.shutdown(wait=False)


def sorted_keys(rows: np.ndarray) -> np.ndarray:
    """Per row of ``rows`` [m, n] float32: the ascending sort of ``key(value) << 32 | word index`` (uint64).

    ``key`` is monotone in the value and equal exactly for equal values, so the high halves of the result are the
    sorted values (as keys) and the low halves the sort order, ties in word order.
    """
    m, n = rows.shape
    if n >= 2 ** 32:
        raise ValueError(f"rows of {n} values do not fit a 32-bit index")
    bits = (rows + np.float32(0)).view(np.int32)  # + 0: -0.0 -> 0.0, equal floats get equal keys
    u = (bits ^ ((bits >> 31) | np.int32(-2 ** 31))).view(np.uint32)  # negative: flip all bits; else the sign
    key = np.empty((m, n), np.uint64)
    lo, hi = _halves(key)
    hi[...] = u
    lo[...] = np.arange(n, dtype=np.uint32)
    key.sort(axis=1)
    return key


def _halves(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(order, value keys) of sorted packed keys: the low and high 32 bits, as strided uint32 views."""
    halves = key.view(np.uint32).reshape(*key.shape, 2)
    lo, hi = (0, 1) if np.little_endian else (1, 0)
    return halves[..., lo], halves[..., hi]


def _rank_block(rows: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """Average ranks of ``rows`` [m, n] into ``ranks`` [m, n]; returns the sorted value keys (uint32 view)."""
    m, n = rows.shape
    order, hi = _halves(sorted_keys(rows))
    pos = np.arange(1, n + 1, dtype=np.float32)
    for i in range(m):
        ranks[i, order[i]] = pos
    _fix_ties(ranks, hi, order)
    return hi, order


def _fix_ties(ranks: np.ndarray, vals: np.ndarray, order: np.ndarray) -> None:
    """Give each run of equal sorted values (``vals`` [m, n], ascending per row) its mean rank in ``ranks``, in
    place. Only the tied positions are touched: rows of real-valued activations (a few ties) cost one
    comparison pass."""
    m, n = vals.shape
    pairs = np.flatnonzero(vals[:, 1:] == vals[:, :-1])  # i*(n-1)+j: sorted positions j and j+1 of row i tie
    if not len(pairs):
        return
    row, j = np.divmod(pairs, n - 1)
    flat = row * n + j                                   # the pairs as flat positions in [m, n]
    new_run = np.ones(len(flat), dtype=bool)
    new_run[1:] = flat[1:] != flat[:-1] + 1              # consecutive pairs chain into one run
    starts = np.flatnonzero(new_run)
    first = flat[starts]
    last = np.append(flat[starts[1:] - 1], flat[-1]) + 1  # the run's last element: one past its last pair
    size = last - first + 1
    mean = ((first + last) / 2 - (first // n) * n + 1).astype(np.float32)
    elems = np.repeat(first - np.cumsum(np.append(0, size[:-1])), size) + np.arange(size.sum())
    r, c = np.divmod(elems, n)
    ranks[r, order[r, c]] = np.repeat(mean, size)


@dataclass
class ColumnStats:
    """Per column of a chunk: the value at the quantile cut, how many words reach it, sum and standard deviation."""

    threshold: np.ndarray  # [w] float32: the value at ascending sorted position ``at``
    n_fire: np.ndarray     # [w] int64: words with a value >= threshold (ties at the cut included)
    total: np.ndarray      # [w] float64
    std: np.ndarray        # [w] float64, ddof=1


def rank_columns(x: np.ndarray, ranks: np.ndarray, mask: np.ndarray, at: int,
                 threads: int | None = None) -> ColumnStats:
    """For each column of ``x`` [n, w] (float32, any strides, e.g. a slice of a wider buffer): average ranks
    (1..n, ties share their mean) into ``ranks`` [n, w], ``x >= threshold`` (1.0/0.0) into ``mask`` [n, w], and
    the column statistics. Blocks of :data:`_BLOCK` columns are gathered into rows, sorted and written back on
    ``threads`` workers (default ``torch.get_num_threads()``)."""
    n, w = x.shape
    out = ColumnStats(np.empty(w, np.float32), np.empty(w, np.int64), np.empty(w, np.float64),
                      np.empty(w, np.float64))

    def work(a: int) -> None:
        b = min(a + _BLOCK, w)
        rows = np.array(x[:, a:b].T, dtype=np.float32, order="C")  # a copy: centred in place below
        r = np.empty_like(rows)
        hi, order = _rank_block(rows, r)
        ranks[:, a:b] = r.T
        t = rows[np.arange(b - a), order[:, at]]
        mask[:, a:b] = (rows >= t[:, None]).T
        out.threshold[a:b] = t
        out.n_fire[a:b] = n - at + (hi[:, :at] == hi[:, at:at + 1]).sum(1)
        total = rows.sum(1, dtype=np.float64)
        rows -= (total / n).astype(np.float32)[:, None]
        out.total[a:b] = total
        out.std[a:b] = np.sqrt(np.einsum("ij,ij->i", rows, rows, dtype=np.float64) / max(n - 1, 1))

    _run(work, range(0, w, _BLOCK), threads)
    return out


def _run(work, starts, threads: int | None) -> None:
    starts = list(starts)
    threads = max(1, min(threads or torch.get_num_threads(), len(starts)))
    if threads == 1:
        for a in starts:
            work(a)
    else:
        list(_pool(threads).map(work, starts))


def rank_into(rows: np.ndarray, ranks: np.ndarray, threads: int | None = None) -> None:
    """Average ranks (1..n, ties share their mean) of each row of ``rows`` [m, n] (float32, C-contiguous) written
    into ``ranks`` [m, n] float32, blocks of rows on ``threads`` workers."""
    m = rows.shape[0]
    _run(lambda a: _rank_block(rows[a:a + _BLOCK], ranks[a:a + _BLOCK]), range(0, m, _BLOCK), threads)


def rank_rows(rows: torch.Tensor, threads: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per row of ``rows`` [m, n] (float32): average ranks 1..n (ties share their mean rank), the sorted values
    (ascending) and the sort order (ties in word order), all [m, n]."""
    r = np.ascontiguousarray(rows.numpy(), dtype=np.float32)
    ranks = np.empty_like(r)
    rank_into(r, ranks, threads=threads)
    order = _halves(sorted_keys(r))[0].astype(np.int64)
    return torch.from_numpy(ranks), torch.from_numpy(np.take_along_axis(r, order, 1)), torch.from_numpy(order)


def rank_columns_torch(x: torch.Tensor, at: int) -> tuple[torch.Tensor, torch.Tensor, ColumnStats]:
    """:func:`rank_columns` in torch on ``x``'s device (the CUDA path; also runs on the CPU, where the numpy
    route is faster): average ranks and the ``x >= threshold`` mask, both [n, w] float32 on the device, and the
    column statistics on the host. One stable sort per chunk; ties get their mean rank through the first and last
    position of each run of equal values (cumulative max / min), no host sync until the statistics."""
    n, w = x.shape
    vals, order = torch.sort(x, dim=0, stable=True)
    pos = torch.arange(n, device=x.device, dtype=torch.float32)[:, None].expand(n, w)
    new = torch.ones(n, w, dtype=torch.bool, device=x.device)
    new[1:] = vals[1:] != vals[:-1]
    last = torch.ones_like(new)
    last[:-1] = new[1:]
    first_pos = torch.cummax(torch.where(new, pos, torch.zeros_like(pos)), dim=0).values
    last_pos = torch.flip(torch.cummin(torch.flip(torch.where(last, pos, torch.full_like(pos, n - 1)), [0]), dim=0).values,
                          [0])
    ranks = torch.empty_like(vals).scatter_(0, order, (first_pos + last_pos) / 2 + 1)
    t = vals[at]
    mask = (x >= t).float()
    total = x.sum(0, dtype=torch.float64)
    centred = x.double() - total / n
    std = (centred.square().sum(0) / max(n - 1, 1)).sqrt()
    stats = ColumnStats(t.cpu().numpy().astype(np.float32), mask.sum(0).long().cpu().numpy(),
                        total.cpu().numpy(), std.cpu().numpy())
    return ranks, mask, stats
