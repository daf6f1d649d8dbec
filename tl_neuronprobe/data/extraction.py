"""Fast, word-aligned activation extraction at TransformerLens hook points.

Sentences are tokenized in one call, sorted by length into buckets, run in batches that stop right after the
deepest layer needed, and each word's sub-token activations are reduced on the device (first, last or mean
sub-token). With ``out_dir`` the matrix is streamed to disk in blocks of sentences (shards, see :mod:`._shards`),
so RAM stays bounded whatever the corpus size, an interrupted run resumes, the shards are split over the ranks
of a ``torchrun`` launch, and the result is reloaded memory-mapped.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from tqdm.auto import tqdm

from ..core import distributed
from ..core.config import Config
from ..core.adapter import Batch, LongSentenceError, ModelAdapter, TokenizedSentence
from ..core.hooks import run_capture
from ..core.neurons import Neuron, check_site, hook_name
from ..core.units import is_unit_site, registered
from ._shards import (MANIFEST_FILE, Shard, ShardStore, SparseShardStore, block_size, corpus_digest, join_sparse,
                      model_digest, plan_shards, prepare_staging, read_records, resumable_block, staging_path,
                      write_manifest)
from .activations import META_FILE, SPARSE_DENSITY, STORAGES, Activations, _commit_dir, write_meta
from .corpus import Corpus

logger = logging.getLogger(__name__)

__all__ = ["extract", "ExtractConfig", "AGGREGATIONS", "MANIFEST_FILE", "NonFiniteActivationError",
           "LongSentenceError"]

AGGREGATIONS = ("first", "last", "mean")
LONG_SENTENCES = ("error", "window", "skip")
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class NonFiniteActivationError(ValueError):
    """A hook produced NaN or inf."""


@dataclass
class _Unit:
    """A piece of the corpus run as one sequence: a sentence, or a window of a long sentence."""

    tokens: TokenizedSentence
    first_word: int  # global row of its first word


def _windows(adapter: ModelAdapter, words: list[str], tokens: TokenizedSentence, first_word: int) -> list[_Unit]:
    """Split an over-long sentence into consecutive word windows that each fit the context."""
    counts = np.bincount(tokens.word_of_token[tokens.word_of_token >= 0], minlength=len(words))
    overhead = len(tokens) - int(counts.sum())
    budget = adapter.n_ctx - overhead
    if counts.max(initial=0) > budget:
        raise LongSentenceError(f"a single word has {counts.max()} tokens, more than fits in {adapter.n_ctx}")
    cuts, total, start = [], 0, 0
    for j, c in enumerate(counts):
        if total + c > budget:
            cuts.append((start, j))
            start, total = j, 0
        total += c
    cuts.append((start, len(words)))
    pieces = adapter.tokenize_sentences([words[a:b] for a, b in cuts])
    units = []
    for (a, _), piece in zip(cuts, pieces):
        if len(piece) > adapter.n_ctx:  # tokenization is context-dependent; never truncate
            raise LongSentenceError(f"window of {len(piece)} tokens still exceeds the context of {adapter.n_ctx}")
        units.append(_Unit(piece, first_word + a))
    return units


def _plan(adapter: ModelAdapter, corpus: Corpus, long_sentences: str) -> tuple[list[_Unit], list[int]]:
    """Tokenize the corpus into runnable units; returns them and the indices of skipped sentences."""
    tokenized, too_long = adapter.tokenize_checked(corpus.sentences, long_sentences)
    long = set(too_long)
    units: list[_Unit] = []
    skipped: list[int] = []
    first = 0
    for index, (sent, tok) in enumerate(zip(corpus.sentences, tokenized)):
        if index not in long:
            units.append(_Unit(tok, first))
        elif long_sentences == "window":
            units += _windows(adapter, sent.words, tok, first)
        else:
            skipped.append(index)
        first += len(sent.words)
    return units, skipped


def _batches(units: list[_Unit], batch_size: int, max_tokens: int) -> list[list[_Unit]]:
    """Length-bucketed batches: sorted by length, capped in sentences and in padded tokens."""
    order = sorted(units, key=lambda u: len(u.tokens))
    batches, cur = [], []
    for u in order:
        if cur and (len(cur) >= batch_size or len(u.tokens) * (len(cur) + 1) > max_tokens):
            batches.append(cur)
            cur = []
        cur.append(u)
    if cur:
        batches.append(cur)
    return batches


def _raise_non_finite(captured, plan, reducer, corpus: Corpus, sentence_ids: np.ndarray) -> None:
    """Name the hook, neuron, word and sentence of the first NaN/inf activation in a batch."""
    for j, vals in captured.items():
        bad = ~torch.isfinite(vals)
        if bool(bad.any()):
            r, c = (int(x) for x in torch.nonzero(bad)[0])
            row = int(reducer.rows[r])
            raise NonFiniteActivationError(
                f"non-finite activation ({float(vals[r, c])}) at hook {hook_name(*plan[j])} neuron {c} for word "
                f"{row} ({corpus.words[row]!r}) of sentence {corpus.sentences[sentence_ids[row]].id!r}")


class _Reducer:
    """Per batch: where each word's sub-tokens sit in the flattened [batch * pos] activations."""

    def __init__(self, batch: Batch, units: list[_Unit], aggregation: str):
        device = batch.input_ids.device
        b, p = batch.input_ids.shape
        offsets = torch.as_tensor([u.first_word for u in units], device=device)
        local = batch.word_of_token
        valid = local >= 0
        flat_tok = torch.nonzero(valid.flatten()).squeeze(1)
        rows = (local + offsets[:, None])[valid]  # global word row per valid token, in flat order
        self.rows, inverse = torch.unique(rows, return_inverse=True)
        self.aggregation = aggregation
        n = len(self.rows)
        if aggregation == "mean":
            self.flat_tok, self.inverse = flat_tok, inverse
            self.counts = torch.zeros(n, device=device).index_add_(0, inverse, torch.ones_like(inverse, dtype=torch.float))
        else:
            pick = torch.full((n,), -1 if aggregation == "last" else b * p, device=device, dtype=torch.long)
            reduce = "amax" if aggregation == "last" else "amin"
            self.index = pick.scatter_reduce(0, inverse, flat_tok, reduce=reduce, include_self=True)

    def __call__(self, act: torch.Tensor) -> torch.Tensor:
        """The words' rows of one hook's activation, on the device where that hook's layer lives."""
        flat = rearrange(act, "b p ... -> (b p) (...)")
        if self.aggregation == "mean":
            inverse, flat_tok, counts = self._on(flat.device, "inverse", "flat_tok", "counts")
            out = torch.zeros(len(self.rows), flat.shape[1], device=flat.device, dtype=torch.float32)
            out.index_add_(0, inverse, flat[flat_tok].float())
            return out / counts[:, None]
        return flat[self._on(flat.device, "index")[0]]

    def _on(self, device: torch.device, *names: str) -> list[torch.Tensor]:
        """The named index tensors on ``device`` (copied once per device: a model split over several devices)."""
        if device == self.rows.device:
            return [getattr(self, n) for n in names]
        cache = self.__dict__.setdefault("_copies", {})
        return [cache.setdefault((n, device), getattr(self, n).to(device)) for n in names]


