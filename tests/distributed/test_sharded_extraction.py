"""Streamed extraction in shards, in one process: equal to the in-memory matrix bit for bit, and a re-run after a
failure recomputes only the shards without a valid record (a missing record, or bytes whose crc32 is wrong)."""

import json

import pytest
import torch

import tl_neuronprobe as tnp
from tl_neuronprobe.data import _shards
from tl_neuronprobe.data.extraction import ExtractConfig

BLOCK = 16


@pytest.fixture(scope="module")
def tiny():
    return tnp.testing.tiny_model(n_layers=2, d_mlp=64, seed=0)


@pytest.fixture(scope="module")
def corpus():
    return tnp.Corpus.synthetic(120, seed=0)  # 8 shards of 16 sentences


@pytest.fixture(scope="module")
def in_memory(tiny, corpus):
    return tnp.extract(tiny, corpus, ExtractConfig(sentences_per_block=BLOCK), progress=False)


@pytest.fixture
def count_writes(count_shard_writes):
    """Count the shards written; ``fail_after[0] = n`` makes the (n+1)-th write raise."""
    return count_shard_writes(_shards.ShardStore)


def manifest(out):
    return json.loads((out / "manifest.json").read_text())


def test_streamed_shards_equal_in_memory_bit_for_bit(tiny, corpus, in_memory, tmp_path):
    out = tmp_path / "acts"
    acts = tnp.extract(tiny, corpus, ExtractConfig(sentences_per_block=BLOCK), out_dir=out, progress=False)
    assert torch.equal(acts.X, in_memory.X)
    m = manifest(out)
    assert m["world_size"] == 1 and m["resumed_shards"] == 0
    assert [s["index"] for s in m["shards"]] == list(range(8))
    assert m["shards"][-1]["rows"][1] == corpus.n_words
    assert sorted(p.name for p in (out / "shards").iterdir()) == [f"shard-{i:05d}.json" for i in range(8)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["acts"]


def test_rerun_after_a_failure_recomputes_only_the_missing_shards(tiny, corpus, in_memory, tmp_path, count_writes):
    written, fail_after = count_writes
    out = tmp_path / "acts"
    fail_after[0] = 2
    with pytest.raises(RuntimeError, match="simulated"):
        tnp.extract(tiny, corpus, ExtractConfig(sentences_per_block=BLOCK), out_dir=out, progress=False)
    assert not out.exists() and len(list((tmp_path / ".acts.partial" / "shards").iterdir())) == 2
    written.clear()
    fail_after[0] = None
    acts = tnp.extract(tiny, corpus, ExtractConfig(sentences_per_block=BLOCK), out_dir=out, progress=False)
    assert written == [2, 3, 4, 5, 6, 7]
    assert manifest(out)["resumed_shards"] == 2
    assert torch.equal(acts.X, in_memory.X)


def test_torn_shard_and_lost_record_are_recomputed(tiny, corpus, in_memory, tmp_path, count_writes):
    written, fail_after = count_writes
    out, staging = tmp_path / "acts", tmp_path / ".acts.partial"
    fail_after[0] = 5
    with pytest.raises(RuntimeError):
        tnp.extract(tiny, corpus, ExtractConfig(sentences_per_block=BLOCK), out_dir=out, progress=False)
    (staging / "shards" / "shard-00000.json").unlink()  # died after the rows, before the record
    record = json.loads((staging / "shards" / "shard-00003.json").read_text())
    with open(staging / "activations.safetensors", "r+b") as fh:  # a torn write inside shard 3
        header = int.from_bytes(fh.read(8), "little")
        fh.seek(8 + header + record["rows"][0] * 128 * 4 + 40)
        fh.write(b"\x7f" * 16)
    written.clear()
    fail_after[0] = None
    acts = tnp.extract(tiny, corpus, ExtractConfig(sentences_per_block=BLOCK), out_dir=out, progress=False)
    assert written == [0, 3, 5, 6, 7]
    assert manifest(out)["resumed_shards"] == 3
    assert torch.equal(acts.X, in_memory.X)


def test_other_settings_start_afresh(tiny, corpus, tmp_path, count_writes):
    written, fail_after = count_writes
    out = tmp_path / "acts"
    fail_after[0] = 3
    with pytest.raises(RuntimeError):
        tnp.extract(tiny, corpus, ExtractConfig(sentences_per_block=BLOCK), out_dir=out, progress=False)
    written.clear()
    fail_after[0] = None
    acts = tnp.extract(tiny, corpus, ExtractConfig(aggregation="first", sentences_per_block=BLOCK), out_dir=out,
                       progress=False)
    assert written == list(range(8)) and manifest(out)["resumed_shards"] == 0
    assert torch.equal(acts.X, tnp.extract(tiny, corpus, ExtractConfig(aggregation="first", sentences_per_block=BLOCK),
                                           progress=False).X)
