"""Discovered concepts: latent clusters named by annotations, and a pluggable descriptor generator."""

from __future__ import annotations

import numpy as np
import pytest

import tl_neuronprobe as tnp
from tl_neuronprobe.descriptions import (DescribeConfig, Search, build_concepts, describe, generated_concepts,
                                         latent_concepts)


def test_latent_clusters_of_planted_representations_are_named_by_their_tag():
    corpus = tnp.Corpus.synthetic(150, seed=5)
    upos = np.array(corpus.attribute("upos"), dtype=object)
    tags = sorted(set(upos))
    rng = np.random.default_rng(0)
    centres = 4 * rng.standard_normal((len(tags), 16))
    R = centres[[tags.index(u) for u in upos]] + 0.3 * rng.standard_normal((len(upos), 16))
    base = build_concepts(corpus.words, corpus.sentence_ids, corpus.attributes())
    found = latent_concepts(R, base, corpus.words, n_clusters=len(tags), seed=0)
    assert set(found.table["family"]) == {"discovered"}
    for tag in tags:
        truth = upos == tag
        best = max(((found.mask(j) & truth).sum() / (found.mask(j) | truth).sum()) for j in range(len(found)))
        assert best > 0.95, tag
    assert any(lbl.startswith("cluster ~NOUN") for lbl in found.table["label"])
    # control: clusters of random representations do not line up with the tags
    noise = latent_concepts(rng.standard_normal(R.shape), base, n_clusters=len(tags), seed=0)
    best_noise = max(((noise.mask(j) & (upos == "NOUN")).sum() / (noise.mask(j) | (upos == "NOUN")).sum())
                     for j in range(len(noise)))
    assert best_noise < 0.5
    # a discovered concept can describe a neuron
    X = np.stack([found.mask(0).astype(np.float32) + 0.05 * rng.standard_normal(len(upos))], 1)
    d = describe(tnp.Activations.from_array(X, corpus), corpus,
                 config=DescribeConfig(sources=["surface"], search=Search(max_length=1)), discovered=found)
    assert d.table["family"].iloc[0] == "discovered" or d.table["iou"].iloc[0] > 0.95


def test_generated_descriptors_are_merged_by_similarity():
    sentences = [["the", "dog", "runs"], ["a", "cat", "sleeps"]] * 5

    def generator(words):
        return [["animal"] if w in ("dog", "cat") else ["animals"] if w == "runs" else ["function word"]
                for w in words]

    c = generated_concepts(sentences, generator, min_support=3)
    assert len(c) == 2  # "animal" and "animals" merged
    merged = c.table.set_index("value").loc["animal"]
    assert merged["support"] == 15 and "similar" in merged["label"]


def test_a_local_causal_lm_plugs_in_as_the_generator():
    from tl_neuronprobe.descriptions import causal_lm_generator

    model = tnp.testing.tiny_model(n_layers=1, d_model=16, d_mlp=16)
    sentences = [["the", "dog", "runs", "."], ["a", "cat", "sleeps", "."]]
    gen = causal_lm_generator(model, template="{sentence} {word}", max_new_tokens=2)
    proposed = gen(sentences[0])
    assert len(proposed) == 4 and all(isinstance(p, list) for p in proposed)
    c = generated_concepts(sentences, gen, min_support=1)
    assert c.n_words == 8 and set(c.table["family"]) == {"discovered"}
    with pytest.raises(TypeError, match="TransformerLens"):
        causal_lm_generator(object())