@dataclass
class _Job:
    """One extraction: the model, what to read (``plan``: (site, layer) in column order) and the units to run."""

    adapter: ModelAdapter
    corpus: Corpus
    plan: list[tuple[str, int]]
    units: list[_Unit]
    skipped: list[int]
    aggregation: str
    dtype: torch.dtype
    batch_size: int
    max_tokens: int

    @property
    def columns(self) -> np.ndarray:
        return np.cumsum([0] + [self.adapter.site_width(s, layer) for s, layer in self.plan])

    def run_batch(self, batch_units: list[_Unit]) -> "tuple[_Reducer, dict[int, torch.Tensor]]":
        """Run one batch; returns where its words go and each read hook's rows (``{plan index: [words, width]}``).

        A dictionary site's units are encoded token by token from its hook's activation, then reduced to words
        like neurons; sites that read the same hook point share one read."""
        batch = self.adapter.collate([u.tokens for u in batch_units])
        reducer = _Reducer(batch, batch_units, self.aggregation)
        by_hook: dict[str, list[int]] = {}
        for j, (s, layer) in enumerate(self.plan):
            by_hook.setdefault(hook_name(s, layer), []).append(j)
        encoders = {j: registered(s, layer).encode for j, (s, layer) in enumerate(self.plan) if is_unit_site(s)}

        def reader(plan_idx: list[int]):
            def read(act: torch.Tensor) -> torch.Tensor:
                return torch.cat([reducer(encoders[j](act) if j in encoders else act) for j in plan_idx], dim=1)
            return read

        got = run_capture(self.adapter, batch, {name: reader(idx) for name, idx in by_hook.items()})
        out: dict[int, torch.Tensor] = {}
        width = np.diff(self.columns)
        for name, idx in by_hook.items():
            parts = torch.split(got[name], [int(width[j]) for j in idx], dim=1)
            out.update(zip(idx, parts))
        return reducer, out

    def write(self, reducer: "_Reducer", captured: "dict[int, torch.Tensor]", dest: torch.Tensor, row_lo: int) -> None:
        """Check a batch's rows for NaN/inf and write them into ``dest`` (rows from ``row_lo``)."""
        with torch.inference_mode():  # thread-local: the writer thread enters it too
            first = next(iter(captured.values())).device  # hooks may sit on several devices (a split model)
            total = torch.stack([v.float().sum().to(first) for v in captured.values()]).sum()
            if not bool(torch.isfinite(total)):  # one host sync per batch
                _raise_non_finite(captured, self.plan, reducer, self.corpus, self.corpus.sentence_ids)
            rows = reducer.rows.cpu() - row_lo
            col = self.columns
            for j, vals in captured.items():  # one strided write per hook: cheaper than a concatenated copy first
                dest[:, int(col[j]):int(col[j + 1])].index_copy_(0, rows, vals.to("cpu", self.dtype))

    def units_by_shard(self, shards: "list[Shard]") -> dict[int, list[_Unit]]:
        """The units of each shard (a window of a long sentence goes with its sentence), in corpus order."""
        bounds = np.asarray([s.sentence_hi for s in shards], dtype=np.int64)
        starts = np.asarray([u.first_word for u in self.units], dtype=np.int64)
        sentences = self.corpus.sentence_ids[np.minimum(starts, self.corpus.n_words - 1)]
        which = np.searchsorted(bounds, sentences, side="right")
        out: dict[int, list[_Unit]] = {s.index: [] for s in shards}
        for u, j in zip(self.units, which.tolist()):
            out[shards[j].index].append(u)
        return out

    def run(self, shards: "list[Shard]", block_dest, block_done, progress: bool, all_shards=None) -> None:
        """Run ``shards`` (blocks of consecutive sentences: bounded RAM when streaming), length-bucketed batches
        within a shard, so a shard's rows never depend on which other shards run or where.
        ``block_dest(shard)`` gives the rows to fill; ``block_done(shard, dest)`` takes them."""
        units = self.units_by_shard(all_shards or shards)
        skipped_rows = torch.as_tensor(np.flatnonzero(np.isin(self.corpus.sentence_ids, self.skipped)))
        with tqdm(total=sum(len(u.tokens) for s in shards for u in units[s.index]), unit="tok",
                  disable=not progress, desc="extract") as bar, torch.inference_mode(), _Writer(spare_core()) as writer:
            for shard in shards:
                row_lo, row_hi = shard.row_lo, shard.row_hi
                dest = block_dest(shard)
                dest[skipped_rows[(skipped_rows >= row_lo) & (skipped_rows < row_hi)] - row_lo] = 0
                for batch_units in _batches(units[shard.index], self.batch_size, self.max_tokens):
                    writer.submit(self.write, *self.run_batch(batch_units), dest, row_lo)
                    bar.update(sum(len(u.tokens) for u in batch_units))  # host-side: no sync
                writer.wait()
                block_done(shard, dest)


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def spare_core() -> bool:
    """Whether torch's intra-op threads leave a CPU core of this process free."""
    return torch.get_num_threads() < _usable_cores()


