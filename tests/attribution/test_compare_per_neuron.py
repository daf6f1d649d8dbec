"""Encoded versus used neuron by neuron (issue 23): on the planted model the unused and cancelled Number neurons
land in "encoded, not used" and the used ones in "encoded and used"; a random ranking on either side does not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import tl_neuronprobe as tnp
from tl_neuronprobe.evaluation.attribution import Attribution, AttributionConfig, Verify
from tl_neuronprobe.evaluation.compare import GROUPS, NeuronCompareConfig, NeuronComparison, compare_per_neuron
from tl_neuronprobe.evaluation.encoded import EncodedConfig
from tl_neuronprobe.evaluation.results import kind_of, load_result
from tl_neuronprobe.interventions import Identity, Zero

COLUMNS = ["neuron", "layer", "encoded_score", "encoded_rank", "used_score", "used_rank", "group"]


@pytest.fixture(scope="module")
def planted():
    model = tnp.models.load("planted")
    corpus = tnp.testing.planted_corpus(60, seed=0)
    acts = tnp.extract(model, corpus, tnp.ExtractConfig(layers=(0, 1)), progress=False)
    encoded = tnp.evaluate_encoded(acts, "Number", ["probeless", "random"],
                                   EncodedConfig(ks=(1,), control=False, probes=("logistic",)))
    used = tnp.attribute_used(model, corpus, "Number", AttributionConfig(edit=Zero(), readout=Identity(),
                                                                         verify=Verify(top=8, n_random=8)),
                              progress=False)
    return dict(model=model, corpus=corpus, encoded=encoded, used=used, planted=model.planted)


def separates(comparison: NeuronComparison, planted) -> bool:
    """The planted truth: used Number neurons encoded and used; unused and cancelled ones encoded, not used."""
    group = dict(zip(comparison.table["neuron"], comparison.table["group"]))
    not_used = planted.unused["Number"] + planted.cancelled["Number"]
    return (all(group[str(n)] == "encoded and used" for n in planted.used["Number"])
            and all(group[str(n)] == "encoded, not used" for n in not_used))


CONFIG = NeuronCompareConfig(k=6, used_k=2)  # six planted Number neurons (with the canceller), two used


def test_planted_groups(planted):
    cmp = compare_per_neuron(planted["encoded"], planted["used"], CONFIG)
    truth = planted["planted"]
    assert isinstance(cmp, NeuronComparison) and cmp.kind == "neuron_comparison" and cmp.attribute == "Number"
    assert kind_of(cmp.table) == "neuron_comparison" and list(cmp.table.columns) == COLUMNS
    assert len(cmp.table) == 128 and cmp.extra["ranking"] == "probeless"  # the first ranking by default
    assert separates(cmp, truth)
    assert set(truth.unused["Number"] + truth.cancelled["Number"]) <= set(cmp.encoded_not_used())
    assert not set(truth.used["Number"]) & set(cmp.encoded_not_used())
    assert cmp.used_not_encoded() == []  # the model uses only planted neurons
    assert cmp.counts() == {"encoded and used": 2, "encoded, not used": 4, "used, not encoded": 0, "neither": 122}
    assert sorted(cmp.table["encoded_rank"]) == list(range(1, 129)) == sorted(cmp.table["used_rank"])
    top = cmp.table.set_index("encoded_rank")
    assert top.loc[1, "encoded_score"] == 1.0 and top.loc[128, "encoded_score"] == 0.0
    scores = planted["used"].table.set_index("neuron")["score"]
    assert cmp.table.set_index("neuron")["used_score"].equals(scores.loc[cmp.table["neuron"]])
    assert "2 encoded and used, 4 encoded but not used, 0 used but not encoded" in str(cmp)


def test_random_rankings_do_not_separate(planted):
    """Controls: the random ranker's order as the encoded side, and permuted attribution scores as the used side."""
    truth = planted["planted"]
    encoded_random = compare_per_neuron(planted["encoded"], planted["used"], CONFIG.replace(ranking="random"))
    assert encoded_random.extra["ranking"] == "random" and not separates(encoded_random, truth)
    used = planted["used"]
    permuted = used.table.copy()
    rng = np.random.default_rng(0)
    permuted[["score", "rank"]] = permuted[["score", "rank"]].to_numpy()[rng.permutation(len(permuted))]
    used_random = compare_per_neuron(planted["encoded"], Attribution(permuted, "Number"), CONFIG)
    assert not separates(used_random, truth)
    assert len(used_random.used_not_encoded()) == 2  # the two most "used" are random neurons


def test_only_the_neurons_both_sides_rank(planted):
    """Attributing layer 1 only: layer 0 leaves the comparison, and ranks count within layer 1."""
    used = planted["used"]
    layer1 = used.table[used.table["layer"] == 1].copy()
    layer1["rank"] = layer1["rank"].rank().astype(int)
    cmp = compare_per_neuron(planted["encoded"], Attribution(layer1, "Number"), CONFIG)
    assert set(cmp.table["layer"]) == {1} and len(cmp.table) == 64
    assert sorted(cmp.table["encoded_rank"]) == list(range(1, 65))
    assert cmp.extra["encoded_only"] == 64 and cmp.extra["used_only"] == 0
    # L0.N13 (cancelled) was an encoded top-6 neuron; without it a seventh neuron of layer 1 is "encoded"
    assert (cmp.table["encoded_rank"] <= 6).sum() == 6


def test_save_load_and_plot(planted, tmp_path):
    cmp = compare_per_neuron(planted["encoded"], planted["used"], CONFIG)
    back = load_result(cmp.save(tmp_path / "per_neuron.csv"))
    assert isinstance(back, NeuronComparison) and back.attribute == "Number"
    pd.testing.assert_frame_equal(back.table, cmp.table, check_dtype=False)
    assert back.encoded_not_used() == cmp.encoded_not_used() and str(back) == str(cmp)
    fig = cmp.plot(tmp_path / "per_neuron.png")
    assert (tmp_path / "per_neuron.png").stat().st_size > 5000
    assert [ax.get_title() for ax in fig.axes] == ["layer 0", "layer 1"]
    labels = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert "encoded and used (2)" in labels and "encoded, not used (3)" in labels  # layer 1: N11, N40, N61


def test_errors(planted):
    encoded, used = planted["encoded"], planted["used"]
    with pytest.raises(KeyError, match="no ranking 'linear'"):
        compare_per_neuron(encoded, used, NeuronCompareConfig(ranking="linear"))
    with pytest.raises(TypeError, match="must be an Attribution"):
        compare_per_neuron(encoded, encoded)
    with pytest.raises(ValueError, match="share no neuron"):
        compare_per_neuron({"x": tnp.parse_neurons("L5.N1,L5.N2")}, used)
    other = Attribution(used.table.copy(), "Tense")
    with pytest.raises(ValueError, match="about 'Number' and the attribution about 'Tense'"):
        compare_per_neuron(encoded, other)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        NeuronCompareConfig(k=0)
    config = NeuronCompareConfig(ranking="random", k=3, used_k=7)
    assert tnp.Config.from_dict(config.to_dict()) == config
    assert GROUPS == ("encoded and used", "encoded, not used", "used, not encoded", "neither")
