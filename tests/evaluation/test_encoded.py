"""evaluate_encoded, its plots and summaries, on planted activations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import tl_neuronprobe as tnp
from tl_neuronprobe.evaluation.encoded import evaluate_encoded, layer_distribution, plot_encoded, ranker_agreement

from planted_arrays import make_one_per_class, planted_activations


@pytest.fixture(scope="module")
def encoded():
    acts, d = planted_activations()
    table = evaluate_encoded(acts, "upos", rankers=["probeless", "linear", "gaussian", "random"],
                             ks=[1, 2, 4, 8, 40, 100], seed=0)
    return acts, d, table


def test_table_shape_and_columns(encoded):
    acts, d, table = encoded
    assert {"ranking", "probe", "k", "selection", "accuracy", "control_accuracy", "selectivity"} <= set(table)
    # k=100 > 40 neurons is dropped; 4 rankers x 2 probes x 3 selections x 5 ks
    assert sorted(table.k.unique()) == [1, 2, 4, 8, 40]
    assert len(table) == 4 * 2 * 3 * 5
    assert set(table.selection) == {"top", "bottom", "random"}
    np.testing.assert_allclose(table.selectivity, table.accuracy - table.control_accuracy)


def test_top_beats_random_beats_bottom(encoded):
    acts, d, table = encoded
    for probe in ("logistic", "gaussian"):
        for ranker in ("probeless", "linear", "gaussian"):
            sub = table[(table.probe == probe) & (table.ranking == ranker) & (table.k == 4)].set_index("selection")
            assert sub.loc["top", "accuracy"] > 0.85, (probe, ranker)
            assert sub.loc["top", "accuracy"] > sub.loc["random", "accuracy"] + 0.2
            assert sub.loc["bottom", "accuracy"] < sub.loc["top", "accuracy"] - 0.3
            # planted neurons generalize to the task, not to random word-type labels
            assert sub.loc["top", "selectivity"] > 0.4
    orders = table.attrs["orders"]
    assert set(orders["probeless"][:4]) == set(d.planted)
    # with all neurons, every selection is the same set
    full = table[(table.k == 40) & (table.probe == "gaussian") & (table.ranking == "linear")]
    assert full.accuracy.nunique() == 1


def test_same_seed_same_table():
    acts, _ = planted_activations(seed=1, n=800)
    kw = dict(rankers=["probeless", "linear"], ks=[1, 4], seed=3)
    a = evaluate_encoded(acts, "upos", **kw)
    b = evaluate_encoded(acts, "upos", **kw)
    pd.testing.assert_frame_equal(a, b)


def test_split_is_by_sentence(monkeypatch):
    acts, _ = planted_activations(seed=2, n=600)
    seen = {}
    import tl_neuronprobe.evaluation.encoded as enc

    real = enc.split_indices

    def spy(n, test_size, **kw):
        tr, te = real(n, test_size, **kw)
        seen["groups"], seen["tr"], seen["te"] = kw["groups"], tr, te
        return tr, te

    monkeypatch.setattr(enc, "split_indices", spy)
    evaluate_encoded(acts, "upos", rankers=["probeless"], ks=[2], probes=("logistic",), control=False)
    g = seen["groups"]
    assert not set(g[seen["tr"]]) & set(g[seen["te"]])


def test_plot_layers_agreement(encoded, tmp_path):
    acts, d, table = encoded
    fig = plot_encoded(table, tmp_path / "enc.png")
    assert (tmp_path / "enc.png").stat().st_size > 1000
    import matplotlib.pyplot as plt

    plt.close(fig)
    lay = layer_distribution(acts, table, k=4)
    pl = lay[lay.ranking == "probeless"]
    assert pl["count"].sum() == 4
    expected = np.bincount(d.planted // 20, minlength=2)
    assert pl.sort_values("layer")["count"].tolist() == expected.tolist()
    agr = ranker_agreement(table, ks=[4, 10])
    row = agr[(agr.ranking_a == "probeless") & (agr.ranking_b == "linear") & (agr.k == 4)]
    assert float(row.overlap.iloc[0]) == 1.0
    same = ranker_agreement({"a": np.arange(10), "b": np.arange(10), "c": np.arange(10)[::-1]}, ks=[3])
    ab = same[(same.ranking_a == "a") & (same.ranking_b == "b")].iloc[0]
    ac = same[(same.ranking_a == "a") & (same.ranking_b == "c")].iloc[0]
    assert ab.overlap == 1 and ab.spearman == pytest.approx(1) and ab.kendall == pytest.approx(1)
    assert ac.overlap == 0 and ac.spearman == pytest.approx(-1)


def test_rankers_as_dict_and_instances():
    acts, _ = planted_activations(seed=0, n=600)
    t = evaluate_encoded(acts, "Number", rankers={"pl": __import__('tl_neuronprobe.rankers').rankers.Probeless(), "md": "mean_difference"},
                         ks=[1, 2], probes=("logistic",))
    assert set(t.ranking) == {"pl", "md"}
    with pytest.raises(ValueError, match="unknown probe"):
        evaluate_encoded(acts, "upos", rankers=["probeless"], probes=("svm",))