class _Writer:
    """Writes a batch's rows (NaN check, then the copy into the word matrix, which first maps its pages) on a
    second thread while the next batch's forward pass runs when ``background`` (:func:`spare_core`: torch leaves a
    core free); otherwise in the calling thread, because a third thread on busy cores slows torch's own threads
    more than it saves (measured on 2 cores: docs/foundation.md). One batch in flight, so at most one batch of rows
    waits in memory; an error raised there (NaN) is raised again by the next :meth:`submit` or :meth:`wait`."""

    def __init__(self, background: bool):
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="tnp-write") if background else None
        self.pending: "Future | None" = None

    def submit(self, fn, *args) -> None:
        self.wait()
        if self.pool is None:
            fn(*args)
        else:
            self.pending = self.pool.submit(fn, *args)

    def wait(self) -> None:
        """Until the last submitted write is done; raises its error."""
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.result()

    def __enter__(self) -> "_Writer":
        return self

    def __exit__(self, *exc) -> None:
        try:
            if exc[0] is None:
                self.wait()
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=True)


def _empty(rows: int, cols: int, dtype: torch.dtype) -> torch.Tensor:
    """An uninitialized matrix of plain pages. (Not numpy's huge pages any more: the kernel zeroes each 2 MB one at
    its first touch, which cost 0.3-0.6 s for a 347 MB matrix here against about 0.1 s for plain pages.)"""
    return torch.empty(rows, cols, dtype=dtype)


