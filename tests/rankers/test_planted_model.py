"""Integration: activations extracted from the planted testbed model; the rankers must put
the neurons planted for Number on top, while orderings that ignore the labels (maximum, variance, mean
|activation|, |skewness|, a ranker fitted on permuted labels) find at most a quarter of them: the planted
neurons are quiet and eight class-independent decoys are loud."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tl_neuronprobe as tnp
from tl_neuronprobe import rankers
from tl_neuronprobe.evaluation import encoded

from planted_arrays import label_free_orders, overlap
from tl_neuronprobe.data.extraction import ExtractConfig


@pytest.fixture(scope="module")
def planted_acts():
    model = tnp.testing.planted_model()
    corpus = tnp.testing.planted_corpus(150, seed=0)
    acts = tnp.extract(model, corpus, ExtractConfig(site="mlp.post"), progress=False)
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
    g = rankers.Gaussian(max_k=3).fit(X, y, groups=acts.sentence_ids[idx])
    assert g.selected_[0] in want
    # the best single-neuron scores are planted neurons (those silent for one class are hard for a Gaussian)
    assert set(np.argsort(-g.scores_, kind="stable")[:2].tolist()) <= want


def test_encoded_layers_point_at_last_layer(planted_acts):
    acts, planted = planted_acts
    # the top 6 are the planted neurons: five in the last layer, the cancelled one in the layer before
    result = encoded.evaluate_encoded(acts, "Number", ["probeless"], encoded.EncodedConfig(ks=[1, 6], probes=["logistic"]))
    lay = result.layer_distribution(6)
    table = result.table
    last = max(acts.layers)
    assert int(lay[lay.layer == last]["count"].sum()) == 5
    assert int(lay[lay.layer == last - 1]["count"].sum()) == 1
    top = table[(table.selection == "top") & (table.k == 6)].accuracy.iloc[0]
    assert top > 0.95


def _controls(X: np.ndarray) -> dict[str, np.ndarray]:
    """The label-free orderings: planted_arrays' (variance, |skewness|, maximum) and mean |activation|."""
    return label_free_orders(X) | {"mean_abs": np.argsort(-np.abs(X).mean(0), kind="stable")}


def _number(acts, planted):
    X, y, classes, idx = acts.dataset("Number", return_index=True)
    return X, y, acts.sentence_ids[idx], acts.columns(planted["Number"])


def test_label_free_controls_miss_the_planted_number_neurons(planted_acts):
    acts, planted = planted_acts
    X, y, groups, want = _number(acts, planted)
    assert len(want) == 6
    for control, order in _controls(X.numpy()).items():
        assert overlap(order, want) <= len(want) // 4, (control, [str(acts.neurons[j]) for j in order[:6]])
    # what they find instead: the loud decoys (and the loud upos neurons), which carry no Number
    top = set(_controls(X.numpy())["max_activation"][:6].tolist())
    assert top <= set(acts.columns(planted.decoys + planted.unused["upos"]).tolist())


@pytest.mark.parametrize("name", ["linear", "probeless", "mean_difference", "f_statistic"])
def test_a_ranker_on_permuted_labels_misses_the_planted_neurons(planted_acts, name):
    """Six label permutations each: a raw-unit ranker (probeless, mean_difference) on permuted labels favours
    loud neurons (on the loud model, quiet=False, 4 of the 6 planted neurons for two of these permutations)."""
    acts, planted = planted_acts
    X, y, groups, want = _number(acts, planted)
    for seed in range(6 if name in ("probeless", "mean_difference") else 1):
        perm = torch.from_numpy(np.random.default_rng(seed).permutation(len(y)))
        r = rankers.make_ranker(name).fit(X, y[perm], groups=groups)
        assert overlap(r.order_, want) <= len(want) // 4, (seed, [str(acts.neurons[j]) for j in r.order_[:6]])


def test_decoys_are_loud_and_carry_no_number(planted_acts):
    acts, planted = planted_acts
    X, y, groups, want = _number(acts, planted)
    X = X.numpy()
    decoys = acts.columns(planted.decoys)
    assert len(decoys) == 8
    assert X[:, decoys].std(0).min() > X[:, want].std(0).max()
    assert X[:, decoys].max(0).min() > X[:, want].max(0).max()
    gap = lambda j: abs(X[y.numpy() == 0, j].mean() - X[y.numpy() == 1, j].mean())  # noqa: E731
    assert max(gap(j) for j in decoys) < 0.5 * min(gap(j) for j in want)


def test_the_loud_model_is_what_the_controls_would_find():
    """The control can fail: on the earlier model (loud planted neurons, no decoys), an ordering by maximum
    activation puts 5 of the 6 planted Number neurons in its top 6."""
    model = tnp.testing.planted_model(quiet=False)
    acts = tnp.extract(model, tnp.testing.planted_corpus(150, seed=0), ExtractConfig(site="mlp.post"), progress=False)
    X, y, groups, want = _number(acts, model.planted)
    assert model.planted.decoys == []
    assert overlap(_controls(X.numpy())["max_activation"], want) >= 5
