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

Not here: the scoring itself (each ranker's own module) or the reading (``data/chunks.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..core.distributed import gather, share
from ..core.validation import check_k
from ..data.activations import Activations
from ..data.chunks import ActivationChunks
from ..probes import checked_y, renamed_param
from ._base import NeuronRanker
from ._gaussian import Gaussian
from ._linear import L1, Linear
from ._moments import BinCounts, ClassMoments, histogram_average_precision, quantile_edges
from ._out_of_core_probes import fit_gaussian, fit_l1, fit_linear
from ._univariate import (AveragePrecision, FStatistic, MeanDifference, MutualInformation, Probeless, Random,
                          _average_precision)

__all__ = ["fit_out_of_core"]

#: quantile bins of AveragePrecision out of core (its activation is known up to one of these)
AP_BINS = 256


def fit_out_of_core(ranker: NeuronRanker, source: "str | Path | Activations | ActivationChunks",
                    attribute: str | None = None, *, chunk_bytes: int | None = None, chunk_rows: int | None = None,
                    min_count: int = 1, exact: bool = True, bins: int = AP_BINS) -> NeuronRanker:
    """Fit ``ranker`` on the words carrying ``attribute`` of ``source`` read in chunks; returns the ranker.

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
    if chunks.y is None:
        raise ValueError("fit_out_of_core needs an attribute: the words that carry it are the rows ranked")
    y, moments = _prepare(ranker, chunks)
    ranker.order_ = None
    ranker.n_passes_ = 1  # the moments
    _fitter(ranker)(ranker, chunks, y, moments, {"exact": bool(exact), "bins": int(bins)})
    ranker.chunk_rows_ = chunks.chunk_rows
    return ranker._finish()


def _prepare(ranker: NeuronRanker, chunks: ActivationChunks) -> tuple[np.ndarray, ClassMoments]:
    """The checks of ``fit`` and the first pass: labels, ``seed_``, ``n_features_in_``, moments, ``constant_``."""
    if chunks.n_rows < 2:
        raise ValueError(f"need at least 2 words carrying {chunks.attribute!r}, got {chunks.n_rows}")
    labels = np.asarray(chunks.classes, dtype=object)[chunks.y].astype(str)
    y, ranker.classes_ = checked_y(ranker, labels, chunks.n_rows, min_count=ranker._min_class_count)
    check_k(ranker.k, chunks.n_neurons)
    ranker.n_features_in_ = chunks.n_neurons
    ranker.seed_ = int(renamed_param(ranker, "seed", "random_state"))
    moments = ClassMoments(len(ranker.classes_), chunks.n_neurons)
    for pos, X in chunks.iter(order=share(chunks.n_chunks())):  # under torchrun: this rank's chunks
        _check_finite(X, chunks.rows[pos])
        moments.update(X, y[pos])
    parts = gather(moments)  # every rank's, in rank order ([moments] in one process)
    moments = parts[0]
    for other in parts[1:]:
        moments.merge(other)
    ranker.constant_ = moments.constant()
    return y, moments


def _check_finite(X: np.ndarray, file_rows: np.ndarray) -> None:
    finite = np.isfinite(X)
    if finite.all():
        return
    rows = file_rows[np.flatnonzero(~finite.all(axis=1))]
    cols = np.flatnonzero(~finite.all(axis=0))
    raise ValueError(f"X contains NaN or inf in rows (words) {rows[:5].tolist()} and columns (neurons) "
                     f"{cols[:5].tolist()}; drop or impute them first")


def _fitter(ranker: NeuronRanker) -> Callable:
    for cls, fn in _FITTERS:
        if isinstance(ranker, cls):
            return fn
    raise TypeError(f"{type(ranker).__name__} has no out-of-core fit; subclass one of "
                    f"{[c.__name__ for c, _ in _FITTERS]} or fit it in memory")


def _fit_from_moments(ranker, chunks, y, moments, opts) -> None:
    ranker._from_moments(moments)


def _fit_random(ranker, chunks, y, moments, opts) -> None:
    ranker._rank(np.empty((0, chunks.n_neurons), dtype=np.float32), y[:0], None)


def sample_positions(n: int, m: int) -> np.ndarray:
    """``m`` evenly spaced positions of ``n`` (all of them when ``m >= n``)."""
    if m >= n:
        return np.arange(n, dtype=np.int64)
    return np.unique(np.linspace(0, n - 1, m).round().astype(np.int64))


def _edges_from_sample(chunks: ActivationChunks, n_bins: int) -> tuple[torch.Tensor, int]:
    """Quantile edges from an evenly spaced sample of at most one chunk of rows; and the sample size."""
    pos = sample_positions(chunks.n_rows, chunks.chunk_rows)
    return quantile_edges(torch.from_numpy(chunks.read(pos)), n_bins), len(pos)


def _bin_counts(chunks: ActivationChunks, y: np.ndarray, edges: torch.Tensor, n_classes: int) -> torch.Tensor:
    counts = BinCounts(edges, n_classes)
    for pos, X in chunks:
        counts.update(X, y[pos])
    return counts.table()


def _column_sweep(ranker: NeuronRanker, chunks: ActivationChunks, temp_bytes_per_value: int):
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


def _gathered_columns(part: torch.Tensor, done: np.ndarray) -> torch.Tensor:
    """Each rank filled the columns ``done`` of ``part [..., D]``; the full tensor, on every rank."""
    pieces = gather((part, done))
    out = pieces[0][0]
    for t, mask in pieces[1:]:
        cols = torch.from_numpy(mask)
        out[..., cols] = t[..., cols]
    return out


def _fit_mutual_information(ranker: MutualInformation, chunks, y, moments, opts) -> None:
    ranker._check_estimator()
    if ranker.estimator != "binned":
        raise ValueError("MutualInformation(estimator='sklearn') (k-NN) needs X in memory; out of core use "
                         "estimator='binned'")
    C, B = len(ranker.classes_), int(ranker.n_bins)
    if opts["exact"]:  # every neuron's MI depends on its column alone: exact, block by block
        ranker.edge_rows_ = chunks.n_rows
        counts = torch.zeros(C, B, chunks.n_neurons, dtype=torch.float64)  # neurons last, for the gather
        done = np.zeros(chunks.n_neurons, dtype=bool)
        for cols, block, temp_cols in _column_sweep(ranker, chunks, 16):
            part = BinCounts(quantile_edges(block, B, block=temp_cols), C)
            part.update(block, y)
            counts[:, :, cols] = part.table().transpose(1, 2)
            done[cols] = True
        counts = _gathered_columns(counts, done).transpose(1, 2)
    else:
        edges, ranker.edge_rows_ = _edges_from_sample(chunks, B)
        counts = _bin_counts(chunks, y, edges, C)
        ranker.n_passes_ += 2
    ranker._from_counts(counts)


def _fit_average_precision(ranker: AveragePrecision, chunks, y, moments, opts) -> None:
    if ranker.direction not in ("both", "positive"):
        raise ValueError(f"direction must be 'both' or 'positive', got {ranker.direction!r}")
    C = len(ranker.classes_)
    if opts["exact"]:
        ap = torch.zeros(C, chunks.n_neurons, dtype=torch.float64)
        done = np.zeros(chunks.n_neurons, dtype=bool)
        yt = torch.from_numpy(y)
        for cols, block, temp_cols in _column_sweep(ranker, chunks, 128):  # sort, tie ends, cumsums: < 128 B
            ap[:, cols] = _average_precision(block, yt, C, chunk=temp_cols)
            if ranker.direction == "both":
                neg = _average_precision(block, yt, C, chunk=temp_cols, descending=False)
                ap[:, cols] = torch.maximum(ap[:, cols], neg)
            done[cols] = True
        ap = _gathered_columns(ap, done)
        ranker.bins_ = None
    else:
        edges, m = _edges_from_sample(chunks, opts["bins"])
        counts = _bin_counts(chunks, y, edges, C)
        ranker.n_passes_ += 2
        ap = histogram_average_precision(counts, descending=True)
        if ranker.direction == "both":
            ap = torch.maximum(ap, histogram_average_precision(counts, descending=False))
        ranker.bins_ = opts["bins"]
    prev = moments.count / moments.n
    ranker.average_precision_ = ap.numpy()
    ranker.per_class_ = (ap - prev[:, None]).numpy()
    ranker.scores_ = ranker.per_class_[1] if C == 2 else ranker.per_class_.max(0)


_FITTERS: list[tuple[type, Callable]] = [
    (Probeless, _fit_from_moments), (MeanDifference, _fit_from_moments), (FStatistic, _fit_from_moments),
    (Random, _fit_random), (MutualInformation, _fit_mutual_information),
    (AveragePrecision, _fit_average_precision), (Linear, fit_linear), (L1, fit_l1), (Gaussian, fit_gaussian),
]
