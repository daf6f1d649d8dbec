"""The tensor file of a saved activations folder: one safetensors file holding ``X`` dense, or as compressed
sparse rows (``X.indptr``, ``X.indices``, ``X.values`` and ``{"format": "csr", "shape": "rows,cols"}`` in its
metadata). Writers that take rows block by block (bounded RAM) and readers: the whole matrix (dense ``X``
memory-mapped, sparse rows densified), some of its columns, or sparse rows a few at a time. Not the folder
around it (that is :mod:`.activations`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

_ST_DTYPES = {torch.float32: ("F32", np.float32, 4), torch.float16: ("F16", np.float16, 2),
              torch.bfloat16: ("BF16", np.uint16, 2)}
_ST_NAMES = {v[0]: k for k, v in _ST_DTYPES.items()}

def read_header(path: Path) -> tuple[dict, int]:
    """A safetensors file's header and the byte offset where its data starts."""
    with open(path, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        return json.loads(fh.read(n)), 8 + n


def is_sparse(header: dict) -> bool:
    """Whether a tensor file's header (:func:`read_header`) holds ``X`` as compressed sparse rows."""
    return (header.get("__metadata__") or {}).get("format") == "csr"


# -------------------------------------------------------------------------------------- file format
class TensorFileWriter:
    """Writes one [rows, cols] tensor named ``X`` into a safetensors file block by block (bounded RAM)."""

    def __init__(self, path: Path, rows: int, cols: int, dtype: torch.dtype):
        if dtype not in _ST_DTYPES:
            raise ValueError(f"unsupported dtype {dtype}; use one of {list(_ST_DTYPES)}")
        name, _, size = _ST_DTYPES[dtype]
        self.dtype, self.cols, self.itemsize = dtype, cols, size
        header = {"X": {"dtype": name, "shape": [rows, cols], "data_offsets": [0, rows * cols * size]}}
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)
        self.fh = open(path, "wb")
        self.fh.write(len(raw).to_bytes(8, "little") + raw)
        self.data_start = self.fh.tell()
        self.fh.truncate(self.data_start + rows * cols * size)

    def write_rows(self, start: int, block: torch.Tensor) -> None:
        block = block.detach().to("cpu", self.dtype).contiguous()
        if self.dtype == torch.bfloat16:
            block = block.view(torch.int16)
        self.fh.seek(self.data_start + start * self.cols * self.itemsize)
        self.fh.write(memoryview(block.numpy()).cast("B"))  # no intermediate copy

    def close(self) -> None:
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()


def read_tensor_file(path: Path, mmap: bool = True, columns: "np.ndarray | None" = None) -> torch.Tensor:
    """Read tensor ``X`` of a safetensors file: dense, memory-mapped (copy-on-write) unless ``mmap`` is False;
    sparse rows, into RAM dense. ``columns`` reads only those columns (in that order)."""
    header, start = read_header(path)
    if is_sparse(header):
        return _densify(path, header, start, columns)
    info = header["X"]
    dtype = _ST_NAMES[info["dtype"]]
    np_dtype = _ST_DTYPES[dtype][1]
    shape = tuple(info["shape"])
    if shape[0] * shape[1] == 0:
        t = torch.zeros(shape, dtype=dtype)
        return t if columns is None else t[:, torch.as_tensor(columns)]
    arr = np.memmap(path, dtype=np_dtype, mode="c", offset=start + info["data_offsets"][0], shape=shape)
    if columns is not None:
        arr = np.ascontiguousarray(arr[:, columns])
    t = torch.from_numpy(arr if mmap or columns is not None else np.array(arr))
    return t.view(torch.bfloat16) if dtype == torch.bfloat16 else t


