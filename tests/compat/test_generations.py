"""Both TransformerLens generations through the one adapter: same weights, same activations, same outputs."""

import importlib.metadata

import pytest
import torch

import tl_neuronprobe as tnp
from tl_neuronprobe.data.extraction import ExtractConfig

GENERATIONS = tnp.testing.available_generations()


def test_this_environment_has_a_supported_generation():
    major = int(importlib.metadata.version("transformer-lens").split(".")[0])
    assert GENERATIONS, "no TransformerLens model class importable"
    if major >= 4:
        assert GENERATIONS == ["bridge"]
    else:
        assert "hooked" in GENERATIONS


@pytest.mark.skipif(len(GENERATIONS) < 2, reason="needs HookedTransformer and TransformerBridge side by side")
def test_hooked_and_bridge_agree_on_the_planted_model():
    corpus = tnp.testing.planted_corpus(60, seed=4)
    hooked = tnp.testing.planted_model(generation="hooked")
    bridge = tnp.testing.planted_model(generation="bridge")
    for site in ("mlp.post", "resid.post", "attn.z"):
        a = tnp.extract(hooked, corpus, ExtractConfig(site=site), progress=False)
        b = tnp.extract(bridge, corpus, ExtractConfig(site=site), progress=False)
        torch.testing.assert_close(a.X, b.X, rtol=1e-4, atol=1e-4)
    ad_h, ad_b = tnp.ModelAdapter(hooked), tnp.ModelAdapter(bridge)
    batch = ad_h.collate(ad_h.tokenize_sentences([s.words for s in corpus[:8]]))
    torch.testing.assert_close(ad_h.forward(batch), ad_b.forward(batch), rtol=1e-4, atol=1e-4)


def test_tiny_model_of_each_generation_runs(generation):
    model = tnp.testing.tiny_model(generation=generation)
    ad = tnp.ModelAdapter(model)
    assert ad.generation == generation and not ad.is_encoder and ad.prepend_bos
    (tok,) = ad.tokenize_sentences([["the", "dog", "runs", "."]])
    assert tok.input_ids[0] == ad.tokenizer.bos_token_id and tok.word_of_token.tolist() == [-1, 0, 1, 2, 3]
