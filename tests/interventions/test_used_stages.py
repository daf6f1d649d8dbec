"""Each stage of the used evaluation on its own: resolve, tables, plan, sweep, tabulate; UsedConfig and options."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import tl_neuronprobe as tnp
from tl_neuronprobe import interventions as iv
from tl_neuronprobe.core.config import Config
from tl_neuronprobe.evaluation._tables import Preparer, sentence_batches
from tl_neuronprobe.evaluation.used import (UsedConfig, UsedFit, build_tables, choose_readout, evaluate_used, plan,
                                            resolve, tabulate)
from tl_neuronprobe.interventions.sweep import Sweep, run_sweep

from used_helpers import used_config as _settings


def test_resolve_turns_every_kind_of_ranking_into_neurons(planted, planted_corpus):
    rankings = {"strings": ["L1.N5", "L1.N23"], "cols": np.asarray([23, 5]), "named": "probeless"}
    r = resolve(planted, planted_corpus[:30], "Number", rankings, _settings([2, 1, 2], layer=1))
    assert r.ks == [1, 2]
    assert r.orders["strings"] == [tnp.Neuron(1, 5), tnp.Neuron(1, 23)]
    assert r.orders["cols"] == [tnp.Neuron(1, 23), tnp.Neuron(1, 5)]
    assert r.orders["named"] is None and r.pending == {"named": "probeless"}
    with pytest.raises(ValueError, match="lists a neuron twice"):
        resolve(planted, planted_corpus[:30], "Number", {"x": ["L1.N5", "L1.N5"]}, _settings())
    capped = resolve(planted, planted_corpus[:30], "Number", rankings, _settings(layer=1, n_sentences=7))
    assert len(capped.corpus) == 7 and len(capped.fit_corpus) == 30


def test_tables_label_words_and_fit_named_rankers(planted, planted_corpus):
    corpus = planted_corpus[:60]
    r = resolve(planted, corpus, "Number", {"named": "probeless"}, _settings([2], layer=1))
    t = build_tables(r, _settings([2], layer=1))
    assert t.classes == ["Plur", "Sing"]
    first = corpus.sentences[0]
    want = [-1 if v is None else t.classes.index(v) for v in first.attributes["Number"]]
    np.testing.assert_array_equal(t.labels[0], want)
    assert t.X.shape[0] == len(t.y) == sum(v is not None for v in corpus.attribute("Number"))
    # the probeless ranking, fitted here, starts with planted Number neurons
    assert set(r.orders["named"][:4]) == set(planted.planted.used["Number"] + planted.planted.unused["Number"])


def test_class_values_with_few_forms_are_dropped_with_a_message(planted, planted_corpus):
    corpus = planted_corpus[:80]
    forms = {}
    for s in corpus.sentences:
        for w, u in zip(s.words, s.attributes["upos"]):
            forms.setdefault(u, set()).add(w.lower())
    threshold = sorted(len(f) for f in forms.values())[-3]  # keeps the three richest classes
    rankings = {"r": [tnp.Neuron(1, i) for i in range(64)]}
    r = resolve(planted, corpus, "upos", rankings, _settings([2], min_forms=threshold))
    with pytest.warns(UserWarning, match="fewer than .* distinct word forms") as record:
        t = build_tables(r, _settings([2], min_forms=threshold))
    dropped = sorted(c for c, f in forms.items() if len(f) < threshold)
    assert t.dropped == dropped and set(t.classes) == set(forms) - set(dropped)
    assert all(c in str(record[0].message) for c in dropped)
    kept_words = sum(int((lab >= 0).sum()) for lab in t.labels)  # words of dropped classes are not evaluated
    assert kept_words == sum(u in t.classes for u in corpus.attribute("upos"))


def test_plan_lists_top_bottom_and_seeded_random_neurons(planted):
    adapter = tnp.ModelAdapter(planted)
    order = [tnp.Neuron(1, i) for i in range(64)]
    s = _settings(n_random=2, seed=5)
    p = plan(adapter, {"a": order, "b": order[::-1]}, [1, 3], s)
    assert len(p.specs) == 2 * 2 * 2 + 2 * 2  # (top, bottom) x 2 rankings x 2 ks, random shared: 2 draws x 2 ks
    top = [sp for sp in p.specs if sp.ranking == "a" and sp.selection == "top" and sp.k == 3][0]
    bottom = [sp for sp in p.specs if sp.ranking == "a" and sp.selection == "bottom" and sp.k == 3][0]
    assert top.neurons == order[:3] and bottom.neurons == order[::-1][:3]
    rand = [sp.neurons for sp in p.specs if sp.selection == "random"]
    again = [sp.neurons for sp in plan(adapter, {"a": order}, [1, 3], s).specs if sp.selection == "random"]
    other = [sp.neurons for sp in plan(adapter, {"a": order}, [1, 3], s.replace(seed=6)).specs
             if sp.selection == "random"]
    assert rand == again and rand != other
    assert p.rows.count(("a", "random", 3)) == 1 and len(p.row_specs[p.rows.index(("a", "random", 3))]) == 2
    scaled = plan(adapter, {"a": order}, [3], _settings(edit=iv.Translate(alpha="scaled"), n_random=0, bottom=False))
    np.testing.assert_allclose(scaled.specs[0].alpha, iv.scaled_alpha(64, 8.0, np.arange(3)))


def test_sweep_engine_batched_equals_public_interventions(planted, planted_corpus):
    """The engine's rows equal the bound Translate intervention of each spec, run alone."""
    corpus = planted_corpus[:24]
    s = _settings([1, 2, 5], n_random=0, bottom=False, edit=iv.Translate(alpha=2.0))
    order = planted.planted.used["Number"] + [tnp.Neuron(1, i) for i in (1, 2, 3)]
    r = resolve(planted, corpus, "Number", {"a": order}, s)
    t = build_tables(r, s)
    p = plan(r.adapter, r.orders, r.ks, s)
    sweep = Sweep(r.adapter, p.specs, s.edit)
    prepare = Preparer(r.adapter, t, sweep.neurons, s)
    batches = sentence_batches(t, r.corpus, s.positions, 8)
    results = {}
    for strategy in ("batched", "naive"):
        ro, _ = choose_readout(iv.Divergence(metrics=["kl"]), r, t, batches, prepare)
        results[strategy] = run_sweep(sweep, batches, prepare, ro, strategy)
    np.testing.assert_allclose(results["batched"].metrics["kl"], results["naive"].metrics["kl"], atol=1e-5)
    assert results["batched"].forward_passes < results["naive"].forward_passes
    kl = results["batched"].metrics["kl"].mean(1)
    assert kl[1] > kl[0] > 0  # two used neurons move the output more than one