# ------------------------------------------------------------------------------------------ sparse rows
def to_sparse_rows(block: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(indptr, indices, values)`` of a dense ``[rows, cols]`` block: row ``r``'s non-zero values are
    ``values[indptr[r]:indptr[r + 1]]`` at columns ``indices[...]`` (int64, int32, the block's dtype; bfloat16 as
    its bits, uint16)."""
    block = block.detach().to("cpu")
    nz = block != 0
    indptr = np.zeros(block.shape[0] + 1, dtype=np.int64)
    np.cumsum(nz.sum(1).numpy(), out=indptr[1:])
    rows, cols = nz.nonzero(as_tuple=True)  # row-major order
    values = block[rows, cols].contiguous()
    if values.dtype == torch.bfloat16:
        values = values.view(torch.int16)
    return indptr, cols.to(torch.int32).numpy(), values.numpy()


class SparseFileWriter:
    """Writes ``X`` as compressed sparse rows (``X.indptr``, ``X.indices``, ``X.values``) into a safetensors file
    whose number of non-zero values ``nnz`` is known up front; :meth:`append` adds the next rows (bounded RAM)."""

    def __init__(self, path: Path, rows: int, cols: int, nnz: int, dtype: torch.dtype):
        if dtype not in _ST_DTYPES:
            raise ValueError(f"unsupported dtype {dtype}; use one of {list(_ST_DTYPES)}")
        name, _, size = _ST_DTYPES[dtype]
        self.rows, self.nnz, self.itemsize = rows, nnz, size
        o1 = 8 * (rows + 1)
        o2 = o1 + 4 * nnz
        header = {"__metadata__": {"format": "csr", "shape": f"{rows},{cols}"},
                  "X.indptr": {"dtype": "I64", "shape": [rows + 1], "data_offsets": [0, o1]},
                  "X.indices": {"dtype": "I32", "shape": [nnz], "data_offsets": [o1, o2]},
                  "X.values": {"dtype": name, "shape": [nnz], "data_offsets": [o2, o2 + size * nnz]}}
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)
        self.fh = open(path, "wb")
        self.fh.write(len(raw).to_bytes(8, "little") + raw)
        self.start = self.fh.tell()
        self.offsets = (self.start, self.start + o1, self.start + o2)
        self.fh.truncate(self.start + o2 + size * nnz)  # indptr[0] = 0: the file starts zeroed
        self.row = self.done = 0

    def append(self, indptr: np.ndarray, indices: np.ndarray, values: np.ndarray) -> None:
        """The next ``len(indptr) - 1`` rows, as :func:`to_sparse_rows` gives them (``indptr`` from 0)."""
        n, k = len(indptr) - 1, len(indices)
        if self.row + n > self.rows or self.done + k > self.nnz:
            raise ValueError(f"sparse rows overflow the file: {self.row + n} of {self.rows} rows, "
                             f"{self.done + k} of {self.nnz} values")
        for offset, arr in ((self.offsets[0] + 8 * (self.row + 1), np.asarray(indptr[1:], np.int64) + self.done),
                            (self.offsets[1] + 4 * self.done, np.asarray(indices, np.int32)),
                            (self.offsets[2] + self.itemsize * self.done, values)):
            self.fh.seek(offset)
            self.fh.write(memoryview(np.ascontiguousarray(arr)).cast("B"))
        self.row, self.done = self.row + n, self.done + k

    def close(self) -> None:
        if self.row != self.rows or self.done != self.nnz:
            self.fh.close()
            raise ValueError(f"sparse rows incomplete: {self.row} of {self.rows} rows, {self.done} of {self.nnz} "
                             "values written")
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()


class SparseRows:
    """The compressed sparse rows of a tensor file, memory-mapped: ``indptr`` (read into RAM), ``indices`` and
    ``values``; :meth:`read` fills a dense float32 buffer with some consecutive rows."""

    def __init__(self, path: Path, header: "dict | None" = None, start: "int | None" = None):
        if header is None:
            header, start = read_header(path)
        if not is_sparse(header):
            raise ValueError(f"{path} holds dense rows, not sparse ones")
        self.shape = tuple(int(v) for v in header["__metadata__"]["shape"].split(","))
        self.dtype = _ST_NAMES[header["X.values"]["dtype"]]
        np_dtype = _ST_DTYPES[self.dtype][1]

        def part(name: str, dt) -> np.ndarray:
            lo, hi = header[name]["data_offsets"]
            count = (hi - lo) // np.dtype(dt).itemsize
            if count == 0:
                return np.zeros(0, dtype=dt)
            return np.memmap(path, dtype=dt, mode="r", offset=start + lo, shape=(count,))

        self.indptr = np.array(part("X.indptr", np.int64))
        self.indices, self.values = part("X.indices", np.int32), part("X.values", np_dtype)
        if len(self.indptr) != self.shape[0] + 1 or self.indptr[-1] != len(self.indices) or \
                len(self.values) != len(self.indices):
            raise ValueError(f"{path}: sparse rows do not fit their shape {self.shape} ({len(self.indptr)} row "
                             f"pointers, {len(self.indices)} columns, {len(self.values)} values)")

    @property
    def nnz(self) -> int:
        return int(self.indptr[-1])

    def entries(self, start: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(rows relative to start, columns, values as stored)`` of rows ``start .. start + n`` (bfloat16 values
        as their bits, uint16)."""
        lo, hi = int(self.indptr[start]), int(self.indptr[start + n])
        rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(self.indptr[start:start + n + 1]))
        return rows, np.asarray(self.indices[lo:hi], dtype=np.int64), np.asarray(self.values[lo:hi])

    def read(self, start: int, n: int, out: np.ndarray) -> None:
        """Rows ``start .. start + n`` into ``out`` (float32 ``[n, cols]``; zeroed first)."""
        out[:n] = 0
        rows, cols, vals = self.entries(start, n)
        if self.dtype == torch.bfloat16:
            vals = torch.from_numpy(vals.copy()).view(torch.bfloat16).float().numpy()
        out[rows, cols] = vals


