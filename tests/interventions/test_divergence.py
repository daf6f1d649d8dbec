"""The divergence readout works for any model: output KL and final-hidden / sentence-embedding distances."""

from __future__ import annotations

import pytest
import torch

import tl_neuronprobe as tnp
from used_helpers import hook_count, mean_difference_order, run_used
from tl_neuronprobe.data.extraction import ExtractConfig


def value(table, ranking, selection, k, metric):
    table = getattr(table, "table", table)  # a UsedResult or its table
    row = table[(table.ranking == ranking) & (table.selection == selection) & (table.k == k)
                & (table.metric == metric)]
    return float(row.value.iloc[0])


def test_divergence_sees_used_neurons_and_not_unused_ones(planted, planted_corpus, planted_rankings):
    t = run_used(planted, planted_corpus[:80], "Number", planted_rankings, [2], readout="divergence",
                 n_bootstrap=100, bottom=False, n_random=1)
    assert set(t.table.metric) == {"kl", "embedding_distance", "hidden_distance"}  # a decoder: KL too
    assert value(t, "used_first", "top", 2, "kl") > 0.5
    assert value(t, "used_first", "top", 2, "hidden_distance") > 0.01
    for metric in ("kl", "embedding_distance", "hidden_distance"):
        assert abs(value(t, "unused_first", "top", 2, metric)) < 1e-5  # zero output weights: nothing moves
    only_hidden = run_used(planted, planted_corpus[:40], "Number", planted_rankings, [2],
                           readout=tnp.interventions.Divergence(metrics=["hidden_distance"]), n_bootstrap=0,
                           n_random=0, bottom=False)
    assert set(only_hidden.table.metric) == {"hidden_distance"}
    embedding = run_used(planted, planted_corpus[:40], "Number", planted_rankings, [2],
                         readout=tnp.interventions.EmbeddingDistance(), n_bootstrap=0, n_random=0, bottom=False)
    assert set(embedding.table.metric) == {"embedding_distance"}


@pytest.mark.minilm
def test_minilm_with_a_random_head_uses_the_divergence_readout(minilm):
    """``load("minilm", head="none")``: Hugging Face's random MLM head does not predict the input, so the automatic
    readout is divergence (with the shipped head it is identity: tests/interventions/test_minilm_identity.py)."""
    torch.manual_seed(0)
    minilm = tnp.models.load("minilm", device="cpu", head="none")
    corpus = tnp.Corpus.synthetic(40, seed=1)
    acts = tnp.extract(minilm, corpus, ExtractConfig(site="mlp.post", layers=[3]), progress=False)
    adapter = tnp.ModelAdapter(minilm)
    batch = adapter.collate(adapter.tokenize_sentences([s.words for s in corpus[:4]]))
    before = adapter.forward(batch)
    n_hooks = hook_count(minilm)  # after a full forward: the bridge adds permanent hooks of its own lazily
    order = mean_difference_order(acts, "Number")
    t = run_used(minilm, corpus, "Number", {"mean_difference": order}, [16, 256], alpha=4.0, n_bootstrap=100,
                 n_random=1, batch_size=40)
    assert t.readout == "divergence"  # the random MLM head does not predict its input
    assert set(t.table.metric) == {"embedding_distance", "hidden_distance"}
    for k in (16, 256):
        assert value(t, "mean_difference", "top", k, "embedding_distance") > \
            2 * value(t, "mean_difference", "random", k, "embedding_distance")
        assert value(t, "mean_difference", "top", k, "embedding_distance") > \
            value(t, "mean_difference", "bottom", k, "embedding_distance")
    assert hook_count(minilm) == n_hooks
    assert (adapter.forward(batch) == before).all()
