"""MiniLM predicts words through its shipped MLM head, so "used" on real English reads its own predictions: the
automatic readout is identity, and translating the top Number neurons flips the predicted word's Number on
held-out sentences more than random neurons of the same k do (the random-k baseline is the control that must not
flip)."""

from __future__ import annotations

import pytest

import tl_neuronprobe as tnp
from tl_neuronprobe.data.treebank import document_of
from tl_neuronprobe.evaluation.used import Baselines, UsedConfig, UsedFit
from tl_neuronprobe.interventions import Identity, Translate


def value(result, ranking, selection, k, metric, column="value"):
    t = result.table
    row = t[(t.ranking == ranking) & (t.selection == selection) & (t.k == k) & (t.metric == metric)]
    return float(row[column].iloc[0])


def split_at_document(corpus, n):
    """``corpus[:m], corpus[m:]`` with ``m >= n`` the first sentence of a new document (no document in both)."""
    docs = [document_of(s.id) for s in corpus.sentences]
    m = next(i for i in range(n, len(docs)) if docs[i] != docs[i - 1])
    return corpus[:m], corpus[m:]


@pytest.mark.minilm
def test_the_automatic_readout_reads_minilm_predictions(minilm):
    corpus = tnp.Corpus.load("ud-english:60")
    config = UsedConfig(ks=(1,), baselines=Baselines(bottom=False, n_random=0), fit=UsedFit(layer=3), n_bootstrap=0)
    result = tnp.evaluate_used(minilm, corpus, "Number", ["probeless"], config, progress=False)
    assert result.readout == "identity"
    assert set(result.table.metric) == {"changed", "correct_lemma_wrong_value", "wrong_lemma"}


@pytest.mark.minilm
def test_translating_top_number_neurons_flips_predicted_number_more_than_random_neurons(minilm):
    """Linear's Number ranking fitted on held-out documents, evaluated on other held-out documents: translating its
    top 10 / 50 neurons (8x the class-mean difference) turns about 9% of the Number words' predictions into the same
    lemma with the other Number (e.g. a plural predicted singular); random neurons of the same k about 0.4%."""
    fit, test = split_at_document(tnp.Corpus.load("ud-english:520"), 260)
    config = UsedConfig(edit=Translate(alpha=8.0), readout=Identity(lexicon="ud-english"), ks=(10, 50),
                        baselines=Baselines(bottom=True, n_random=3), fit=UsedFit(layer=3), n_bootstrap=500, seed=0)
    result = tnp.evaluate_used(minilm, fit, "Number", ["linear"], config, test=test, progress=False)
    assert result.readout == "identity"
    metric = "correct_lemma_wrong_value"
    for k in (10, 50):
        top = value(result, "linear", "top", k, metric)
        low = value(result, "linear", "top", k, metric, "ci_low")
        random = value(result, "linear", "random", k, metric)
        random_high = value(result, "linear", "random", k, metric, "ci_high")
        assert low > random_high, (k, top, random)
        assert top > 3 * max(random, 0.005)
    # the bottom of the ranking flips no more than random neurons
    assert value(result, "linear", "bottom", 50, metric) <= value(result, "linear", "random", 50, metric) + 0.01
