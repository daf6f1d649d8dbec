"""The row-chunk reader of saved activations: the rows of ``dataset(attribute)``, in bounded buffers, no mmap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.testing import assert_array_equal

from tl_neuronprobe.core.neurons import Neuron
from tl_neuronprobe.data.activations import Activations
from tl_neuronprobe.data.chunks import ActivationChunks, chunk_rows_for


def make_acts(n: int = 300, d: int = 12, dtype=torch.float32, seed: int = 0) -> Activations:
    rng = np.random.default_rng(seed)
    X = torch.from_numpy(rng.standard_normal((n, d)).astype(np.float32)).to(dtype)
    labels = [None if i % 5 == 0 else ("a" if i % 3 else "b") for i in range(n)]
    return Activations(X, [Neuron(1, i) for i in range(d)], [f"w{i}" for i in range(n)], np.arange(n) // 9,
                       {"tag": labels})


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("chunk_rows", [1, 7, 256, 1000])
def test_chunks_are_the_dataset_rows(tmp_path, dtype, chunk_rows):
    acts = make_acts(dtype=dtype)
    X, y, classes, idx = acts.dataset("tag", return_index=True)
    chunks = ActivationChunks(acts.save(tmp_path / "a"), "tag", chunk_rows=chunk_rows)
    assert_array_equal(chunks.rows, idx)
    assert_array_equal(chunks.y, y.numpy())
    assert chunks.classes == classes
    assert_array_equal(chunks.groups, acts.sentence_ids[idx])
    got = [(pos.copy(), Xc.copy()) for pos, Xc in chunks]
    assert all(len(p) <= chunk_rows for p, _ in got)
    assert_array_equal(np.concatenate([p for p, _ in got]), np.arange(len(idx)))
    assert_array_equal(np.concatenate([x for _, x in got]), X.numpy())
    assert_array_equal(np.concatenate([x.copy() for _, x in ActivationChunks(acts, "tag", chunk_rows=chunk_rows)]),
                       X.numpy())


def test_subsets_sparse_and_dense(tmp_path):
    acts = make_acts(n=2000)
    X, _, _ = acts.dataset("tag")
    chunks = ActivationChunks(acts.save(tmp_path / "a"), "tag", chunk_rows=64)
    for positions in (np.arange(0, len(X), 97), np.sort(np.random.default_rng(0).choice(len(X), 500, replace=False))):
        got = np.concatenate([x.copy() for _, x in chunks.iter(positions)])
        assert_array_equal(got, X.numpy()[positions])
    order = [3, 0, 2, 1]
    pos = np.concatenate([p for p, _ in chunks.iter(np.arange(256), order)])
    assert_array_equal(pos, np.concatenate([np.arange(64 * c, 64 * c + 64) for c in order]))


def test_column_blocks_and_sizes(tmp_path):
    acts = make_acts()
    X, _, _ = acts.dataset("tag")
    chunks = ActivationChunks(acts.save(tmp_path / "a"), "tag", chunk_bytes=4096)
    assert chunks.chunk_rows == chunk_rows_for(12, 4096) == 4096 // (12 * 8)
    assert chunks.buffer_bytes <= 4096
    assert chunk_rows_for(1000, 64 << 20) % 256 == 0
    blocks = [(c0, b.copy()) for c0, b in chunks.resized(5).column_blocks(len(X) * 4 * 5)]
    assert [c0 for c0, _ in blocks] == [0, 5, 10]
    assert_array_equal(np.concatenate([b for _, b in blocks], axis=1), X.numpy())
    with pytest.raises(ValueError, match="smaller than one row"):
        ActivationChunks(tmp_path / "a", "tag", chunk_bytes=64)
    with pytest.raises(ValueError, match="not both"):
        ActivationChunks(tmp_path / "a", "tag", chunk_bytes=4096, chunk_rows=3)
    with pytest.raises(FileNotFoundError):
        ActivationChunks(tmp_path / "nothing", "tag")


def test_the_file_is_never_mapped(tmp_path):
    path = make_acts(n=3000).save(tmp_path / "a")
    target = str((path / "activations.safetensors").resolve())
    for _ in ActivationChunks(path, "tag", chunk_rows=100):
        assert target not in Path("/proc/self/maps").read_text()


def test_in_memory_float64(tmp_path):
    acts = make_acts()
    acts.X = acts.X.double()
    X, _, _ = acts.dataset("tag")
    got = np.concatenate([x.copy() for _, x in ActivationChunks(acts, "tag", chunk_bytes=4096)])
    assert_array_equal(got, X.numpy())
