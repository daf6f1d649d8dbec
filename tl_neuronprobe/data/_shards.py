"""Shards of a streamed extraction: one pre-sized safetensors file that any number of ranks fill in disjoint row
ranges, a small record per finished shard, a fingerprint that says which run the folder belongs to, and the
manifest that lists every shard. Not for computing rows (that is :mod:`.extraction`).

A *shard* is one block of consecutive sentences (``sentences_per_block``) and the rows of their words. While an
extraction runs, everything lives in a staging folder named after the output folder, ``.{name}.partial``::

    .acts.partial/
        fingerprint.json          # model, weights, sites, layers, aggregation, dtype, corpus, block size, ...
        activations.safetensors   # header + every row, pre-sized by rank 0; rank r writes only its shards' rows
        shards/shard-00012.json   # written (atomically) after shard 12's rows are on disk (fsync): row and
                                  # sentence ranges, rank, byte count and crc32 of the rows

With sparse storage (an SAE's latents, mostly zeros) a shard's rows go to their own file,
``shards/shard-00012.safetensors`` (compressed sparse rows), whose record holds its byte count and crc32; rank 0
joins them, in corpus order, into ``activations.safetensors`` at the end (:func:`join_sparse`) and removes them.

A shard counts as done only when its record exists *and* the crc32 of its bytes in the file matches the record,
so a rank that dies mid-shard (no record) or a torn write (wrong crc32) is recomputed, never counted. A folder
whose fingerprint differs from the current run is discarded and started afresh.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._tensorfile import SparseFileWriter, SparseRows, TensorFileWriter, to_sparse_rows
from .activations import TENSOR_FILE

SHARDS_DIR = "shards"
MANIFEST_FILE = "manifest.json"
FINGERPRINT_FILE = "fingerprint.json"
MANIFEST_FORMAT = "tl_neuronprobe.shards/1"
_CHUNK = 1 << 26  # bytes per write / read / crc step (Linux writes at most ~2 GiB per call)
#: the most sentences per block by default: bounds a rank's RAM for one block and the work a failure loses
MAX_BLOCK = 2048
#: the most bytes of rows per block by default (wide extractions: every layer of a large model, a wide SAE)
BLOCK_BYTES = 2 << 30


@dataclass(frozen=True)
class Shard:
    """One block of sentences ``[sentence_lo, sentence_hi)`` and the rows ``[row_lo, row_hi)`` of their words."""

    index: int
    sentence_lo: int
    sentence_hi: int
    row_lo: int
    row_hi: int


def plan_shards(sentence_ids: np.ndarray, n_sentences: int, sentences_per_block: int) -> list[Shard]:
    """The corpus cut into blocks of ``sentences_per_block`` consecutive sentences, in corpus order."""
    if sentences_per_block < 1:
        raise ValueError(f"sentences_per_block must be at least 1, got {sentences_per_block}")
    edges = list(range(0, n_sentences, sentences_per_block)) + [n_sentences]
    rows = np.searchsorted(sentence_ids, edges, side="left")
    return [Shard(i, lo, hi, int(rows[i]), int(rows[i + 1])) for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:]))]


def block_size(n_sentences: int, world_size: int = 1, cap: int = MAX_BLOCK, sentence_bytes: int = 0) -> int:
    """Sentences per block when none is given: the corpus cut into the same number of blocks per rank, each at
    most ``cap`` sentences, so every rank gets work (one process: ``cap``-sized blocks, or the whole corpus when
    it is smaller). A corpus of 300 sentences on 2 ranks: blocks of 150, one per rank. With ``sentence_bytes``
    (the rows of an average sentence, in bytes) the cap also keeps a block's rows within :data:`BLOCK_BYTES`.

    Blocks have one size (the last takes the rest), so a small corpus may come out in fewer blocks than asked;
    the size then shrinks until there are at least as many blocks as ranks (or one per sentence).
    """
    if n_sentences < 1 or world_size < 1 or cap < 1:
        raise ValueError(f"block_size needs n_sentences, world_size and cap >= 1, got {n_sentences}, {world_size}, "
                         f"{cap}")
    if sentence_bytes > 0:
        cap = max(1, min(cap, BLOCK_BYTES // int(sentence_bytes)))
    per_rank = math.ceil(n_sentences / (world_size * cap))
    block = math.ceil(n_sentences / (world_size * per_rank))
    while block > 1 and math.ceil(n_sentences / block) < min(world_size, n_sentences):
        block -= 1
    return block


def resumable_block(staging: Path, fingerprint: dict) -> "int | None":
    """The block size recorded in ``staging`` when its fingerprint equals ``fingerprint`` in everything else: a
    run resumed with the default block size keeps the first run's blocks (and shards) whatever its number of
    ranks. None when there is no such folder."""
    recorded = _read_json(staging / FINGERPRINT_FILE)
    if not isinstance(recorded, dict) or "sentences_per_block" not in recorded:
        return None
    rest = {k: v for k, v in recorded.items() if k != "sentences_per_block"}
    if rest != {k: v for k, v in fingerprint.items() if k != "sentences_per_block"}:
        return None
    return int(recorded["sentences_per_block"])


def staging_path(out_dir: Path) -> Path:
    """The deterministic staging folder of ``out_dir``: a re-run finds it and resumes."""
    return out_dir.parent / f".{out_dir.name}.partial"


# ------------------------------------------------------------------------------------------ fingerprint
def corpus_digest(words: list[str], sentence_ids: np.ndarray) -> str:
    """sha256 of the words and their sentence ids."""
    h = hashlib.sha256("\x00".join(words).encode())
    h.update(np.ascontiguousarray(sentence_ids, dtype=np.int64).tobytes())
    return h.hexdigest()


#: TransformerLens modules after the last block: extraction never runs them, and a head that loads randomly
#: initialized (an encoder's MLM head) must not make two loads of the same weights look different
_HEADS = {"unembed", "ln_final", "mlm_head", "_container_state_owners"}


def model_digest(model: torch.nn.Module) -> str:
    """crc32 over the name, shape and bytes of every parameter that extraction can read through (embeddings and
    blocks; not the heads), one parameter at a time on the CPU; parameters on the ``meta`` device (offloaded
    to disk) count by name and shape only."""
    crc, seen = 0, set()
    for child, module in model.named_children():
        if child in _HEADS:
            continue
        for name, p in module.named_parameters():
            if id(p) in seen:
                continue
            seen.add(id(p))
            crc = zlib.crc32(f"{child}.{name}:{tuple(p.shape)}:{p.dtype}".encode(), crc)
            if p.device.type != "meta" and p.numel():
                raw = p.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy()
                crc = zlib.crc32(memoryview(raw), crc)
    return f"{crc:08x}"


def _write_json_atomic(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON next to ``path``, fsync it and rename it into place (never a half-written file)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as fh:
        json.dump(obj, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _read_json(path: Path) -> "Any | None":
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def prepare_staging(staging: Path, fingerprint: dict, rows: int, cols: int, dtype: torch.dtype,
                    sparse: bool = False) -> str:
    """Rank 0's step before any rank writes: keep a staging folder of the same run (``"resumed"``), or start one
    (``"fresh"``, or ``"replaced"`` when a folder of another run was there). The fingerprint is written last, so
    a folder whose preparation was interrupted is never resumed. Dense rows get their pre-sized file here; sparse
    rows are written per shard."""
    if _read_json(staging / FINGERPRINT_FILE) == fingerprint and (sparse or (staging / TENSOR_FILE).exists()):
        return "resumed"
    state = "replaced" if staging.exists() else "fresh"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / SHARDS_DIR).mkdir(parents=True)
    if not sparse:
        TensorFileWriter(staging / TENSOR_FILE, rows, cols, dtype).close()  # header + truncate to the full size
    _write_json_atomic(staging / FINGERPRINT_FILE, fingerprint)
    return state


# ------------------------------------------------------------------------------------------------ store
class ShardStore:
    """One rank's handle on the staging folder: writes shards' rows with their records, verifies records."""

    def __init__(self, staging: Path, cols: int, dtype: torch.dtype):
        self.staging, self.cols, self.dtype = staging, cols, dtype
        self.itemsize = torch.empty((), dtype=dtype).element_size()
        self.fd = os.open(staging / TENSOR_FILE, os.O_RDWR)
        self.data_start = 8 + int.from_bytes(os.pread(self.fd, 8, 0), "little")

    def record_path(self, index: int) -> Path:
        return self.staging / SHARDS_DIR / f"shard-{index:05d}.json"

    def _span(self, shard: Shard) -> tuple[int, int]:
        start = self.data_start + shard.row_lo * self.cols * self.itemsize
        return start, (shard.row_hi - shard.row_lo) * self.cols * self.itemsize

    def write(self, shard: Shard, block: torch.Tensor, rank: int) -> None:
        """Write the shard's rows at their place in the file, fsync, then its record (atomically)."""
        block = block.detach().to("cpu", self.dtype).contiguous()
        raw = memoryview(block.view(torch.int16 if self.itemsize == 2 else torch.int32).numpy()).cast("B")
        start, size = self._span(shard)
        if len(raw) != size:
            raise ValueError(f"shard {shard.index}: {len(raw)} bytes for a span of {size}")
        crc = 0
        for lo in range(0, size, _CHUNK):
            piece = raw[lo:lo + _CHUNK]
            crc = zlib.crc32(piece, crc)
            done = 0
            while done < len(piece):
                done += os.pwrite(self.fd, piece[done:], start + lo + done)
        os.fsync(self.fd)
        _write_json_atomic(self.record_path(shard.index), dict(
            index=shard.index, sentences=[shard.sentence_lo, shard.sentence_hi], rows=[shard.row_lo, shard.row_hi],
            rank=rank, bytes=size, crc32=f"{crc:08x}"))

    def is_done(self, shard: Shard) -> bool:
        """Whether the shard's record exists, matches the shard and the crc32 of its bytes in the file; a record
        that does not is removed."""
        path = self.record_path(shard.index)
        record = _read_json(path)
        if record is None:
            return False
        start, size = self._span(shard)
        ok = (record.get("rows") == [shard.row_lo, shard.row_hi] and record.get("bytes") == size
              and record.get("sentences") == [shard.sentence_lo, shard.sentence_hi]
              and record.get("crc32") == f"{self._crc(start, size):08x}")
        if not ok:
            path.unlink(missing_ok=True)
        return ok

    def _crc(self, start: int, size: int) -> int:
        crc = 0
        for lo in range(0, size, _CHUNK):
            crc = zlib.crc32(os.pread(self.fd, min(_CHUNK, size - lo), start + lo), crc)
        return crc

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def sparse_rows_path(staging: Path, index: int) -> Path:
    """The file of shard ``index``'s sparse rows in a staging folder."""
    return staging / SHARDS_DIR / f"shard-{index:05d}.safetensors"


