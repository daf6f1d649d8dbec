"""The default block size comes from the corpus and the number of ranks, so every rank of a small corpus gets
work; a rank left without a block is named in a warning; a run resumed with another number of ranks keeps the
first run's blocks. The ranks are simulated in one process (``distributed.rank`` / ``world_size`` patched): what
is tested is which shards each rank is handed, not the group (tests/distributed/test_two_ranks.py runs that)."""

from __future__ import annotations

import json
import math
import warnings

import pytest
import torch

import tl_neuronprobe as tnp
from tl_neuronprobe.core import distributed
from tl_neuronprobe.data import _shards, extraction
from tl_neuronprobe.data.extraction import ExtractConfig


@pytest.fixture(scope="module")
def tiny():
    return tnp.testing.tiny_model(n_layers=2, d_mlp=64, seed=0)


@pytest.fixture(scope="module")
def corpus():
    return tnp.Corpus.synthetic(300, seed=0)


def as_rank(monkeypatch, rank: int, world: int) -> None:
    monkeypatch.setattr(distributed, "rank", lambda: rank)
    monkeypatch.setattr(distributed, "world_size", lambda: world)


@pytest.mark.parametrize("n, world, block", [(300, 2, 150), (300, 1, 300), (5000, 1, 1667), (10000, 2, 1667),
                                             (3, 4, 1), (100, 16, 6), (1000, 7, 143)])
def test_block_size_gives_every_rank_work(n, world, block):
    assert _shards.block_size(n, world) == block
    n_blocks = math.ceil(n / block)
    assert block <= _shards.MAX_BLOCK and distributed.idle_ranks(n_blocks, world) == \
        list(range(n, world))  # idle only when there are fewer sentences than ranks
    if n >= world and n_blocks % world == 0:
        assert len({len(distributed.share(n_blocks, r, world)) for r in range(world)}) == 1  # balanced


def test_wide_rows_get_smaller_blocks():
    """The default block holds about 2 GiB of rows: a 7B model's every MLP layer in float16 (352,256 values of 2 B,
    24 words a sentence) gets 127-sentence blocks, not 2048 (34 GB); narrow rows keep the sentence cap."""
    wide = 24 * 352_256 * 2
    assert _shards.block_size(100_000, 1, sentence_bytes=wide) == _shards.BLOCK_BYTES // wide == 127
    assert _shards.block_size(100_000, 1, sentence_bytes=24 * 9216 * 4) == \
        _shards.block_size(100_000, 1) == 2041  # MiniLM, every layer in float32: the sentence cap holds
    assert _shards.block_size(300, 2, sentence_bytes=wide) == 75  # 2 blocks a rank, each under the cap
    assert _shards.block_size(100, 1, sentence_bytes=10 * _shards.BLOCK_BYTES) == 1  # one sentence at the least


def test_the_old_fixed_block_left_rank_1_idle():
    """Control: 2048-sentence blocks put a 300-sentence corpus in one block, which rank 0 alone runs."""
    assert distributed.idle_ranks(len(_shards.plan_shards(torch.arange(300).numpy(), 300, 2048)), 2) == [1]


def test_block_size_refuses_nonsense():
    with pytest.raises(ValueError, match="n_sentences, world_size and cap >= 1"):
        _shards.block_size(0, 2)


@pytest.mark.parametrize("out", [False, True])
def test_each_of_two_ranks_gets_a_block(tiny, corpus, monkeypatch, tmp_path, out):
    """300 sentences, world size 2, default block size: rank 0 and rank 1 are each handed one block of 150."""
    handed = {}
    monkeypatch.setattr(extraction._Job, "run", lambda self, shards, *a, **k: handed.__setitem__(me, shards))
    monkeypatch.setattr(extraction, "write_manifest", lambda *a, **k: None)  # the run is cut short on purpose
    monkeypatch.setattr(extraction, "_finish", lambda *a, **k: None)
    monkeypatch.setattr(extraction.Activations, "load", classmethod(lambda cls, path: None))
    for me in (0, 1):
        as_rank(monkeypatch, me, 2)
        tnp.extract(tiny, corpus, out_dir=tmp_path / "acts" if out else None, progress=False)  # rank 0 prepares
    assert [[(s.sentence_lo, s.sentence_hi) for s in handed[r]] for r in (0, 1)] == [[(0, 150)], [(150, 300)]]


def test_idle_rank_is_named_in_a_warning(tiny, monkeypatch):
    as_rank(monkeypatch, 0, 4)
    monkeypatch.setattr(extraction._Job, "run", lambda self, shards, *a, **k: None)
    with pytest.warns(UserWarning, match=r"rank 3 of 4 get no block to run \(3 blocks of 1 sentences"):
        tnp.extract(tiny, tnp.Corpus.synthetic(3, seed=0), progress=False)
    with warnings.catch_warnings():  # control: as many sentences as ranks, no warning
        warnings.simplefilter("error")
        tnp.extract(tiny, tnp.Corpus.synthetic(4, seed=0), progress=False)


def test_resume_with_another_number_of_ranks_keeps_the_first_blocks(tiny, corpus, monkeypatch, tmp_path):
    """A first run on 2 ranks (blocks of 150; here rank 0 alone, so rank 1's shard never gets written) is resumed
    by one process, whose own default would be one block of 300: it keeps the blocks of 150, resumes shard 0 and
    runs shard 1; the rows equal a one-process extraction."""
    out = tmp_path / "acts"
    as_rank(monkeypatch, 0, 2)
    with pytest.raises(RuntimeError, match=r"shards \[1\] have no record"):
        tnp.extract(tiny, corpus, out_dir=out, progress=False)
    staging = _shards.staging_path(out)
    assert json.loads((staging / _shards.FINGERPRINT_FILE).read_text())["sentences_per_block"] == 150
    monkeypatch.undo()
    acts = tnp.extract(tiny, corpus, out_dir=out, progress=False)
    manifest = json.loads((out / _shards.MANIFEST_FILE).read_text())
    assert manifest["fingerprint"]["sentences_per_block"] == 150 and manifest["resumed_shards"] == 1
    assert [s["rank"] for s in manifest["shards"]] == [0, 0] and len(manifest["shards"]) == 2
    assert torch.equal(acts.X, tnp.extract(tiny, corpus, ExtractConfig(sentences_per_block=150), progress=False).X)
    # one process's own default (one block of 300) batches the sentences differently: equal up to the last bits
    torch.testing.assert_close(acts.X, tnp.extract(tiny, corpus, progress=False).X, rtol=0, atol=1e-6)
    # control: a block size given explicitly is not replaced by the recorded one (that run starts afresh)
    other = tmp_path / "other"
    as_rank(monkeypatch, 0, 2)
    with pytest.raises(RuntimeError, match=r"shards \[1\] have no record"):
        tnp.extract(tiny, corpus, out_dir=other, progress=False)
    monkeypatch.undo()
    tnp.extract(tiny, corpus, ExtractConfig(sentences_per_block=300), out_dir=other, progress=False)
    manifest = json.loads((other / _shards.MANIFEST_FILE).read_text())
    assert manifest["fingerprint"]["sentences_per_block"] == 300 and manifest["resumed_shards"] == 0
