"""evaluate_encoded, its plots and summaries, on planted activations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import tl_neuronprobe as tnp
from tl_neuronprobe.evaluation.encoded import (EncodedConfig, EncodedResult, evaluate_encoded, layer_distribution,
                                               ranker_agreement)

from planted_arrays import make_one_per_class, planted_activations


@pytest.fixture(scope="module")
def encoded():
    acts, d = planted_activations()
    with pytest.warns(UserWarning, match=r"ks \[100\] exceed the 40 neurons"):
        result = evaluate_encoded(acts, "upos", ["probeless", "linear", "gaussian", "random"],
                                  EncodedConfig(ks=[1, 2, 4, 8, 40, 100], seed=0))
    return acts, d, result


def test_table_shape_and_columns(encoded):
    acts, d, result = encoded
    table = result.table
    assert isinstance(result, EncodedResult) and result.kind == "encoded" and result.attribute == "upos"
    assert {"ranking", "probe", "k", "selection", "accuracy", "control_accuracy", "selectivity"} <= set(table)
    # k=100 > 40 neurons is dropped; 4 rankers x 2 probes x 3 selections x 5 ks
    assert sorted(table.k.unique()) == [1, 2, 4, 8, 40]
    assert len(table) == 4 * 2 * 3 * 5
    assert set(table.selection) == {"top", "bottom", "random"}
    np.testing.assert_allclose(table.selectivity, table.accuracy - table.control_accuracy)


def test_top_beats_random_beats_bottom(encoded):
    acts, d, result = encoded
    table = result.table
    for probe in ("logistic", "gaussian"):
        for ranker in ("probeless", "linear", "gaussian"):
            sub = table[(table.probe == probe) & (table.ranking == ranker) & (table.k == 4)].set_index("selection")
            assert sub.loc["top", "accuracy"] > 0.85, (probe, ranker)
            assert sub.loc["top", "accuracy"] > sub.loc["random", "accuracy"] + 0.2
            assert sub.loc["bottom", "accuracy"] < sub.loc["top", "accuracy"] - 0.3
            # planted neurons generalize to the task, not to random word-type labels
            assert sub.loc["top", "selectivity"] > 0.4
    orders = result.orders
    assert set(orders["probeless"][:4]) == set(d.planted)
    assert result.rankings["probeless"][:4] == [acts.neurons[j] for j in orders["probeless"][:4]]
    assert "orders" not in table.attrs and set(table.attrs) == {"tnp_kind", "attribute"}
    # with all neurons, every selection is the same set
    full = table[(table.k == 40) & (table.probe == "gaussian") & (table.ranking == "linear")]
    assert full.accuracy.nunique() == 1


def test_same_seed_same_table():
    acts, _ = planted_activations(seed=1, n=800)
    config = EncodedConfig(ks=[1, 4], seed=3)
    a = evaluate_encoded(acts, "upos", ["probeless", "linear"], config)
    b = evaluate_encoded(acts, "upos", ["probeless", "linear"], EncodedConfig.from_dict(config.to_dict()))
    pd.testing.assert_frame_equal(a.table, b.table)
    assert a.rankings == b.rankings


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
    evaluate_encoded(acts, "upos", ["probeless"], EncodedConfig(ks=[2], probes=["logistic"], control=False))
    g = seen["groups"]
    assert not set(g[seen["tr"]]) & set(g[seen["te"]])


def test_plot_layers_agreement(encoded, tmp_path):
    acts, d, table = encoded
    fig = table.plot(tmp_path / "enc.png")
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
    # the methods give the same tables as the functions
    pd.testing.assert_frame_equal(table.layer_distribution(4), lay)
    pd.testing.assert_frame_equal(table.ranker_agreement([4, 10]), agr)
    by_neurons = ranker_agreement(table.rankings, ks=[4, 10])
    np.testing.assert_allclose(by_neurons.overlap, agr.overlap)


def test_rankers_as_dict_and_instances():
    acts, _ = planted_activations(seed=0, n=600)
    t = evaluate_encoded(acts, "Number", {"pl": tnp.rankers.Probeless(), "md": "mean_difference"},
                         EncodedConfig(ks=[1, 2], probes=["logistic"]))
    assert set(t.table.ranking) == {"pl", "md"} and set(t.rankings) == {"pl", "md"}
    with pytest.raises(ValueError, match="unknown probe"):
        EncodedConfig(probes=("svm",))


def test_saved_result_reloads_whole(encoded, tmp_path):
    """``save`` / ``load_result``: the table, the rankings (as neurons), the neurons and the config come back."""
    from tl_neuronprobe.evaluation.results import load_result

    acts, _, result = encoded
    path = result.save(tmp_path / "enc.csv")
    back = load_result(path)
    assert isinstance(back, EncodedResult) and back.attribute == "upos"
    pd.testing.assert_frame_equal(back.table, result.table, check_dtype=False)
    assert back.rankings == result.rankings and back.neurons == list(acts.neurons)
    assert EncodedConfig.from_dict(back.config) == EncodedConfig(ks=[1, 2, 4, 8, 40, 100], seed=0)
    pd.testing.assert_frame_equal(back.layer_distribution(4), result.layer_distribution(4))


def test_config_checks_and_logistic_settings():
    with pytest.raises(ValueError, match="test_size"):
        EncodedConfig(test_size=1.5)
    with pytest.raises(ValueError, match=r"no parameter\(s\) \['seed'\]"):
        EncodedConfig(logistic={"seed": 1})
    acts, _ = planted_activations(seed=0, n=400)
    config = EncodedConfig(ks=[2], probes=["logistic"], control=False)
    base = evaluate_encoded(acts, "upos", ["probeless"], config)
    same = evaluate_encoded(acts, "upos", ["probeless"], config.replace(logistic={"l2": 1e-4}))
    pd.testing.assert_frame_equal(base.table, same.table)  # the default l2, written out: the same numbers
