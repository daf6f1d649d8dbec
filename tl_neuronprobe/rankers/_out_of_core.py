"""Out-of-core fitting: any ranker fitted on saved activations read in row chunks, never holding X.

``fit_out_of_core(ranker, "acts/", "upos", chunk_bytes=256 << 20)`` (scikit-learn's ``cross_validate`` style) gives
the fitted attributes ``fit(X, y, groups)`` gives on the words carrying the attribute (``acts.dataset``),
reading X through :class:`~tl_neuronprobe.data.chunks.ActivationChunks`. Every fit starts with one pass of
float64 per-class moments (the label and finiteness checks, constant neurons); then:

* Probeless, MeanDifference, FStatistic, Random: nothing more (their in-memory fit uses the same moments);
* MutualInformation, AveragePrecision: by default (``exact=True``) exactly as in memory, from blocks of columns
  holding every row; with ``exact=False`` in two more passes: MI from quantile edges of an evenly spaced sample
  of at most one chunk of rows and per-class bin counts, AP from per-class histograms at ``bins`` quantiles
  (approximate: ties within a bin);
* Linear, L1: Adam on mini-batches drawn chunk by chunk (``_out_of_core_probes.py``); Gaussian: per-class means
  and scatter matrices in one pass, then the same greedy selection.

Each ranker owns its chunked fit (:meth:`NeuronRanker.fit_chunks`, its ``_fit_chunks``); this module holds the
shared passes they call (the moments, column sweeps, bin counts) and the ``fit_out_of_core`` wrapper. Not here: the
scoring itself (each ranker's own module) or the reading (``data/chunks.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.distributed import gather, share
from ..data.activations import Activations
from ..data.chunks import ActivationChunks
from ._moments import BinCounts, ClassMoments, quantile_edges

__all__ = ["fit_out_of_core"]

#: quantile bins of AveragePrecision out of core (its activation is known up to one of these)
AP_BINS = 256


def fit_out_of_core(ranker: "NeuronRanker", source: "str | Path | Activations | ActivationChunks",
                    attribute: str | None = None, *, chunk_bytes: int | None = None, chunk_rows: int | None = None,
                    min_count: int = 1, exact: bool = True, bins: int = AP_BINS) -> "NeuronRanker":
    """Fit ``ranker`` on the words carrying ``attribute`` of ``source`` read in chunks; returns the ranker.

    A thin wrapper: builds the :class:`ActivationChunks` and calls ``ranker.fit_chunks(chunks, exact=, bins=)``.

    ``source``: a saved activations folder (read with ``os.preadv``: resident memory about ``chunk_bytes``
    plus the ranker's own state), an ``Activations`` (its X sliced chunk by chunk) or an
    :class:`ActivationChunks` (then ``attribute`` and the chunk size are its own). ``chunk_bytes`` (default 256
    MiB) or ``chunk_rows`` sets the chunk. ``classes_`` are the attribute's values (strings); ``groups`` are the
    words' sentence ids, as ``acts.sentence_ids[idx]`` in memory.

    ``exact`` (MutualInformation, AveragePrecision): True computes them as in memory from blocks of columns
    holding every row (one pass over the file per block, blocks of a quarter of the chunk budget: about
    4 * size(X) / chunk_bytes passes); False makes two more passes, whatever the size: MI with quantile edges
    from an evenly spaced sample of one chunk of rows, AP from per-class histograms of ``bins`` quantile bins
    (ties within a bin). ``n_passes_`` counts the passes over the rows.
    """
    chunks = source if isinstance(source, ActivationChunks) else ActivationChunks(
        source, attribute, chunk_bytes=chunk_bytes, chunk_rows=chunk_rows, min_count=min_count)
    return ranker.fit_chunks(chunks, exact=exact, bins=bins)


def class_moments(chunks: ActivationChunks, y: np.ndarray, n_classes: int) -> ClassMoments:
    """The first pass of every chunked fit: float64 per-class moments (finiteness checked on the way); under
    torchrun each rank reads its share of the chunks and the moments are merged."""
    moments = ClassMoments(n_classes, chunks.n_neurons)
    for pos, X in chunks.iter(order=share(chunks.n_chunks())):  # under torchrun: this rank's chunks
        _check_finite(X, chunks.rows[pos])
        moments.update(X, y[pos])
    parts = gather(moments)  # every rank's, in rank order ([moments] in one process)
    moments = parts[0]
    for other in parts[1:]:
        moments.merge(other)
    return moments


def _check_finite(X: np.ndarray, file_rows: np.ndarray) -> None:
    finite = np.isfinite(X)
    if finite.all():
        return
    rows = file_rows[np.flatnonzero(~finite.all(axis=1))]
    cols = np.flatnonzero(~finite.all(axis=0))
    raise ValueError(f"X contains NaN or inf in rows (words) {rows[:5].tolist()} and columns (neurons) "
                     f"{cols[:5].tolist()}; drop or impute them first")


def sample_positions(n: int, m: int) -> np.ndarray:
    """``m`` evenly spaced positions of ``n`` (all of them when ``m >= n``)."""
    if m >= n:
        return np.arange(n, dtype=np.int64)
    return np.unique(np.linspace(0, n - 1, m).round().astype(np.int64))


def edges_from_sample(chunks: ActivationChunks, n_bins: int) -> tuple[torch.Tensor, int]:
    """Quantile edges from an evenly spaced sample of at most one chunk of rows; and the sample size."""
    pos = sample_positions(chunks.n_rows, chunks.chunk_rows)
    return quantile_edges(torch.from_numpy(chunks.read(pos)), n_bins), len(pos)


def bin_counts(chunks: ActivationChunks, y: np.ndarray, edges: torch.Tensor, n_classes: int) -> torch.Tensor:
    counts = BinCounts(edges, n_classes)
    for pos, X in chunks:
        counts.update(X, y[pos])
    return counts.table()


def column_sweep(ranker: Any, chunks: ActivationChunks, temp_bytes_per_value: int):
    """Blocks of columns with every row, within the reader's budget: a quarter for reading, a quarter for
    the block, half for the temporaries of the computation (``temp_bytes_per_value`` per row and column);
    yields ``(column slice, block, temporary columns)`` and counts the passes in ``n_passes_``. Under torchrun
    each rank sweeps its own contiguous share of the blocks."""
    budget = chunks.buffer_bytes
    chunks.release()  # the sweep reads through its own, smaller buffers
    reader = chunks.resized(max(1, chunks.chunk_rows // 4))
    temp_cols = max(1, (budget // 2) // (temp_bytes_per_value * chunks.n_rows))
    for c0, block in reader.column_blocks(budget // 4, blocks=share):
        ranker.n_passes_ += 1
        yield slice(c0, c0 + block.shape[1]), torch.from_numpy(block), temp_cols


def gathered_columns(part: torch.Tensor, done: np.ndarray) -> torch.Tensor:
    """Each rank filled the columns ``done`` of ``part [..., D]``; the full tensor, on every rank."""
    pieces = gather((part, done))
    out = pieces[0][0]
    for t, mask in pieces[1:]:
        cols = torch.from_numpy(mask)
        out[..., cols] = t[..., cols]
    return out
