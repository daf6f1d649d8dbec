"""Word-aligned activations: a [n_words, n_neurons] matrix with its neurons, words, sentences and attributes.

Saved as a folder: ``activations.safetensors`` and ``meta.json``. The tensor file holds either one dense tensor
``X`` (loading memory-maps it, so a matrix larger than RAM opens at once and pages in only the rows that are read)
or, for mostly-zero rows such as an SAE's latents, ``X`` in compressed sparse rows: ``X.indptr`` (int64, one more
than the rows), ``X.indices`` (int32 columns) and ``X.values``, with ``{"format": "csr", "shape": "rows,cols"}`` in
the file's metadata (any safetensors reader opens it). A sparse file is read into RAM dense (whole, or only some
columns: ``Activations.load(path, neurons=...)``) and in row chunks by :class:`~.chunks.ActivationChunks`. A
folder is always written under a temporary name and renamed into place, so an interrupted write never corrupts
what was there before.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..core.neurons import Neuron
from ._tensorfile import SparseFileWriter, TensorFileWriter, read_tensor_file, to_sparse_rows

TENSOR_FILE = "activations.safetensors"
META_FILE = "meta.json"
#: how rows are stored: ``"dense"``, ``"sparse"`` (compressed sparse rows) or ``"auto"``
STORAGES = ("auto", "dense", "sparse")
#: ``storage="auto"`` writes sparse rows when at most this share of the values is non-zero: a stored value costs
#: its bytes plus a 4-byte column index (float32: 8 bytes against 4 dense), so a quarter halves the file
SPARSE_DENSITY = 0.25


class Activations:
    """Activations of ``neurons`` for every word of a corpus.

    ``X[i, j]`` is neuron ``neurons[j]`` on word ``words[i]`` of sentence ``sentence_ids[i]``; ``attributes``
    holds per-word annotations (None where a word lacks one).
    """

    def __init__(
        self,
        X: torch.Tensor,
        neurons: Sequence[Neuron],
        words: Sequence[str],
        sentence_ids: "np.ndarray | Sequence[int]",
        attributes: dict[str, Sequence[str | None]] | None = None,
        meta: dict[str, Any] | None = None,
    ):
        X = torch.as_tensor(X)
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D [n_words, n_neurons], got shape {tuple(X.shape)}")
        n, d = X.shape
        if len(neurons) != d:
            raise ValueError(f"X has {d} columns but {len(neurons)} neurons were given")
        if len(words) != n or len(sentence_ids) != n:
            raise ValueError(f"X has {n} rows but {len(words)} words and {len(sentence_ids)} sentence ids")
        self.X = X
        self.neurons = [Neuron.parse(x) for x in neurons]
        self.words = list(words)
        self.sentence_ids = np.asarray(sentence_ids, dtype=np.int64)
        self.attributes = {k: list(v) for k, v in (attributes or {}).items()}
        for k, v in self.attributes.items():
            if len(v) != n:
                raise ValueError(f"attribute {k!r} has {len(v)} values for {n} words")
        self.meta = dict(meta or {})
        self._columns: dict[Neuron, int] | None = None

    def __repr__(self) -> str:
        sites = sorted({n.site for n in self.neurons})
        layers = sorted({n.layer for n in self.neurons})
        return (f"Activations({self.n_words} words x {self.n_neurons} neurons, sites={sites}, layers={layers}, "
                f"dtype={self.X.dtype}, attributes={list(self.attributes)})")

    def __len__(self) -> int:
        return self.n_words

    @property
    def n_words(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_neurons(self) -> int:
        return int(self.X.shape[1])

    @property
    def layers(self) -> list[int]:
        return sorted({n.layer for n in self.neurons})

    # ------------------------------------------------------------------------------------ selection
    def columns(self, neurons: Sequence["Neuron | str"]) -> np.ndarray:
        """Column indices of ``neurons`` in ``X``; an error names any neuron that was not extracted."""
        if self._columns is None:
            self._columns = {n: i for i, n in enumerate(self.neurons)}
        out = []
        for n in neurons:
            n = Neuron.parse(n)
            if n not in self._columns:
                raise KeyError(f"neuron {n} is not in these activations (layers {self.layers}, "
                               f"sites {sorted({m.site for m in self.neurons})}, {self.n_neurons} neurons)")
            out.append(self._columns[n])
        return np.asarray(out, dtype=np.int64)

    def select(self, neurons: Sequence["Neuron | str"] | None = None, layer: int | None = None,
               site: str | None = None) -> "Activations":
        """A copy restricted to some neurons, or to one layer and/or site."""
        if neurons is not None:
            cols = self.columns(neurons)
        else:
            cols = np.asarray([i for i, n in enumerate(self.neurons)
                               if (layer is None or n.layer == layer) and (site is None or n.site == site)])
            if len(cols) == 0:
                raise KeyError(f"no neuron at layer={layer}, site={site}; layers {self.layers}")
        return Activations(self.X[:, torch.as_tensor(cols)], [self.neurons[i] for i in cols], self.words,
                           self.sentence_ids, self.attributes, self.meta)

    @classmethod
    def from_array(cls, X: Any, corpus, neurons: "Sequence[Neuron | str] | None" = None,
                   meta: "dict[str, Any] | None" = None) -> "Activations":
        """Activations from a plain matrix ``[n_words, n_neurons]`` whose rows are ``corpus``'s words in order
        (activations computed anywhere). ``neurons`` default to ``L0.N0 .. L0.N{d-1}``."""
        X = torch.as_tensor(np.asarray(X) if not isinstance(X, torch.Tensor) else X)
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D [n_words, n_neurons], got shape {tuple(X.shape)}")
        if X.shape[0] != corpus.n_words:
            raise ValueError(f"X has {X.shape[0]} rows but the corpus has {corpus.n_words} words; rows must be "
                             "the corpus's words in order")
        X = X if X.dtype.is_floating_point else X.float()
        neurons = [Neuron(0, i) for i in range(X.shape[1])] if neurons is None else \
            [Neuron.parse(n) for n in neurons]
        return cls(X, neurons, corpus.words, corpus.sentence_ids, corpus.attributes(),
                   {"source": "array", **dict(meta or {})})

    def dataset(self, attribute: str, return_index: bool = False, min_count: int = 1, dtype=torch.float32):
        """``X, y, classes`` over the words that carry ``attribute``; ``y`` indexes ``classes`` (sorted).

        ``min_count`` drops classes with fewer examples. With ``return_index``, also the row indices into
        these activations (for ``sentence_ids[idx]``, ``words[idx]``). Words of sentences that extraction
        skipped (``long_sentences="skip"``: zero rows, not activations) are left out, with a warning that
        counts them.
        """
        idx, y_np, classes = attribute_rows(self.attributes, attribute, min_count, self.sentence_ids,
                                            skipped_sentences(self.meta))
        y = torch.from_numpy(y_np)
        rows = torch.as_tensor(idx)
        if dtype == torch.float32:
            # numpy's allocator asks the kernel for huge pages on large arrays; random row gathers
            # (one probe mini-batch per step) ran about 25% faster on such memory in a micro-benchmark
            X = torch.from_numpy(np.empty((len(idx), self.X.shape[1]), dtype=np.float32))
            for s in range(0, len(idx), 4096):
                X[s : s + 4096] = self.X[rows[s : s + 4096]]
        else:
            X = self.X[rows].to(dtype)
        out = (X, y, classes)
        return out + (idx,) if return_index else out

    # ---------------------------------------------------------------------------------- persistence
    def save(self, path: "str | Path", storage: str = "auto") -> Path:
        """Write to folder ``path`` (safetensors + JSON), atomically replacing an existing folder.

        ``storage``: ``"dense"``, ``"sparse"`` (compressed sparse rows: only the non-zero values and their columns)
        or ``"auto"`` (sparse when at most :data:`SPARSE_DENSITY` of the values are non-zero, as in an SAE's
        latents; neurons' activations are dense)."""
        if storage not in STORAGES:
            raise ValueError(f"storage must be one of {STORAGES}, got {storage!r}")
        path = Path(path)
        tmp = _staging_dir(path)
        try:
            nnz: "int | None" = None
            if storage != "dense":  # "auto" stops counting once a quarter of the cells are non-zero
                nnz, limit = 0, SPARSE_DENSITY * self.n_words * self.n_neurons
                for count in self._nonzero_counts():
                    nnz += count
                    if storage == "auto" and nnz > limit:
                        nnz = None
                        break
            if nnz is None:
                writer = TensorFileWriter(tmp / TENSOR_FILE, self.n_words, self.n_neurons, self.X.dtype)
                for start, rows in self._row_blocks():
                    writer.write_rows(start, rows)
            else:
                writer = SparseFileWriter(tmp / TENSOR_FILE, self.n_words, self.n_neurons, nnz, self.X.dtype)
                for _, rows in self._row_blocks():
                    writer.append(*to_sparse_rows(rows))
            writer.close()
            write_meta(tmp / META_FILE, self)
            _commit_dir(tmp, path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return path

    def _row_blocks(self):
        """``(first row, X[rows])`` in blocks of about 64 MiB (bounded RAM over a memory-mapped X)."""
        block = max(1, (64 << 20) // max(1, self.n_neurons * self.X.element_size()))
        for start in range(0, self.n_words, block):
            yield start, self.X[start:start + block]

    def _nonzero_counts(self):
        """The number of non-zero values of each of :meth:`_row_blocks`."""
        return (int(torch.count_nonzero(rows)) for _, rows in self._row_blocks())

    @property
    def density(self) -> float:
        """The share of non-zero values in ``X`` (one pass over it)."""
        cells = self.n_words * self.n_neurons
        return sum(self._nonzero_counts()) / cells if cells else 0.0

    @classmethod
    def load(cls, path: "str | Path", mmap: bool = True,
             neurons: "Sequence[Neuron | str] | None" = None) -> "Activations":
        """Load a folder written by :meth:`save` or by streamed extraction; ``mmap`` maps a dense X without
        reading it (sparse rows are read into RAM dense). ``neurons`` loads only those columns (from a sparse
        file, without ever holding the other columns dense); an error names a neuron the folder lacks."""
        path = Path(path)
        if not (path / META_FILE).exists() or not (path / TENSOR_FILE).exists():
            raise FileNotFoundError(f"{path} is not a saved Activations folder (needs {TENSOR_FILE} and {META_FILE})")
        meta = json.loads((path / META_FILE).read_text())
        saved = [Neuron(layer, index, site) for site, layer, index in meta["neurons"]]
        columns = None
        if neurons is not None:
            where = {n: i for i, n in enumerate(saved)}
            wanted = [Neuron.parse(n) for n in neurons]
            missing = [str(n) for n in wanted if n not in where]
            if missing:
                raise KeyError(f"{path}: neurons {missing[:5]} are not in these activations ({len(saved)} saved, "
                               f"sites {sorted({n.site for n in saved})}, layers {sorted({n.layer for n in saved})})")
            if len(set(wanted)) < len(wanted):
                raise ValueError(f"{path}: neurons listed twice in {[str(n) for n in wanted][:8]}")
            columns, saved = np.asarray([where[n] for n in wanted], dtype=np.int64), wanted
        X = read_tensor_file(path / TENSOR_FILE, mmap=mmap, columns=columns)
        return cls(X, saved, meta["words"], meta["sentence_ids"], meta["attributes"], meta.get("meta"))


def skipped_sentences(meta: dict[str, Any]) -> np.ndarray:
    """Indices (values of ``sentence_ids``) of the sentences extraction skipped as too long for the model
    (``long_sentences="skip"``): their rows are zeros, not activations. A folder written before these indices
    were recorded lists only the sentences' names: a warning says their rows cannot be told apart."""
    if "skipped_sentence_index" in meta:
        return np.asarray(meta["skipped_sentence_index"], dtype=np.int64)
    if meta.get("skipped_sentences"):
        warnings.warn(f"these activations skipped {len(meta['skipped_sentences'])} sentences at extraction "
                      f"({meta['skipped_sentences'][:3]}...) but do not record their rows (written by an older "
                      "version): their zero rows stay in; extract again to leave them out", stacklevel=3)
    return np.zeros(0, dtype=np.int64)


def attribute_rows(attributes: dict[str, Sequence[str | None]], attribute: str, min_count: int = 1,
                   sentence_ids: "np.ndarray | None" = None, skipped: "np.ndarray | None" = None):
    """``(rows, y, classes)``: the rows whose word carries ``attribute`` (classes with at least ``min_count``
    examples), their labels as indices into ``classes`` (sorted strings). Rows whose sentence (``sentence_ids``)
    is in ``skipped`` (:func:`skipped_sentences`) are left out, with a warning that counts them."""
    if attribute not in attributes:
        raise KeyError(f"attribute {attribute!r} not in these activations; available: {list(attributes)}")
    values = attributes[attribute]
    idx = np.asarray([i for i, v in enumerate(values) if v is not None], dtype=np.int64)
    if skipped is not None and len(skipped) and len(idx):
        out = np.isin(np.asarray(sentence_ids, dtype=np.int64)[idx], skipped)
        if out.any():
            warnings.warn(f"attribute {attribute!r}: {int(out.sum())} labelled words of {len(skipped)} sentences "
                          "skipped at extraction (long_sentences='skip': zero rows) are left out", stacklevel=3)
            idx = idx[~out]
    if len(idx) == 0:
        raise ValueError(f"no word carries attribute {attribute!r}")
    labels = np.asarray([str(values[i]) for i in idx], dtype=object)
    classes, counts = np.unique(labels.astype(str), return_counts=True)
    keep = classes[counts >= min_count]
    if len(keep) < len(classes):
        mask = np.isin(labels.astype(str), keep)
        idx, labels = idx[mask], labels[mask]
        classes = keep
    if len(idx) == 0:
        raise ValueError(f"attribute {attribute!r}: no class has at least {min_count} examples")
    lookup = {c: i for i, c in enumerate(classes)}
    y = np.fromiter((lookup[v] for v in labels), dtype=np.int64, count=len(labels))
    return idx, y, [str(c) for c in classes]


def write_meta(path: Path, acts: "Activations | None" = None, **fields) -> None:
    if acts is not None:
        fields = dict(neurons=[[n.site, n.layer, n.index] for n in acts.neurons], words=acts.words,
                      sentence_ids=acts.sentence_ids.tolist(), attributes=acts.attributes, meta=acts.meta)
    path.write_text(json.dumps(fields))


def _staging_dir(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.partial-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    return tmp


def _commit_dir(tmp: Path, path: Path) -> None:
    """Rename a finished staging folder to ``path``; an old folder there is removed only afterwards."""
    old = None
    if path.exists():
        old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