def _checked_dtype(dtype: str, corpus: Corpus) -> torch.dtype:
    """The torch dtype named by a (validated) config; an empty corpus is an error."""
    if len(corpus) == 0:
        raise ValueError("the corpus is empty")
    return _DTYPES[dtype]


def _read_plan(adapter: ModelAdapter, sites: list[str], layers) -> tuple[list[tuple[str, int]], list[Neuron]]:
    """(site, layer) pairs in column order, and the neurons of the columns."""
    plan: list[tuple[str, int]] = []
    for s in sites:
        check_site(s)
        plan += [(s, layer) for layer in adapter.check_layers(s, layers)]
    return plan, [Neuron(layer, i, s) for s, layer in plan for i in range(adapter.site_width(s, layer))]


def _fingerprint(job: _Job, neurons: list[Neuron], sentences_per_block: int, long_sentences: str) -> dict:
    """What makes two runs write the same rows: a staging folder is resumed only under the same fingerprint. The
    model counts by its class and weights, not by its name (a local path may differ between runs and ranks)."""
    corpus = job.corpus
    return dict(model=type(job.adapter.model).__name__, weights=model_digest(job.adapter.model),
                plan=[list(p) for p in job.plan], aggregation=job.aggregation, dtype=str(job.dtype),
                long_sentences=long_sentences, batch_size=job.batch_size, max_tokens=job.max_tokens,
                sentences_per_block=sentences_per_block, corpus=corpus_digest(corpus.words, corpus.sentence_ids),
                rows=corpus.n_words, cols=len(neurons), dictionaries=_dictionaries(job.plan, digest=True))


