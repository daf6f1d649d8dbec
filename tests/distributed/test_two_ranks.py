"""A real 2-process gloo run (``torchrun --standalone --nproc_per_node 2``) of streamed extraction: the folder's
rows equal one process's bit for bit (and so do the in-memory rows gathered on each rank); a rank killed mid-run
leaves no counted shard, and a re-run resumes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import tl_neuronprobe as tnp
from tl_neuronprobe.data import _shards

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run_extract_2proc import BLOCK, corpus_and_model  # noqa: E402
from tl_neuronprobe.data.extraction import ExtractConfig  # noqa: E402

sys.path.remove(str(HERE))


def torchrun(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """``python -m torch.distributed.run --standalone --nproc_per_node 2 run_extract_2proc.py *args``, one thread
    per process, with this interpreter's import path (the package under test, editable or not)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(HERE / "run_extract_2proc.py"), *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def one_process():
    corpus, model = corpus_and_model()
    return model, corpus, tnp.extract(model, corpus, ExtractConfig(sentences_per_block=BLOCK), progress=False)


def test_two_ranks_equal_one_process(one_process, tmp_path):
    _, _, reference = one_process
    out = tmp_path / "acts"
    res = torchrun(str(out))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    acts = tnp.Activations.load(out)
    assert torch.equal(acts.X, reference.X)
    assert acts.words == reference.words and (acts.sentence_ids == reference.sentence_ids).all()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["world_size"] == 2 and manifest["resumed_shards"] == 0
    assert [s["index"] for s in manifest["shards"]] == list(range(8))
    assert [s["rank"] for s in manifest["shards"]] == [0] * 4 + [1] * 4  # contiguous shares
    assert sorted(p.name for p in (out / "shards").iterdir()) == [f"shard-{i:05d}.json" for i in range(8)]


def test_two_ranks_write_sparse_rows_that_rank_0_joins(one_process, tmp_path):
    _, _, reference = one_process
    out = tmp_path / "acts"
    res = torchrun(str(out), "sparse")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert torch.equal(tnp.Activations.load(out).X, reference.X)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["fingerprint"]["storage"] == "sparse" and [s["rank"] for s in manifest["shards"]] == [0] * 4 + [1] * 4
    assert sorted(p.name for p in (out / "shards").iterdir()) == [f"shard-{i:05d}.json" for i in range(8)]


def test_default_block_size_gives_both_ranks_work(tmp_path):
    """Issue 21: with the default block size (2048 sentences then), a small corpus was one shard that rank 0 ran
    alone. Now 120 sentences on 2 ranks are 2 blocks of 60, one per rank, equal to one process with that block."""
    out = tmp_path / "acts"
    res = torchrun(str(out), "default")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "get no block" not in res.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["fingerprint"]["sentences_per_block"] == 60
    assert [s["rank"] for s in manifest["shards"]] == [0, 1]
    corpus, model = corpus_and_model()
    assert torch.equal(tnp.Activations.load(out).X,
                       tnp.extract(model, corpus, ExtractConfig(sentences_per_block=60), progress=False).X)


def test_killed_rank_leaves_no_counted_shard_and_a_rerun_resumes(one_process, tmp_path, monkeypatch):
    model, corpus, reference = one_process
    out = tmp_path / "acts"
    res = torchrun(str(out), "1")  # rank 1 dies after one shard; torchrun then stops rank 0
    assert res.returncode != 0 and not out.exists()
    staging = tmp_path / ".acts.partial"
    recorded = sorted(int(p.stem.split("-")[1]) for p in (staging / "shards").iterdir())
    assert 4 in recorded and 5 not in recorded  # rank 1's first shard is there, its second is not
    written = []
    write = _shards.ShardStore.write
    monkeypatch.setattr(_shards.ShardStore, "write",
                        lambda self, shard, block, rank: (written.append(shard.index), write(self, shard, block, rank)))
    acts = tnp.extract(model, corpus, ExtractConfig(sentences_per_block=BLOCK), out_dir=out,
                       progress=False)  # one process now
    assert sorted(written) == [i for i in range(8) if i not in recorded]
    assert json.loads((out / "manifest.json").read_text())["resumed_shards"] == len(recorded)
    assert torch.equal(acts.X, reference.X)
