"""A small SAE trained in the tests on MiniLM's activations of the shipped slice (issue 24, part 4): seeded, it
reconstructs held-out words far better than its own untrained start, its latents stream to disk as sparse rows,
and its best latents for UPOS (ranked on held-out text) encode UPOS far better than random latents do."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tl_neuronprobe as tnp
from tl_neuronprobe.core import units
from tl_neuronprobe.data._tensorfile import read_header
from tl_neuronprobe.data.treebank import document_of
from tl_neuronprobe.workflows._units import SAE_TRAIN_FROM

pytestmark = pytest.mark.minilm
LAYER, N_UNITS, K = 3, 768, 16


def fvu(d: units.Dictionary, X: torch.Tensor) -> float:
    with torch.no_grad():
        err = X - d.decode(d.encode(X))
    return float((err ** 2).sum() / ((X - X.mean(0)) ** 2).sum())


@pytest.fixture(scope="module")
def data(minilm):
    full = tnp.Corpus.load("ud-english")
    docs = [document_of(s.id) for s in full.sentences]
    start = SAE_TRAIN_FROM
    while docs[start] == docs[start - 1]:  # the training text starts at a document boundary
        start += 1
    train, held = full.subset(range(start, start + 400)), full[:200]
    config = tnp.ExtractConfig(layers=(LAYER,), long_sentences="skip")
    X = tnp.extract(minilm, train, config, progress=False).X
    X_held = tnp.extract(minilm, held, config, progress=False).X
    d = units.train_sae(X, N_UNITS, f"blocks.{LAYER}.mlp.hook_post", k=K, max_steps=300, batch_size=512, lr=2e-3,
                        seed=0)
    return held, X, X_held, d


def test_the_sae_reconstructs_held_out_words_and_is_seeded(data):
    _, X, X_held, d = data
    untrained = units.train_sae(X, N_UNITS, f"blocks.{LAYER}.mlp.hook_post", k=K, max_steps=1, seed=0)
    trained, start = fvu(d, X_held), fvu(untrained, X_held)
    print(f"\nheld-out FVU: trained {trained:.3f}, untrained {start:.3f}")
    assert trained < 0.65 and trained < 0.7 * start, (trained, start)
    a = units.train_sae(X[:2000], 64, f"blocks.{LAYER}.mlp.hook_post", k=4, max_steps=20, seed=3)
    b = units.train_sae(X[:2000], 64, f"blocks.{LAYER}.mlp.hook_post", k=4, max_steps=20, seed=3)
    c = units.train_sae(X[:2000], 64, f"blocks.{LAYER}.mlp.hook_post", k=4, max_steps=20, seed=4)
    assert torch.equal(a.W_dec, b.W_dec) and not torch.equal(a.W_dec, c.W_dec)


def test_its_latents_stream_sparse_and_its_best_latents_encode_upos(minilm, data, tmp_path):
    held, _, _, d = data
    with units.using(d):
        latents = tnp.extract(minilm, held, tnp.ExtractConfig(site="sae", layers=(LAYER,), long_sentences="skip"),
                              out_dir=tmp_path / "latents", progress=False)
    header, _ = read_header(tmp_path / "latents" / "activations.safetensors")
    assert header["__metadata__"]["format"] == "csr" and latents.density <= K / N_UNITS
    enc = tnp.evaluate_encoded(latents, "upos", ["probeless"], tnp.EncodedConfig(ks=(20,), seed=0))
    t = enc.table[enc.table["k"] == 20].groupby("selection")["accuracy"].mean()
    print(f"\nUPOS accuracy of 20 latents: top {t['top']:.3f}, random {t['random']:.3f}, bottom {t['bottom']:.3f}")
    assert t["top"] > t["random"] + 0.1, t.to_dict()