def _dictionaries(plan: list[tuple[str, int]], digest: bool = False) -> dict:
    """What the dictionary sites of ``plan`` read: ``{"sae@L3": {hook, units, name, path}}`` (with ``digest``, a
    hash of the weights too, so a resumed extraction never mixes two dictionaries)."""
    import hashlib

    out = {}
    for s, layer in plan:
        if is_unit_site(s):
            d = registered(s, layer)
            info = dict(hook=d.hook, units=d.n_units, kind=d.kind, activation=d.activation, name=d.name,
                        path=d.meta.get("path"))
            if digest:
                h = hashlib.sha256()
                for t in (d.W_enc, d.b_enc, d.W_dec, d.b_dec):
                    h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
                info["digest"] = h.hexdigest()[:16]
            out[f"{s}@L{layer}"] = info
    return out


def _same_on_every_rank(fingerprint: dict) -> None:
    """Every rank must extract the same thing (same model weights, corpus and settings)."""
    others = distributed.gather(fingerprint)
    if any(f != fingerprint for f in others):
        diff = sorted({k for f in others for k in f if f[k] != fingerprint.get(k)})
        raise ValueError(f"the ranks disagree on {diff}: every rank must load the same model and corpus "
                         "and pass the same extraction settings")


def _completed(store: ShardStore, shards: list[Shard]) -> set[int]:
    """Shards whose record and bytes check out; each rank verifies its share of the recorded ones."""
    recorded = [s for s in shards if store.record_path(s.index).exists()]
    mine = [s.index for s in distributed.my_share(recorded) if store.is_done(s)]
    return {i for part in distributed.gather(mine) for i in part}


def _announce(message: str, progress: bool) -> None:
    logger.info(message)
    if progress and distributed.is_main():
        tqdm.write(message)


def _warn_idle_ranks(n_blocks: int, block: int) -> None:
    """A warning naming the ranks that get no block to run (more ranks than blocks)."""
    idle = distributed.idle_ranks(n_blocks)
    if idle and distributed.is_main():
        warnings.warn(f"extract: rank{'s' * (len(idle) > 1)} {', '.join(map(str, idle))} of "
                      f"{distributed.world_size()} get no block to run ({n_blocks} blocks of {block} sentences to "
                      "run): they only wait; pass a smaller sentences_per_block or launch fewer ranks", stacklevel=3)


def _block(job: _Job, cols: int, sentences_per_block: "int | None") -> int:
    """Sentences per block: as given, or :func:`._shards.block_size` for this corpus, its ranks and the bytes of
    an average sentence's rows (``cols`` values each)."""
    if sentences_per_block is not None:
        return sentences_per_block
    itemsize = torch.empty((), dtype=job.dtype).element_size()
    sentence_bytes = math.ceil(job.corpus.n_words / max(1, len(job.corpus))) * cols * itemsize
    return block_size(len(job.corpus), distributed.world_size(), sentence_bytes=sentence_bytes)


def _sparse_storage(storage: str, plan: list[tuple[str, int]]) -> bool:
    """Whether streamed rows are stored sparse: asked for, or (``"auto"``) every site read is a dictionary whose
    latents are mostly zero."""
    if storage != "auto":
        return storage == "sparse"
    return all(is_unit_site(s) and registered(s, layer).activation in ("relu", "jumprelu", "topk") for s, layer in plan)


