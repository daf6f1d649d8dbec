"""Row chunks of saved activations, read into reused buffers: memory bounded by a chunk size, not by X.

For fitting rankers on activations larger than RAM (``rankers.fit_out_of_core``); not a cache and not a
writer. The tensor file is read with ``os.preadv`` into two preallocated buffers (the file's rows, and the
float32 rows handed out), so the process never maps the file and its resident memory stays at about
``chunk_bytes`` whatever the size of X (the kernel's page cache holds what it likes; it is not the process's
memory). A folder of sparse rows (an SAE's latents) is read the same way: each chunk is filled from the stored
non-zero values of its rows. ::

    chunks = ActivationChunks("acts/", "upos", chunk_bytes=256 << 20)
    chunks.y, chunks.classes, chunks.groups      # labels and sentence ids of the words carrying upos
    for pos, X in chunks:                        # pos: positions 0..n_rows-1; X float32 [len(pos), n_neurons]
        ...                                      # X is a view of a reused buffer: valid until the next chunk
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from ._tensorfile import _ST_DTYPES, _ST_NAMES, SparseRows, is_sparse, read_header
from .activations import META_FILE, TENSOR_FILE, Activations, attribute_rows, skipped_sentences

__all__ = ["ActivationChunks", "chunk_rows_for"]

#: whole multiples of this many rows per chunk where the budget allows (probes.standardization's block)
ROW_ALIGN = 256


def chunk_rows_for(n_columns: int, chunk_bytes: int, itemsize: int = 4) -> int:
    """Rows (of ``n_columns`` values) per chunk so that the read buffer (``itemsize`` bytes a value) and the
    float32 rows handed out fit in ``chunk_bytes`` together; a multiple of 256 rows when that is at least 256."""
    per_row = max(1, n_columns) * (4 + itemsize)
    rows = max(1, int(chunk_bytes) // per_row)
    return rows - rows % ROW_ALIGN if rows >= ROW_ALIGN else rows


class ActivationChunks:
    """The words carrying ``attribute`` of a saved activations folder (or of an ``Activations``), in row chunks.

    ``rows`` are the file rows of those words, in order (``Activations.dataset(attribute, return_index=True)``'s
    index); ``y`` their labels as indices into ``classes``; ``groups`` their sentence ids. Iterating yields
    ``(pos, X)``: ``pos`` positions into ``rows``/``y`` (int64), ``X`` float32 ``[len(pos), n_neurons]``, a view of
    a buffer reused by the next chunk. ``chunk_rows`` or ``chunk_bytes`` (a RAM budget for both buffers) sets the
    chunk size; :meth:`iter` walks any sorted subset of positions (a split, a sample) the same way.
    """

    def __init__(self, source: "str | Path | Activations", attribute: "str | None" = None, *,
                 chunk_rows: int | None = None, chunk_bytes: int | None = None, min_count: int = 1):
        self._sparse: SparseRows | None = None
        if isinstance(source, Activations):
            self.path, self._tensor = None, source.X
            attributes, sentence_ids, meta = source.attributes, source.sentence_ids, source.meta
            dtype, shape, self._offset = source.X.dtype, tuple(source.X.shape), 0
        else:
            self.path, self._tensor = Path(source), None
            if not (self.path / META_FILE).exists() or not (self.path / TENSOR_FILE).exists():
                raise FileNotFoundError(f"{self.path} is not a saved Activations folder (needs {TENSOR_FILE} and "
                                        f"{META_FILE})")
            saved = json.loads((self.path / META_FILE).read_text())
            attributes, sentence_ids = saved["attributes"], np.asarray(saved["sentence_ids"], dtype=np.int64)
            meta = saved.get("meta") or {}
            header, start = read_header(self.path / TENSOR_FILE)
            if is_sparse(header):  # sparse rows: each chunk is filled dense from the rows' stored values
                self._sparse = SparseRows(self.path / TENSOR_FILE, header, start)
                dtype, shape, self._offset = self._sparse.dtype, self._sparse.shape, 0
            else:
                info = header["X"]
                dtype, shape = _ST_NAMES[info["dtype"]], tuple(info["shape"])
                self._offset = start + info["data_offsets"][0]
        self.n_words, self.n_neurons = int(shape[0]), int(shape[1])
        self.dtype = dtype
        if dtype in _ST_DTYPES:
            self._np_dtype, self._itemsize = _ST_DTYPES[dtype][1], _ST_DTYPES[dtype][2]
        else:  # an in-memory X of another dtype (float64, ...): sliced and converted, never read from a file
            self._np_dtype, self._itemsize = None, torch.empty(0, dtype=dtype).element_size()
        if attribute is None:
            self.rows, self.y, self.classes = np.arange(self.n_words, dtype=np.int64), None, []
        else:
            self.rows, self.y, self.classes = attribute_rows(attributes, attribute, min_count, sentence_ids,
                                                             skipped_sentences(meta))
        self.groups = np.asarray(sentence_ids, dtype=np.int64)[self.rows]
        self.attribute = attribute
        self.chunk_rows = self._resolve_chunk_rows(chunk_rows, chunk_bytes)
        self._out: np.ndarray | None = None
        self._raw: np.ndarray | None = None

    def _resolve_chunk_rows(self, chunk_rows: int | None, chunk_bytes: int | None) -> int:
        if chunk_rows is not None and chunk_bytes is not None:
            raise ValueError("give chunk_rows or chunk_bytes, not both")
        if chunk_rows is not None:
            if int(chunk_rows) < 1:
                raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
            return int(chunk_rows)
        chunk_bytes = 256 << 20 if chunk_bytes is None else int(chunk_bytes)
        if chunk_bytes < (4 + self._itemsize) * self.n_neurons:
            raise ValueError(f"chunk_bytes={chunk_bytes} is smaller than one row ({self.n_neurons} neurons of "
                             f"{self._itemsize} bytes, plus its float32 copy)")
        return chunk_rows_for(self.n_neurons, chunk_bytes, self._itemsize)

    def resized(self, chunk_rows: int) -> "ActivationChunks":
        """The same rows in chunks of ``chunk_rows`` (own buffers; this reader is left as it is)."""
        other = copy.copy(self)
        other.chunk_rows, other._out, other._raw = max(1, int(chunk_rows)), None, None
        return other

    def release(self) -> None:
        """Free the buffers (the next read allocates them again)."""
        self._out = self._raw = None

    def column_blocks(self, block_bytes: int, blocks: Any = None) -> Iterator[tuple[int, np.ndarray]]:
        """Every selected row of a block of columns at a time, ``(first column, X[:, block])`` float32 ``[n_rows,
        width]`` in one reused buffer of at most ``block_bytes``: one pass over the file per block. ``blocks(n)``
        (e.g. ``core.distributed.share``) picks which of the ``n`` blocks to read (default all)."""
        width = max(1, min(self.n_neurons, int(block_bytes) // (4 * max(1, self.n_rows))))
        buf = np.empty((self.n_rows, width), dtype=np.float32)
        n_blocks = -(-self.n_neurons // width)
        for b in range(n_blocks) if blocks is None else blocks(n_blocks):
            c0 = b * width
            w = min(width, self.n_neurons - c0)
            block = buf[:, :w]
            for pos, X in self:
                block[pos[0]: pos[-1] + 1] = X[:, c0: c0 + w]
            yield c0, block

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def n_rows(self) -> int:
        return len(self.rows)

    @property
    def buffer_bytes(self) -> int:
        """Bytes of this reader's two buffers (the read buffer and the float32 rows handed out)."""
        return self.chunk_rows * self.n_neurons * (4 + self._itemsize)

    @property
    def nbytes(self) -> int:
        """Size of the selected rows as float32, the memory an in-memory fit would need for X."""
        return self.n_rows * self.n_neurons * 4

    def __repr__(self) -> str:
        return (f"ActivationChunks({self.path or 'in memory'}, attribute={self.attribute!r}, {self.n_rows} of "
                f"{self.n_words} words x {self.n_neurons} neurons, chunks of {self.chunk_rows} rows)")

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return self.iter()

    def iter(self, positions: Any = None, order: Any = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Chunks of ``positions`` (sorted positions into ``rows``; default all), in file order, or in the
        chunk order ``order`` (a permutation of the chunk numbers, e.g. shuffled per epoch)."""
        pos = np.arange(self.n_rows, dtype=np.int64) if positions is None else np.asarray(positions, dtype=np.int64)
        n_chunks = -(-len(pos) // self.chunk_rows)
        for c in range(n_chunks) if order is None else order:
            part = pos[int(c) * self.chunk_rows: (int(c) + 1) * self.chunk_rows]
            yield part, self.read(part)

    def n_chunks(self, positions: Any = None) -> int:
        n = self.n_rows if positions is None else len(positions)
        return -(-n // self.chunk_rows)

    # ------------------------------------------------------------------------------------ reading
    def read(self, positions: np.ndarray) -> np.ndarray:
        """Rows ``self.rows[positions]`` (sorted, at most ``chunk_rows``) as float32, in the reused buffer."""
        if len(positions) > self.chunk_rows:
            raise ValueError(f"{len(positions)} rows do not fit a chunk of {self.chunk_rows}")
        if self._out is None:
            self._out = np.empty((self.chunk_rows, self.n_neurons), dtype=np.float32)
        out = self._out[: len(positions)]
        frows = self.rows[positions]
        j = 0
        while j < len(frows):  # runs of rows whose span fits the buffer: one read each
            k = int(np.searchsorted(frows, frows[j] + self.chunk_rows, side="left"))
            span = int(frows[k - 1] - frows[j] + 1)
            if span == k - j:  # contiguous: straight into the output
                self._read_span(int(frows[j]), span, out[j:k])
            elif span <= 4 * (k - j):  # dense enough: read the span, keep the wanted rows
                raw = self._span_buffer()[:span]
                self._read_span(int(frows[j]), span, raw)
                np.take(raw, frows[j:k] - frows[j], axis=0, out=out[j:k])
            else:  # sparse (a sample): row by row
                for i in range(j, k):
                    self._read_span(int(frows[i]), 1, out[i: i + 1])
            j = k
        return out

    def _span_buffer(self) -> np.ndarray:
        if self._raw is None:
            self._raw = np.empty((self.chunk_rows, self.n_neurons), dtype=np.float32)
        return self._raw

    def _read_span(self, start: int, n: int, out: np.ndarray) -> None:
        """File rows ``start .. start + n`` into float32 ``out`` (no mapping of the file)."""
        if self._tensor is not None:
            torch.from_numpy(out).copy_(self._tensor[start: start + n])  # converts without a float32 temporary
            return
        if self._sparse is not None:
            self._sparse.read(start, n, out)
            return
        nbytes = n * self.n_neurons * self._itemsize
        offset = self._offset + start * self.n_neurons * self._itemsize
        if self._itemsize == 4:
            _pread_into(self.path / TENSOR_FILE, memoryview(out).cast("B"), offset, nbytes)
            return
        raw = np.empty((n, self.n_neurons), dtype=self._np_dtype)  # half precision: at most one chunk
        _pread_into(self.path / TENSOR_FILE, memoryview(raw).cast("B"), offset, nbytes)
        t = torch.from_numpy(raw)
        torch.from_numpy(out).copy_(t.view(torch.bfloat16) if self.dtype == torch.bfloat16 else t)


def _pread_into(path: Path, buf: memoryview, offset: int, nbytes: int) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        done = 0
        while done < nbytes:
            got = os.preadv(fd, [buf[done:nbytes]], offset + done)
            if got <= 0:
                raise EOFError(f"{path}: file ends {nbytes - done} bytes short at offset {offset + done}")
            done += got
    finally:
        os.close(fd)