def test_tabulate_averages_random_draws_and_bootstraps_sentences():
    class RO:
        name, metrics = "toy", ("m",)

    s = _settings(n_bootstrap=200)
    p = type("P", (), {})()
    p.rows = [("a", "top", 1), ("a", "random", 1)]
    p.row_specs = [[0], [1, 2]]
    vals = np.asarray([[1.0, 1.0, 0.0, 0.0], [0.0, 1.0, 0.0, 1.0], [1.0, 0.0, 1.0, 0.0]])
    t = tabulate(p, {"m": vals}, np.asarray([0, 0, 1, 1]), RO(), "Number", s)
    assert list(t.value) == [0.5, 0.5]
    assert (t.n_units == 4).all() and (t.n_sentences == 2).all()
    assert (t.ci_low <= t.value).all() and (t.value <= t.ci_high).all()


def test_antverg_config(planted, planted_corpus):
    c = UsedConfig.antverg()
    assert (c.edit, c.fit.aggregation, c.min_forms, c.n_sentences) == \
        (iv.Translate(alpha="scaled", beta=8.0), "mean", 100, 6500)
    assert UsedConfig.antverg(n_sentences=300).n_sentences == 300
    assert UsedConfig.antverg(fit=UsedFit(layer=1)).fit.aggregation == "mean"
    assert Config.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    # the planted vocabulary has fewer than 100 forms per Number value: both are dropped, by name
    with pytest.raises(ValueError, match="class value\\(s\\) remain"), pytest.warns(UserWarning, match="Plur .*Sing"):
        evaluate_used(planted, planted_corpus[:40], "Number", {"r": ["L1.N5", "L1.N23"]},
                      UsedConfig.antverg(ks=[1]), progress=False)
    # the same settings spelled out, without the forms threshold the synthetic vocabulary cannot meet
    ranking = {"r": [str(n) for n in planted.planted.used["Number"]] + ["L1.N1"]}
    t = evaluate_used(planted, planted_corpus[:40], "Number", ranking,
                      _settings([2], edit=iv.Translate(alpha="scaled", beta=8.0), aggregation="mean",
                                n_sentences=6500, n_bootstrap=0, bottom=False, n_random=0), progress=False)
    assert t.config["edit"] == {"type": "Translate", "alpha": "scaled", "beta": 8.0}
    assert t.table.value.iloc[0] > 0.5