def _stream(job: _Job, out_dir: Path, neurons: list[Neuron], meta: dict, sentences_per_block: "int | None",
            progress: bool, storage: str = "dense") -> Activations:
    """Run ``job`` shard by shard into the staging folder of ``out_dir`` (see :mod:`._shards`), the shards split
    over the ranks; rank 0 then writes the manifest and meta and renames the folder to ``out_dir``. A failure
    leaves the staging folder, and the next run with the same fingerprint resumes from its completed shards.
    Sparse rows (:func:`_sparse_storage`) are written per shard and joined at the end; with ``storage="auto"``
    they are joined dense when more than :data:`.activations.SPARSE_DENSITY` of the values are non-zero."""
    sparse = _sparse_storage(storage, job.plan)
    max_density = SPARSE_DENSITY if storage == "auto" else 1.0
    distributed.setup()
    corpus, world, me = job.corpus, distributed.world_size(), distributed.rank()
    staging = staging_path(out_dir)
    block = _block(job, len(neurons), sentences_per_block)
    fingerprint = dict(_fingerprint(job, neurons, block, meta["long_sentences"]), storage="sparse" if sparse else "dense")
    if sentences_per_block is None:  # the default: a resumed run keeps the first run's blocks, whatever its ranks
        recorded = resumable_block(staging, fingerprint) if distributed.is_main() else None
        block = fingerprint["sentences_per_block"] = distributed.broadcast(recorded or block)
    shards = plan_shards(corpus.sentence_ids, len(corpus), block)
    _same_on_every_rank(fingerprint)
    if distributed.is_main():
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        state = prepare_staging(staging, fingerprint, corpus.n_words, len(neurons), job.dtype, sparse)
        if state == "replaced":
            _announce(f"extract: {staging} held a partial extraction with other settings; starting afresh",
                      progress)
    distributed.barrier()
    store = (SparseShardStore if sparse else ShardStore)(staging, len(neurons), job.dtype)
    try:
        done = _completed(store, shards)
        todo = [s for s in shards if s.index not in done]
        _announce(f"extract: {len(done)} of {len(shards)} shards resumed from {staging}, {len(todo)} to run on "
                  f"{world} rank{'s' * (world > 1)}", progress and (len(done) > 0 or world > 1))
        _warn_idle_ranks(len(todo), block)
        job.run(distributed.my_share(todo), lambda s: _empty(s.row_hi - s.row_lo, len(neurons), job.dtype),
                lambda s, dest: store.write(s, dest, me), progress and distributed.is_main(), all_shards=shards)
    finally:
        store.close()
    distributed.barrier()  # every rank's shards are on disk with their records
    if distributed.is_main():
        records = read_records(staging)
        write_manifest(staging, shards, records, fingerprint, world, len(done), job.adapter.name)
        if sparse:
            join_sparse(staging, shards, records, len(neurons), job.dtype, max_density=max_density)
        _finish(staging, out_dir, corpus, neurons, meta)
    distributed.barrier()
    return Activations.load(out_dir)


def _finish(staging: Path, out_dir: Path, corpus: Corpus, neurons: list[Neuron], meta: dict) -> None:
    """Rank 0's last step: meta.json beside the rows, then the staging folder renamed to ``out_dir``."""
    write_meta(staging / META_FILE, neurons=[[n.site, n.layer, n.index] for n in neurons], words=corpus.words,
               sentence_ids=corpus.sentence_ids.tolist(), attributes=corpus.attributes(), meta=meta)
    _commit_dir(staging, out_dir)