def available_memory() -> "int | None":
    """Bytes of memory available to a new allocation (``MemAvailable`` of ``/proc/meminfo``), None where unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _densify(path: Path, header: dict, start: int, columns: "np.ndarray | None") -> torch.Tensor:
    """A sparse tensor file as a dense tensor (only ``columns`` when given), block by block. The matrix is a numpy
    allocation (huge pages where the kernel gives them: zeroing it cost a quarter of torch.zeros's time here). A
    matrix over half the available memory is a ``MemoryError`` that says how to read the rows instead."""
    sp = SparseRows(path, header, start)
    n, d = sp.shape
    need = n * (d if columns is None else len(columns)) * _ST_DTYPES[sp.dtype][2]
    free = available_memory()
    if free is not None and need > free // 2:
        raise MemoryError(f"{path}: its sparse rows ({n} x {d}, {sp.nnz} values stored) take {need / 2**20:,.0f} MiB "
                          f"dense, more than half the {free / 2**20:,.0f} MiB of memory available: read them in row "
                          "chunks (data.chunks.ActivationChunks, rankers.fit_out_of_core) or load only some columns "
                          "(Activations.load(path, neurons=[...]))")
    remap = None
    if columns is not None:
        columns = np.asarray(columns, dtype=np.int64)
        if len(columns) and (columns.min() < 0 or columns.max() >= d):
            raise IndexError(f"{path}: columns out of range 0..{d - 1}")
        remap = np.full(d, -1, dtype=np.int64)
        remap[columns] = np.arange(len(columns))
    X = np.zeros((n, d if columns is None else len(columns)), dtype=_ST_DTYPES[sp.dtype][1])
    step = max(1, (1 << 22) // max(1, sp.nnz // max(1, n)))  # about 4M values per block
    for r0 in range(0, n, step):
        rows, cols, vals = sp.entries(r0, min(step, n - r0))
        if remap is not None:
            cols = remap[cols]
            keep = cols >= 0
            rows, cols, vals = rows[keep], cols[keep], vals[keep]
        X[rows + r0, cols] = vals  # the stored bits: no conversion
    t = torch.from_numpy(X)
    return t.view(torch.bfloat16) if sp.dtype == torch.bfloat16 else t
