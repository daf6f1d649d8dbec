"""The Descriptions result: tidy table, save/load round trip, activations from a plain matrix."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import tl_neuronprobe as tnp
from tl_neuronprobe.descriptions import DescribeConfig, Descriptions, Search, describe


def test_table_columns_and_round_trip(described, tmp_path):
    t = described.table
    for col in ["neuron", "layer", "end", "described", "description", "formula", "family", "iou", "precision",
                "recall", "auroc", "ap", "mean_diff", "z", "q", "test_iou", "test_f1", "simulation_corr",
                "detection_bacc"]:
        assert col in t.columns
    assert t["neuron"].is_unique
    assert set(described.scores["method"]) == {"description", "most_frequent_concept", "random_concept",
                                               "token_lookup", "lookup_matched"}
    back = Descriptions.load(described.save(tmp_path / "d"))
    pd.testing.assert_frame_equal(back.table, t, check_dtype=False)
    np.testing.assert_array_equal(back.iou, described.iou)
    assert back.concepts.names == described.concepts.names
    assert back.ranked_concepts(t["neuron"][0])[:3] == described.ranked_concepts(t["neuron"][0])[:3]
    with pytest.raises(FileNotFoundError, match="not a saved Descriptions"):
        Descriptions.load(tmp_path)


def test_activations_from_array_and_the_bottom_end():
    corpus = tnp.Corpus.synthetic(200, seed=4)
    upos = np.array(corpus.attribute("upos"), dtype=object)
    rng = np.random.default_rng(0)
    X = 0.1 * rng.standard_normal((corpus.n_words, 3))
    X[:, 0] += upos == "ADJ"
    X[:, 1] -= upos == "NOUN"  # fires downward
    acts = tnp.Activations.from_array(X, corpus)
    assert [str(n) for n in acts.neurons] == ["L0.N0", "L0.N1", "L0.N2"]
    config = DescribeConfig(ends=("top", "bottom"), search=Search(max_length=1))
    d = describe(acts, corpus, config=config)
    top = d.table.set_index(["neuron", "end"])
    assert top.loc[("L0.N0", "top"), "formula"] == "upos=ADJ"
    assert top.loc[("L0.N1", "bottom"), "formula"] == "upos=NOUN"
    assert not top.loc[("L0.N2", "top"), "described"]
    on_device = describe(acts, corpus, config=config, device="cpu")  # the torch (CUDA) route
    assert on_device.table["formula"].tolist() == d.table["formula"].tolist()
    with pytest.raises(ValueError, match="rows"):
        tnp.Activations.from_array(X[:-1], corpus)
    with pytest.raises(TypeError, match="Activations"):
        describe(X, corpus)