@dataclasses.dataclass(frozen=True)
class ExtractConfig(Config):
    """What :func:`extract` reads and how: the same config gives the same rows.

    Parameters
    ----------
    site : str or tuple of str
        Hook site(s) read, e.g. ``"mlp.post"``, ``("mlp.post", "resid.post")``.
    layers : int, tuple of int or None
        Layers read at every site; None reads all layers.
    aggregation : {"first", "last", "mean"}
        How a word's sub-token activations become one row.
    dtype : {"float32", "float16", "bfloat16"}
        Storage dtype of the rows (a ``torch.dtype`` is accepted and stored by name).
    batch_size : int
        At most this many sentences per forward pass.
    max_tokens : int
        At most this many padded tokens per forward pass.
    sentences_per_block : int or None
        Sentences per shard: the unit of work split over ``torchrun`` ranks, resumed after a failure and held in
        RAM at once; None picks it from the corpus size and the number of ranks (at most 2048 sentences and
        about 2 GiB of rows).
    long_sentences : {"error", "window", "skip"}
        What to do with a sentence longer than the model's context.
    storage : {"auto", "dense", "sparse"}
        How rows streamed to ``out_dir`` are stored: ``"sparse"`` keeps only the non-zero values (compressed sparse
        rows, written per shard and joined at the end), ``"auto"`` (default) does so when every site read is a
        dictionary whose latents are mostly zero (ReLU, JumpReLU or TopK), ``"dense"`` never. Rows held in RAM are
        always dense; ``Activations.save`` chooses again from their share of zeros.

    Examples
    --------
    >>> from tl_neuronprobe.data.extraction import ExtractConfig
    >>> config = ExtractConfig(layers=[0, 1], aggregation="mean")
    >>> config.layers, config.to_dict()["dtype"]
    ((0, 1), 'float32')
    """

    site: "str | tuple[str, ...]" = "mlp.post"
    layers: "int | tuple[int, ...] | None" = None
    aggregation: str = "last"
    dtype: str = "float32"
    batch_size: int = 64
    max_tokens: int = 8192
    sentences_per_block: "int | None" = None
    long_sentences: str = "error"
    storage: str = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.dtype, torch.dtype):  # stored by name, so the config is JSON
            names = {v: k for k, v in _DTYPES.items()}
            if self.dtype not in names:
                raise ValueError(f"dtype must be one of {list(_DTYPES)}, got {self.dtype}")
            object.__setattr__(self, "dtype", names[self.dtype])
        super().__post_init__()

    def validate(self) -> None:
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {self.aggregation!r}")
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {list(_DTYPES)}, got {self.dtype!r}")
        if self.long_sentences not in LONG_SENTENCES:
            raise ValueError(f"long_sentences must be one of {LONG_SENTENCES}, got {self.long_sentences!r}")
        if self.storage not in STORAGES:
            raise ValueError(f"storage must be one of {STORAGES}, got {self.storage!r}")
        for name in ("batch_size", "max_tokens"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.sentences_per_block is not None and int(self.sentences_per_block) < 1:
            raise ValueError(f"sentences_per_block must be at least 1, got {self.sentences_per_block}")
        if not self.site or (not isinstance(self.site, str) and not all(isinstance(s, str) for s in self.site)):
            raise ValueError(f"site must be a site name or a tuple of them, got {self.site!r}")

    @property
    def sites(self) -> list[str]:
        """The sites read, as a list."""
        return [self.site] if isinstance(self.site, str) else list(self.site)


def extract(
    model,
    corpus: Corpus,
    config: "ExtractConfig | None" = None,
    *,
    out_dir: "str | Path | None" = None,
    device: "str | torch.device | None" = None,
    progress: bool = True,
) -> Activations:
    """Word-aligned activations of ``config.site`` at ``config.layers`` for every word of ``corpus``.

    Parameters
    ----------
    model : HookedTransformer, TransformerBridge or ModelAdapter
        The model (e.g. from :func:`tl_neuronprobe.models.load`).
    corpus : Corpus
        The sentences; one row per word.
    config : ExtractConfig, optional
        Site, layers, sub-token aggregation, dtype, batching, shards and long sentences (default
        ``ExtractConfig()``: every layer's ``mlp.post``, last sub-token, float32).
    out_dir : str or Path, optional
        Stream the rows to this folder block by block (bounded RAM) and return them memory-mapped from it (sparse
        rows, ``config.storage``: read back dense, or a ``MemoryError`` saying how to read a folder too large for
        that); the folder appears only when extraction completes.
    device : str or torch.device, optional
        Move the model there first.
    progress : bool
        Show a progress bar.

    Returns
    -------
    Activations
        ``[n_words, n_neurons]`` with the neurons, words, sentence ids and the corpus's attributes.

    Notes
    -----
    ``aggregation`` reduces a word's sub-tokens (``first``, ``last``, ``mean``). Sentences longer than the
    model's context raise :class:`LongSentenceError` unless ``long_sentences`` is ``'window'`` (consecutive
    word windows) or ``'skip'`` (a warning counts them; their rows stay zero, listed in
    ``meta['skipped_sentences']`` (names) and ``meta['skipped_sentence_index']`` (values of ``sentence_ids``), and
    ``dataset()`` leaves them out).

    Under ``torchrun`` the blocks of ``sentences_per_block`` sentences (shards) are split over the ranks: with
    ``out_dir`` each writes its rows into one shared file, without it the rows are gathered on every rank; they
    come out in corpus order, bit-identical to one process run with the same ``sentences_per_block``. By default
    (None) the block size comes from the corpus and the number of ranks (:func:`._shards.block_size`: at most
    2048 sentences, the same number of blocks on every rank), and a warning names any rank left without a
    block. An interrupted run leaves ``.{out_dir name}.partial`` beside ``out_dir``; running the same extraction
    again resumes from its completed shards, with the first run's block size (see docs/scaling.md).

    Examples
    --------
    >>> import tl_neuronprobe as tnp
    >>> from tl_neuronprobe.data.extraction import ExtractConfig
    >>> model = tnp.models.load("planted")
    >>> acts = tnp.extract(model, tnp.Corpus.load("synthetic:40"), ExtractConfig(layers=[1]), progress=False)
    >>> acts.layers, acts.n_words == tnp.Corpus.load("synthetic:40").n_words
    ([1], True)
    """
    config = ExtractConfig() if config is None else config
    if not isinstance(config, ExtractConfig):
        raise TypeError(f"config must be an ExtractConfig, got {type(config).__name__}")
    adapter = ModelAdapter.wrap(model)
    dtype = _checked_dtype(config.dtype, corpus)
    if device is not None:
        adapter.model.to(device)
    sites, long_sentences = config.sites, config.long_sentences
    plan, neurons = _read_plan(adapter, sites, config.layers)
    units, skipped = _plan(adapter, corpus, long_sentences)
    meta = dict(model=adapter.name, sites=sites, aggregation=config.aggregation, long_sentences=long_sentences,
                skipped_sentences=[corpus.sentences[i].id for i in skipped], skipped_sentence_index=skipped)
    if any(is_unit_site(s) for s in sites):
        meta["dictionaries"] = _dictionaries(plan)
    if skipped:
        warnings.warn(f"extract: {len(skipped)} sentences longer than the context of {adapter.n_ctx} tokens skipped "
                      f"({sum(len(corpus.sentences[i].words) for i in skipped)} words, first "
                      f"{[corpus.sentences[i].id for i in skipped[:3]]}): their rows are zero and dataset() leaves "
                      "them out; long_sentences='window' keeps them", stacklevel=2)
    job = _Job(adapter, corpus, plan, units, skipped, config.aggregation, dtype, config.batch_size, config.max_tokens)
    if out_dir is not None:
        return _stream(job, Path(out_dir), neurons, meta, config.sentences_per_block, progress, config.storage)
    return Activations(_in_memory(job, len(neurons), config.sentences_per_block, progress), neurons, corpus.words,
                       corpus.sentence_ids, corpus.attributes(), meta)


def _in_memory(job: _Job, cols: int, sentences_per_block: "int | None", progress: bool) -> torch.Tensor:
    """The whole matrix in RAM. Under ``torchrun`` each rank runs its share of the shards and the rows are then
    gathered, so every rank ends with the whole matrix (briefly about twice its size while gathering)."""
    distributed.setup()
    X = _empty(job.corpus.n_words, cols, job.dtype)  # every row is written (skipped rows zeroed)
    block = _block(job, cols, sentences_per_block)
    shards = plan_shards(job.corpus.sentence_ids, len(job.corpus), block)
    _warn_idle_ranks(len(shards), block)
    mine = distributed.my_share(shards)
    job.run(mine, lambda s: X[s.row_lo:s.row_hi], lambda s, dest: None, progress and distributed.is_main(),
            all_shards=shards)
    if distributed.world_size() > 1:
        parts = distributed.gather([(s.row_lo, X[s.row_lo:s.row_hi].clone()) for s in mine])
        for rank_, part in enumerate(parts):
            if rank_ != distributed.rank():
                for row_lo, rows in part:
                    X[row_lo:row_lo + len(rows)] = rows
    return X
