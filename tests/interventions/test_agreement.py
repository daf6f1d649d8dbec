"""A decoder trained here on the synthetic agreement language: translating its subject-number neurons flips
agreement; its bottom-ranked neurons do no more than random ones."""

from __future__ import annotations

import pytest
import torch

import tl_neuronprobe as tnp
from tl_neuronprobe.testbeds.agreement import gpt2_forward, train_agreement_weights
from tl_neuronprobe.interventions.readouts import AgreementReadout
from tl_neuronprobe.evaluation.used import Baselines, UsedBatching, UsedConfig, evaluate_used

from used_helpers import mean_difference_order
from tl_neuronprobe.data.extraction import ExtractConfig


def value(table, selection, k, metric="agreement_flip"):
    row = table[(table.selection == selection) & (table.k == k) & (table.metric == metric)]
    return float(row.value.iloc[0])


def test_decoder_learns_agreement_across_attractors(agreement_model):
    report = agreement_model.agreement
    assert report.accuracy > 0.9, str(report)
    assert report.by_attractor["mismatch"] > 0.9, str(report)
    assert report.n_verbs > 300


def test_built_model_computes_the_trained_function(agreement_model):
    weights, words, _ = train_agreement_weights(seed=0)
    corpus = tnp.Corpus.synthetic(8, seed=4)
    ids = torch.as_tensor([[words.index("<bos>")] + [words.index(w) for w in corpus[0].words]])
    with torch.inference_mode():
        ours = gpt2_forward(weights, ids, 2)
        theirs = agreement_model(ids, return_type="logits")
    torch.testing.assert_close(theirs, ours, atol=2e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def agreement_curves(agreement_model):
    corpus = tnp.Corpus.synthetic(160, seed=5)
    acts = tnp.extract(agreement_model, corpus, ExtractConfig(site="mlp.post", layers=[0]), progress=False)
    order = mean_difference_order(acts, "Number")
    config = UsedConfig(edit=tnp.interventions.Translate(alpha=8.0), ks=[4, 16], n_bootstrap=200,
                        baselines=Baselines(n_random=3), seed=0, batching=UsedBatching(batch_size=64))
    return evaluate_used(agreement_model, corpus, "Number", {"mean_difference": order}, config, progress=False)


def test_translating_subject_number_neurons_flips_agreement(agreement_curves):
    t = agreement_curves.table
    assert agreement_curves.readout == "agreement"  # auto: a decoder that does not predict its own input
    assert value(t, "top", 16) > 0.5
    assert value(t, "top", 16) > value(t, "random", 16) + 0.3
    assert value(t, "top", 4) > value(t, "random", 4) + 0.2
    assert value(t, "top", 16, "logit_diff_drop") > 2 * max(value(t, "random", 16, "logit_diff_drop"), 0.1)
    top = t[(t.selection == "top") & (t.k == 16) & (t.metric == "agreement_flip")].iloc[0]
    rnd = t[(t.selection == "random") & (t.k == 16) & (t.metric == "agreement_flip")].iloc[0]
    assert top.ci_low > rnd.ci_high  # the intervals separate


def test_bottom_ranked_neurons_do_no_more_than_random(agreement_curves):
    t = agreement_curves.table
    for k in (4, 16):
        assert value(t, "bottom", k) <= value(t, "random", k) + 0.02
        assert value(t, "bottom", k, "logit_diff_drop") <= value(t, "random", k, "logit_diff_drop") + 0.05


def test_agreement_readout_targets(agreement_model):
    corpus = tnp.Corpus.synthetic(40, seed=6)
    adapter = tnp.ModelAdapter(agreement_model)
    ro = AgreementReadout()
    has = ro.setup(adapter, corpus, "Number", [None] * len(corpus),
                   adapter.tokenize_sentences([s.words for s in corpus]))
    assert ro.classes == ["Plur", "Sing"]
    assert has.sum() >= 15
    tok = adapter.tokenizer
    for (s, w), (ids, gold) in list(ro.targets.items())[:10]:
        word = corpus[s].words[w]
        assert tok.convert_ids_to_tokens(ids[gold]) == [word]  # the right class's form is the verb itself
        assert corpus[s].attributes["Agreement"][w] == ro.classes[gold]