class SparseShardStore:
    """:class:`ShardStore` for sparse rows: each shard's rows in their own file of compressed sparse rows."""

    def __init__(self, staging: Path, cols: int, dtype: torch.dtype):
        self.staging, self.cols, self.dtype = staging, cols, dtype

    def record_path(self, index: int) -> Path:
        return self.staging / SHARDS_DIR / f"shard-{index:05d}.json"

    def rows_path(self, index: int) -> Path:
        return sparse_rows_path(self.staging, index)

    def write(self, shard: Shard, block: torch.Tensor, rank: int) -> None:
        """Write the shard's rows to their file (fsync, renamed into place), then its record (atomically)."""
        indptr, indices, values = to_sparse_rows(block.to(self.dtype))
        path = self.rows_path(shard.index)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        writer = SparseFileWriter(tmp, shard.row_hi - shard.row_lo, self.cols, len(indices), self.dtype)
        writer.append(indptr, indices, values)
        writer.close()
        os.replace(tmp, path)
        _write_json_atomic(self.record_path(shard.index), dict(
            index=shard.index, sentences=[shard.sentence_lo, shard.sentence_hi], rows=[shard.row_lo, shard.row_hi],
            rank=rank, bytes=path.stat().st_size, nnz=len(indices), crc32=f"{_file_crc(path):08x}"))

    def is_done(self, shard: Shard) -> bool:
        """Whether the shard's record exists and matches the shard and its file's size and crc32; a record that
        does not is removed."""
        path, rows = self.record_path(shard.index), self.rows_path(shard.index)
        record = _read_json(path)
        if record is None:
            return False
        ok = (record.get("rows") == [shard.row_lo, shard.row_hi]
              and record.get("sentences") == [shard.sentence_lo, shard.sentence_hi] and rows.exists()
              and record.get("bytes") == rows.stat().st_size and record.get("crc32") == f"{_file_crc(rows):08x}")
        if not ok:
            path.unlink(missing_ok=True)
        return ok

    def close(self) -> None:
        pass


