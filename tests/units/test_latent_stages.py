"""Every stage over a dictionary's latents, checked on the planted dictionary (issue 24, parts 3-4): latent 0 reads
the used Number neuron, latent 1 the unused one, latent 2 the "cabinet" trigger, latent 3 the NOUN neuron; the
rest are a random rotation of the other neurons. Controls: a random dictionary (the same construction on a random
basis) has no latent that does what the planted ones do."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

import tl_neuronprobe as tnp
from tl_neuronprobe.core import units
from tl_neuronprobe.core.adapter import ModelAdapter
from tl_neuronprobe.descriptions import DescribeConfig, Search
from tl_neuronprobe.evaluation.attribution import Verify
from tl_neuronprobe.interventions import Mean, Translate, Zero
from tl_neuronprobe.testbeds.dictionary import planted_dictionary, planted_transcoder, random_dictionary
from tl_neuronprobe.textualization import Gumbel

SAE = tnp.ExtractConfig(site="sae", layers=(1,))


@pytest.fixture(scope="module")
def testbed():
    model = tnp.testing.planted_model()
    corpus = tnp.testing.planted_corpus(200, seed=3)  # not the corpus the dictionary's biases were set on
    return model, corpus, planted_dictionary(model), random_dictionary(model)


@pytest.fixture(scope="module")
def latents(testbed):
    model, corpus, d, r = testbed
    with units.using(d):
        planted = tnp.extract(model, corpus, SAE, progress=False)
    with units.using(r):
        control = tnp.extract(model, corpus, SAE, progress=False)
    return planted, control


def test_extraction_encodes_each_token_then_reduces_to_words(testbed, latents):
    model, corpus, d, _ = testbed
    neurons = tnp.extract(model, corpus, tnp.ExtractConfig(layers=(1,)), progress=False)
    planted = latents[0]
    assert [str(n) for n in planted.neurons[:3]] == ["L1.S0", "L1.S1", "L1.S2"] and planted.n_neurons == 64
    assert planted.meta["dictionaries"]["sae@L1"]["hook"] == "blocks.1.mlp.hook_post"
    # last sub-token aggregation on a word-level tokenizer: the latents are the encoder of the neurons' rows
    assert torch.allclose(planted.X, d.encode(neurons.X), atol=1e-5)
    with units.using(d):  # neurons and latents of the same hook point in one pass
        both = tnp.extract(model, corpus[:30], tnp.ExtractConfig(site=("mlp.post", "sae"), layers=(1,)),
                           progress=False)
    assert torch.equal(both.X[:, :64], neurons.X[: both.n_words]) and torch.allclose(
        both.X[:, 64:], planted.X[: both.n_words], atol=1e-5)
    with pytest.raises(ValueError, match="no dictionary is registered for site 'sae'"):
        tnp.extract(model, corpus, SAE, progress=False)


def test_rankers_find_the_planted_number_latents(latents):
    planted, control = latents
    config = tnp.EncodedConfig(ks=(1, 2))
    enc = tnp.evaluate_encoded(planted, "Number", ["probeless", "linear"], config)
    for ranking in ("probeless", "linear"):
        assert {str(n) for n in enc.rankings[ranking][:2]} == {"L1.S0", "L1.S1"}, ranking
    t = enc.table
    best = t[(t.ranking == "probeless") & (t.selection == "top") & (t.k == 1)].accuracy.iloc[0]
    ctl = tnp.evaluate_encoded(control, "Number", ["probeless"], config).table
    ctl_best = ctl[(ctl.selection == "top") & (ctl.k == 1)].accuracy.iloc[0]
    assert best > 0.9 and ctl_best < best - 0.1  # no latent of the random basis is a Number neuron


def test_used_separates_the_used_latent_from_the_unused_one(testbed):
    model, corpus, d, _ = testbed
    rankings = {"used": ["L1.S0"], "unused": ["L1.S1"], "neuron": ["L1.N5"]}
    with units.using(d):
        for edit, floor in ((Translate(alpha=8), 0.3), (Zero(), 0.1)):
            t = tnp.evaluate_used(model, corpus[:80], "Number", rankings, tnp.UsedConfig(ks=(1,), edit=edit),
                                  progress=False).table
            flips = t[(t.selection == "top") & (t.metric == "correct_lemma_wrong_value")].set_index("ranking").value
            assert flips["used"] > floor and flips["unused"] == 0.0, (edit, flips.to_dict())
            if isinstance(edit, Translate):  # the latent is the neuron's direction: the same translation
                assert flips["used"] == pytest.approx(flips["neuron"])


def test_editing_a_direction_equals_editing_its_neuron(testbed):
    model, corpus, _, _ = testbed
    adapter = ModelAdapter.wrap(model)
    batch = adapter.collate(adapter.tokenize_sentences([s.words for s in corpus.sentences[:6]]))
    d = units.from_directions(torch.eye(64)[[5, 30]], "blocks.1.mlp.hook_post")
    with units.using(d):
        for edit in (Zero(), Mean()):
            kw = {} if isinstance(edit, Zero) else {"means": [0.7]}
            lat = edit.bind(model, ["L1.D0"], **kw).run(batch)
            neu = edit.bind(model, ["L1.N5"], **kw).run(batch)
            assert torch.allclose(lat, neu, atol=1e-5)
        assert not torch.allclose(Zero().bind(model, ["L1.D1"]).run(batch), lat, atol=1e-3)


def test_attribution_ranks_the_used_latent_first(testbed):
    model, corpus, d, _ = testbed
    with units.using(d):
        a = tnp.attribute_used(model, corpus[:60], "Number",
                               tnp.AttributionConfig(edit=Mean(), site="sae", layers=(1,),
                                                     verify=Verify(top=64, n_random=0)), progress=False)
    t = a.table.set_index("neuron")
    assert a.table.sort_values("rank").neuron.iloc[0] == "L1.S0"
    assert (t.loc[["L1.S1", "L1.S2", "L1.S3"], "score"].abs() < 1e-6).all()  # unused, trigger, NOUN: no effect
    assert spearmanr(t["score"], t["exact"]).correlation > 0.8


def test_textualization_finds_the_trigger_latents_word(testbed):
    model, _, d, r = testbed
    config = tnp.TextualizeConfig(length=1, seed=0, optimizer=Gumbel(max_steps=150))
    with units.using(d):
        text = tnp.textualize(model, ["L1.S2"], config, progress=False).table.set_index("neuron").text
    with units.using(r):
        control = tnp.textualize(model, ["L1.S2"], config, progress=False).table.set_index("neuron").text
    assert text["L1.S2"] == "cabinet" and control["L1.S2"] != "cabinet"


def test_descriptions_name_the_trigger_and_noun_latents(testbed, latents):
    model, corpus, _, _ = testbed
    config = DescribeConfig(sources=("annotations", "surface"), search=Search(max_length=1, levels=()))
    desc = tnp.describe(latents[0], corpus, config=config).table.set_index("neuron")
    assert desc.loc["L1.S2", "formula"] in ("word=cabinet", "lemma=cabinet")
    assert desc.loc["L1.S3", "formula"] == "upos=NOUN"
    ctl = tnp.describe(latents[1], corpus, config=config).table.set_index("neuron")
    assert ctl.loc["L1.S2", "formula"] not in ("word=cabinet", "lemma=cabinet")
    assert ctl.loc["L1.S3", "formula"] != "upos=NOUN"


def test_a_transcoder_reads_one_hook_point_and_writes_another(testbed):
    """The planted model's last MLP as a transcoder (its weights, ReLU for GELU): latent i is neuron i read at the
    MLP's input and written to its output; the unused Number neuron's latent has a zero decoder row."""
    model, corpus, _, _ = testbed
    tc = planted_transcoder(model)
    adapter = ModelAdapter.wrap(model)
    batch = adapter.collate(adapter.tokenize_sentences([s.words for s in corpus.sentences[:6]]))
    with units.using(tc):
        acts = tnp.extract(model, corpus[:40], tnp.ExtractConfig(site=("mlp.pre", "transcoder"), layers=(1,)),
                           progress=False)
        assert torch.allclose(acts.X[:, 64:], torch.relu(acts.X[:, :64]), atol=1e-5)
        clean = adapter.forward(batch, [])
        assert torch.equal(Zero().bind(model, ["L1.T11"]).run(batch), clean)  # nothing written: nothing changes
        assert not torch.allclose(Zero().bind(model, ["L1.T5"]).run(batch), clean, atol=1e-3)
        t = tnp.evaluate_used(model, corpus[:80], "Number", {"T5": ["L1.T5"], "T11": ["L1.T11"], "N5": ["L1.N5"]},
                              tnp.UsedConfig(ks=(1,), edit=Translate(alpha=8)), progress=False).table
        flips = t[(t.selection == "top") & (t.metric == "correct_lemma_wrong_value")].set_index("ranking").value
        assert flips["T5"] == pytest.approx(flips["N5"]) and flips["T5"] > 0.3 and flips["T11"] == 0.0


def test_attribution_over_transcoder_latents(testbed):
    """Gradient at the transcoder's output hook through its decoder, values encoded at its input hook: the used
    Number latent first, the one with a zero decoder row exactly 0, close to the exact effects and to the neuron's
    own estimate (ReLU for GELU); the same latents with a shuffled decoder (a control that reads the same values)
    lose the used latent."""
    model, corpus, _, _ = testbed
    tc = planted_transcoder(model)
    config = tnp.AttributionConfig(edit=Mean(), site="transcoder", layers=(1,), verify=Verify(top=64, n_random=0))
    with units.using(tc):
        a = tnp.attribute_used(model, corpus[:60], "Number", config, progress=False)
    t = a.table.set_index("neuron")
    assert a.table.sort_values("rank").neuron.iloc[0] == "L1.T5"
    assert t.loc["L1.T11", "score"] == 0.0 and t.loc["L1.T11", "exact"] == 0.0
    assert spearmanr(t["score"], t["exact"]).correlation > 0.8
    ig = tnp.AttributionConfig(edit=Mean(), site="transcoder", layers=(1,), ig_steps=4, verify=Verify(top=0, n_random=0))
    with units.using(tc):
        t_ig = tnp.attribute_used(model, corpus[:60], "Number", ig, progress=False).table
    assert t_ig.sort_values("rank").neuron.iloc[0] == "L1.T5"
    shuffled = planted_transcoder(model)
    shuffled.W_dec = shuffled.W_dec[torch.randperm(len(shuffled.W_dec), generator=torch.Generator().manual_seed(0))]
    with units.using(shuffled):
        c = tnp.attribute_used(model, corpus[:60], "Number", config, progress=False).table.set_index("neuron")
    assert c.loc["L1.T5", "rank"] > 5
    neurons = tnp.attribute_used(model, corpus[:60], "Number", tnp.AttributionConfig(
        edit=Mean(), site="mlp.post", layers=(1,), verify=Verify(top=0, n_random=0)), progress=False).table
    assert t.loc["L1.T5", "score"] == pytest.approx(neurons.set_index("neuron").loc["L1.N5", "score"], rel=0.02)
