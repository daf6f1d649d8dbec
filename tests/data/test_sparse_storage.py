"""Sparse storage of mostly-zero rows (an SAE's latents): compressed sparse rows in the safetensors file, chosen by
the share of zeros (saving) or by the units read (streamed extraction), equal to dense storage value for value
through every reader (load, a subset of columns, row chunks and out-of-core rankers, several shards and a resume),
and much smaller on disk; dense rows (neurons) stay dense."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import tl_neuronprobe as tnp
from tl_neuronprobe.core import units
from tl_neuronprobe.data import _shards
from tl_neuronprobe.data._tensorfile import read_header
from tl_neuronprobe.data.activations import SPARSE_DENSITY
from tl_neuronprobe.data.chunks import ActivationChunks
from tl_neuronprobe.rankers import Probeless, fit_out_of_core
from tl_neuronprobe.testbeds.dictionary import planted_dictionary

BLOCK = 37


@pytest.fixture(scope="module")
def testbed():
    model = tnp.testing.planted_model()
    corpus = tnp.testing.planted_corpus(200, seed=3)
    relu = planted_dictionary(model)  # its random-rotation latents are on most of the time: dense
    topk = dataclasses.replace(relu, activation="topk", k=4)  # at most 4 of 64 latents per token
    return model, corpus, relu, topk


@pytest.fixture(scope="module")
def latents(testbed):
    model, corpus, _, topk = testbed
    with units.using(topk):
        return tnp.extract(model, corpus, tnp.ExtractConfig(site="sae", layers=(1,), sentences_per_block=BLOCK),
                           progress=False)


def stored(path) -> str:
    header, _ = read_header(path / "activations.safetensors")
    return "sparse" if (header.get("__metadata__") or {}).get("format") == "csr" else "dense"


def size(path) -> int:
    return (path / "activations.safetensors").stat().st_size


def test_save_picks_sparse_rows_by_their_zeros_and_loads_them_back_exactly(latents, testbed, tmp_path):
    model, corpus, _, _ = testbed
    assert 0 < latents.density <= 4 / 64 + 1e-9
    latents.save(tmp_path / "auto")
    latents.save(tmp_path / "dense", storage="dense")
    assert stored(tmp_path / "auto") == "sparse" and stored(tmp_path / "dense") == "dense"
    assert size(tmp_path / "auto") < 0.2 * size(tmp_path / "dense")
    back = tnp.Activations.load(tmp_path / "auto")
    assert torch.equal(back.X, latents.X) and back.neurons == latents.neurons and back.words == latents.words
    neurons = tnp.extract(model, corpus[:50], tnp.ExtractConfig(layers=(1,)), progress=False)
    assert neurons.density > SPARSE_DENSITY  # GELU activations: never sparse
    neurons.save(tmp_path / "neurons")
    assert stored(tmp_path / "neurons") == "dense"
    neurons.save(tmp_path / "forced", storage="sparse")
    assert stored(tmp_path / "forced") == "sparse"
    assert torch.equal(tnp.Activations.load(tmp_path / "forced").X, neurons.X)
    with pytest.raises(ValueError, match="storage must be one of"):
        latents.save(tmp_path / "bad", storage="csr")


def test_any_safetensors_reader_opens_the_sparse_file(latents, tmp_path):
    from scipy.sparse import csr_matrix

    latents.save(tmp_path / "a")
    t = load_file(tmp_path / "a" / "activations.safetensors")
    assert sorted(t) == ["X.indices", "X.indptr", "X.values"]
    m = csr_matrix((t["X.values"].numpy(), t["X.indices"].numpy(), t["X.indptr"].numpy()), shape=tuple(latents.X.shape))
    assert np.array_equal(m.toarray(), latents.X.numpy())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_sparse_rows(latents, tmp_path, dtype):
    half = tnp.Activations(latents.X.to(dtype), latents.neurons, latents.words, latents.sentence_ids,
                           latents.attributes)
    half.save(tmp_path / "h")
    assert stored(tmp_path / "h") == "sparse"
    assert torch.equal(tnp.Activations.load(tmp_path / "h").X, half.X)


def test_load_a_few_columns_of_sparse_or_dense_rows(latents, tmp_path):
    latents.save(tmp_path / "s")
    latents.save(tmp_path / "d", storage="dense")
    pick = ["L1.S7", "L1.S0", "L1.S63"]
    for folder in ("s", "d"):
        part = tnp.Activations.load(tmp_path / folder, neurons=pick)
        assert [str(n) for n in part.neurons] == pick
        assert torch.equal(part.X, latents.select(pick).X)
    with pytest.raises(KeyError, match="L1.S64"):
        tnp.Activations.load(tmp_path / "s", neurons=["L1.S64"])
    with pytest.raises(ValueError, match="twice"):
        tnp.Activations.load(tmp_path / "s", neurons=["L1.S1", "L1.S1"])


def test_row_chunks_and_out_of_core_rankers_read_sparse_rows(latents, tmp_path):
    latents.save(tmp_path / "s")
    latents.save(tmp_path / "d", storage="dense")
    sparse, dense = (ActivationChunks(tmp_path / f, "upos", chunk_rows=97) for f in ("s", "d"))
    for (p1, x1), (p2, x2) in zip(sparse, dense):
        assert np.array_equal(p1, p2) and np.array_equal(x1, x2)
    every_third = np.arange(0, len(dense), 3)
    for (_, x1), (_, x2) in zip(sparse.iter(every_third), dense.iter(every_third)):
        assert np.array_equal(x1, x2)
    a = fit_out_of_core(Probeless(), tmp_path / "s", "upos", chunk_rows=97)
    b = Probeless().fit(*latents.dataset("upos")[:2])
    assert np.array_equal(a.order_, b.order_) and np.allclose(a.scores_, b.scores_, atol=1e-6)


def test_streamed_latents_are_stored_sparse_and_equal_the_rows_in_ram(testbed, latents, tmp_path):
    model, corpus, relu, topk = testbed
    config = tnp.ExtractConfig(site="sae", layers=(1,), sentences_per_block=BLOCK)
    with units.using(topk):
        streamed = tnp.extract(model, corpus, config, out_dir=tmp_path / "s", progress=False)
        dense = tnp.extract(model, corpus, config.replace(storage="dense"), out_dir=tmp_path / "d", progress=False)
    assert torch.equal(streamed.X, latents.X) and torch.equal(dense.X, latents.X)
    assert stored(tmp_path / "s") == "sparse" and stored(tmp_path / "d") == "dense"
    assert size(tmp_path / "s") < 0.2 * size(tmp_path / "d")
    # the shards' own row files are joined and removed; their records stay
    assert sorted(p.suffix for p in (tmp_path / "s" / "shards").iterdir()) == [".json"] * 6
    assert json.loads((tmp_path / "s" / "manifest.json").read_text())["fingerprint"]["storage"] == "sparse"
    # a dictionary whose latents are mostly on: written per shard, joined dense ("auto"), sparse when asked
    with units.using(relu):
        auto = tnp.extract(model, corpus, config, out_dir=tmp_path / "r", progress=False)
        forced = tnp.extract(model, corpus, config.replace(storage="sparse"), out_dir=tmp_path / "f", progress=False)
        in_ram = tnp.extract(model, corpus, config, progress=False)
    assert auto.density > SPARSE_DENSITY and stored(tmp_path / "r") == "dense" and stored(tmp_path / "f") == "sparse"
    assert torch.equal(auto.X, in_ram.X) and torch.equal(forced.X, in_ram.X)
    # neurons stream dense by default
    tnp.extract(model, corpus[:40], tnp.ExtractConfig(layers=(1,)), out_dir=tmp_path / "n", progress=False)
    assert stored(tmp_path / "n") == "dense"
    with pytest.raises(ValueError, match="storage must be one of"):
        tnp.ExtractConfig(storage="csr")


def test_a_failed_sparse_extraction_resumes_from_its_checked_shards(testbed, latents, tmp_path, count_shard_writes):
    model, corpus, _, topk = testbed
    written, fail_after = count_shard_writes(_shards.SparseShardStore)
    fail_after[0] = 2
    out, staging = tmp_path / "acts", tmp_path / ".acts.partial"
    config = tnp.ExtractConfig(site="sae", layers=(1,), sentences_per_block=BLOCK)
    with units.using(topk):
        with pytest.raises(RuntimeError, match="simulated"):
            tnp.extract(model, corpus, config, out_dir=out, progress=False)
        with open(staging / "shards" / "shard-00001.safetensors", "r+b") as fh:  # a torn write in shard 1
            fh.seek(-8, 2)
            fh.write(b"\x7f" * 8)
        written.clear()
        fail_after[0] = None
        acts = tnp.extract(model, corpus, config, out_dir=out, progress=False)
    assert written == [1, 2, 3, 4, 5]
    assert json.loads((out / "manifest.json").read_text())["resumed_shards"] == 1
    assert torch.equal(acts.X, latents.X)


def test_sparse_rows_too_large_to_densify_say_how_to_read_them(latents, tmp_path, monkeypatch):
    from tl_neuronprobe.data import _tensorfile

    latents.save(tmp_path / "s")
    monkeypatch.setattr(_tensorfile, "available_memory", lambda: latents.X.nbytes)  # half of it is not enough
    with pytest.raises(MemoryError, match=r"read them in row chunks .*Activations.load\(path, neurons="):
        tnp.Activations.load(tmp_path / "s")
    few = tnp.Activations.load(tmp_path / "s", neurons=["L1.S3", "L1.S9"])  # a few columns still load
    assert torch.equal(few.X, latents.select(["L1.S3", "L1.S9"]).X)
    assert len(list(ActivationChunks(tmp_path / "s", "upos", chunk_rows=64))) > 1