def _file_crc(path: Path) -> int:
    crc = 0
    with open(path, "rb") as fh:
        while piece := fh.read(_CHUNK):
            crc = zlib.crc32(piece, crc)
    return crc


def join_sparse(staging: Path, shards: list[Shard], records: dict[int, dict], cols: int, dtype: torch.dtype,
                max_density: float = 1.0) -> None:
    """Rank 0: every shard's sparse rows, in corpus order, into the staging folder's one tensor file (one shard in
    RAM at a time); the shards' files are removed afterwards. Stored dense instead when more than ``max_density``
    of the values are non-zero (a dictionary whose latents turned out not to be sparse)."""
    rows = shards[-1].row_hi if shards else 0
    nnz = sum(int(records[s.index]["nnz"]) for s in shards)
    dense = nnz > max_density * rows * cols
    writer = (TensorFileWriter(staging / TENSOR_FILE, rows, cols, dtype) if dense
              else SparseFileWriter(staging / TENSOR_FILE, rows, cols, nnz, dtype))
    for s in shards:
        part = SparseRows(sparse_rows_path(staging, s.index))
        if dense:
            buf = np.empty((s.row_hi - s.row_lo, cols), dtype=np.float32)
            part.read(0, len(buf), buf)
            writer.write_rows(s.row_lo, torch.from_numpy(buf))
        else:
            writer.append(part.indptr, np.asarray(part.indices), np.asarray(part.values))
    writer.close()
    for s in shards:
        sparse_rows_path(staging, s.index).unlink()


def read_records(staging: Path) -> dict[int, dict]:
    """Every shard record in a staging (or finished) folder, by shard index."""
    out = {}
    for path in sorted((staging / SHARDS_DIR).glob("shard-*.json")):
        record = _read_json(path)
        if record is not None:
            out[int(record["index"])] = record
    return out


def write_manifest(staging: Path, shards: list[Shard], records: dict[int, dict], fingerprint: dict,
                   world_size: int, resumed: int, model_name: str = "") -> None:
    """The manifest: every shard's record in corpus order, the fingerprint and how this run went."""
    missing = [s.index for s in shards if s.index not in records]
    if missing:
        raise RuntimeError(f"shards {missing} have no record in {staging}: a rank did not finish its share")
    for leftover in (staging / SHARDS_DIR).glob(".*.tmp-*"):  # records a killed rank never renamed
        leftover.unlink(missing_ok=True)
    _write_json_atomic(staging / MANIFEST_FILE, dict(
        format=MANIFEST_FORMAT, tensor_file=TENSOR_FILE, model_name=model_name, fingerprint=fingerprint,
        world_size=world_size,
        resumed_shards=resumed, shards=[records[s.index] for s in shards]))
