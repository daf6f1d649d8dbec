"""Integration: activations extracted from the planted testbed model; the rankers must put
the neurons planted for Number on top."""

from __future__ import annotations

import numpy as np
import pytest

import tl_neuronprobe as tnp
from tl_neuronprobe import rankers
from tl_neuronprobe.evaluation import encoded

from planted_arrays import label_free_orders, recovered


@pytest.fixture(scope="module")
def planted_acts():
    model = tnp.testing.planted_model()
    corpus = tnp.testing.planted_corpus(150, seed=0)
    acts = tnp.extract(model, corpus, site="mlp.post", progress=False)
    return acts, model.planted


@pytest.mark.parametrize("name", ["linear", "probeless", "mean_difference", "f_statistic", "mutual_information",
                                  "l1", "average_precision"])
def test_rankers_find_planted_number_neurons(planted_acts, name):
    acts, planted = planted_acts
    X, y, classes, idx = acts.dataset("Number", return_index=True)
    want = set(acts.columns(planted["Number"]).tolist())
    r = rankers.make_ranker(name).fit(X, y, groups=acts.sentence_ids[idx])
    assert set(r.order_[: len(want)].tolist()) == want, [str(acts.neurons[j]) for j in r.order_[:6]]


def test_gaussian_starts_with_a_planted_number_neuron(planted_acts):
    acts, planted = planted_acts
    X, y, classes, idx = acts.dataset("Number", return_index=True)
    want = set(acts.columns(planted["Number"]).tolist())
    g = rankers.Gaussian(max_features=3).fit(X, y, groups=acts.sentence_ids[idx])
    assert g.selected_[0] in want
    # the best single-neuron scores are planted neurons (those silent for one class are hard for a Gaussian)
    assert set(np.argsort(-g.scores_, kind="stable")[:2].tolist()) <= want


def test_encoded_layers_point_at_last_layer(planted_acts):
    acts, planted = planted_acts
    table = encoded.evaluate_encoded(acts, "Number", rankers=["probeless"], ks=[1, 4], probes=("logistic",))
    lay = encoded.layer_distribution(acts, table, k=4)
    last = max(acts.layers)
    assert int(lay[lay.layer == last]["count"].sum()) == 4
    top = table[(table.selection == "top") & (table.k == 4)].accuracy.iloc[0]
    assert top > 0.95


def test_label_free_controls_miss_the_planted_number_neurons(planted_acts):
    acts, planted = planted_acts
    X, y, classes, idx = acts.dataset("Number", return_index=True)
    want = acts.columns(planted["Number"])
    for control, order in label_free_orders(X.numpy()).items():
        assert not recovered(order, want), control