def test_config_checks_name_the_field():
    with pytest.raises(ValueError, match="positions='attribute' with Translate"):
        UsedConfig(positions="all")
    with pytest.raises(ValueError, match="ks must be positive"):
        UsedConfig(ks=[0])
    with pytest.raises(ValueError, match="Resample.pool"):
        iv.Resample(pool="nearby")
    with pytest.raises(ValueError, match="strategy"):
        _settings(strategy="fast")
    with pytest.raises(ValueError, match="edit must be an edit object"):
        UsedConfig(edit="zero")
    assert UsedConfig(ks=5).ks == (5,)


def test_scaled_translation_needs_the_ranking_length(planted, positions):
    means = torch.zeros(2, 2)
    scaled = iv.Translate(alpha="scaled")
    with pytest.warns(UserWarning, match="n_ranked"):
        scaled.bind(planted, ["L1.N5", "L1.N23"], means=means, positions=positions)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = scaled.bind(planted, ["L1.N5", "L1.N23"], means=means, positions=positions, n_ranked=64)
    np.testing.assert_allclose(t.alpha.numpy(), iv.scaled_alpha(64, 8.0, [0, 1]), rtol=1e-6)
    with pytest.raises(ValueError, match="n_ranked=1 is smaller"):
        scaled.bind(planted, ["L1.N5", "L1.N23"], means=means, positions=positions, n_ranked=1)


def test_every_registered_edit_runs_and_set_values_zero_is_zero_ablation(planted, planted_corpus):
    """One registry (iv.EDITS) names every edit the evaluation runs; SetValues(0.0) is the same arithmetic as
    Zero(), batched and naive."""
    assert sorted(iv.EDITS) == ["mean", "resample", "set_values", "translate", "zero"]
    assert all(iv.edit_from_name(name).name == name for name in iv.EDITS)
    ranking = {"r": [str(n) for n in planted.planted.used["Number"]] + ["L1.N1"]}
    tables = {}
    for edit in (iv.Zero(), iv.SetValues(values=0.0)):
        for strategy in ("batched", "naive"):
            config = _settings([1, 2], edit=edit, n_random=1, bottom=False, n_bootstrap=20, strategy=strategy)
            tables[edit.name, strategy] = evaluate_used(planted, planted_corpus[:24], "Number", ranking, config,
                                                        progress=False).table.drop(columns=["edit"])
    first = tables["zero", "batched"]
    for key, table in tables.items():
        pd.testing.assert_frame_equal(table, first, check_exact=False, atol=1e-9, rtol=0)
    with pytest.raises(ValueError, match="needs one number"):
        UsedConfig(edit=iv.SetValues(values=[1.0, 2.0]))
