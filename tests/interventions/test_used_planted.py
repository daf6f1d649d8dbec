"""The used evaluation against ground truth: on the planted testbed the used Number neurons change the model's
predictions and the encoded-but-unused ones do not, although a probe reads both perfectly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

import tl_neuronprobe as tnp
from tl_neuronprobe.interventions.readouts import SAME, VALUE_CHANGED, WRONG_LEMMA, Lexicon
from tl_neuronprobe.evaluation.compare import compare_encoded_used
from tl_neuronprobe.evaluation.stats import bootstrap_means, excess_over_random

from used_helpers import run_used
from tl_neuronprobe.data.extraction import ExtractConfig


def value(table, ranking, selection, k, metric):
    table = getattr(table, "table", table)  # a UsedResult or its table
    row = table[(table.ranking == ranking) & (table.selection == selection) & (table.k == k)
                & (table.metric == metric)]
    assert len(row) == 1, (ranking, selection, k, metric)
    return float(row.value.iloc[0])


@pytest.fixture(scope="module")
def translated(planted, planted_corpus, planted_rankings):
    return run_used(planted, planted_corpus, "Number", planted_rankings, [1, 2, 4], method="translate",
                         progress=False, n_bootstrap=300, seed=0, batch_size=64)


def test_probes_read_used_and_unused_neurons_equally_well(planted, planted_corpus):
    acts = tnp.extract(planted, planted_corpus, ExtractConfig(site="mlp.post", layers=[1]), progress=False)
    X, y, _ = acts.dataset("Number")
    acc = {}
    for group in ("used", "unused"):
        cols = acts.columns(getattr(planted.planted, group)["Number"])
        acc[group] = cross_val_score(LogisticRegression(max_iter=500), X[:, cols].numpy(), y.numpy(), cv=3).mean()
    assert acc["used"] > 0.95 and acc["unused"] > 0.95, acc
    assert abs(acc["used"] - acc["unused"]) < 0.01, acc


def test_translating_used_neurons_flips_predictions_unused_do_not(translated):
    t = translated.table
    assert translated.readout == "identity"  # chosen automatically: the planted model predicts its input
    assert value(t, "used_first", "top", 2, "changed") > 0.9
    assert value(t, "used_first", "top", 2, "correct_lemma_wrong_value") > 0.4
    assert value(t, "unused_first", "top", 2, "changed") == 0.0
    assert value(t, "unused_first", "top", 2, "correct_lemma_wrong_value") == 0.0
    # random neurons of the same k rarely hit both used ones
    assert value(t, "used_first", "random", 2, "changed") < 0.2
    # the unused-first ranking reaches the used neurons at k=4, and then flips too
    assert value(t, "unused_first", "top", 4, "changed") > 0.9
    # bottom-k never contains a planted neuron at these k
    assert value(t, "used_first", "bottom", 4, "changed") == 0.0


def test_table_is_tidy_with_bootstrap_intervals(translated):
    t = translated.table
    assert list(t.columns) == ["attribute", "edit", "readout", "ranking", "selection", "k", "metric", "value",
                               "ci_low", "ci_high", "n_units", "n_sentences"]
    assert set(t.selection) == {"top", "bottom", "random"}
    assert set(t.metric) == {"changed", "correct_lemma_wrong_value", "wrong_lemma"}
    assert len(t) == 2 * 3 * 3 * 3
    assert ((t.ci_low <= t.value + 1e-12) & (t.value <= t.ci_high + 1e-12)).all()
    flip = t[(t.ranking == "used_first") & (t.selection == "top") & (t.k == 2) & (t.metric == "changed")].iloc[0]
    assert 0 < flip.ci_high - flip.ci_low < 0.1
    info = translated.extra
    assert info["forward_passes"] < info["interventions"] * info["batches"]
    ex = excess_over_random(t, "changed")
    assert ex.loc[(ex.ranking == "used_first") & (ex.selection == "top") & (ex.k == 2), "excess"].iloc[0] > 0.7


@pytest.mark.parametrize("method", ["zero", "mean", "resample"])
def test_ablations_hit_used_neurons_only(planted, planted_corpus, planted_rankings, method):
    t = run_used(planted, planted_corpus[:120], "Number", planted_rankings, [2], method=method,
                      progress=False, n_bootstrap=0, bottom=False, n_random=1)
    used = value(t, "used_first", "top", 2, "changed")
    assert used > 0.15
    assert value(t, "unused_first", "top", 2, "changed") == 0.0


def test_batched_cached_and_naive_strategies_agree(planted, planted_corpus, planted_rankings, generation):
    corpus = planted_corpus[:32]
    kw = dict(progress=False, n_bootstrap=50, n_random=1, seed=3, batch_size=16, bottom=False)
    strategies = ["batched", "naive"] + (["cached"] if generation == "hooked" else [])
    for method in ("translate", "resample"):
        tables = {s: run_used(planted, corpus, "Number", planted_rankings, [1, 2, 8], method=method,
                                   strategy=s, alpha="scaled", **kw) for s in strategies}
        for s in strategies[1:]:
            pd.testing.assert_frame_equal(tables[s].table, tables["batched"].table, atol=1e-9, rtol=0)
        assert tables["naive"].extra["forward_passes"] > 2 * tables["batched"].extra["forward_passes"]


def test_same_seed_same_table_and_seed_matters_for_random(planted, planted_corpus, planted_rankings):
    # a continuous readout: random neurons move the output a little, by an amount that depends on which
    kw = dict(progress=False, n_bootstrap=100, bottom=False, readout="divergence", divergence=["kl", "hidden_distance"])
    a = run_used(planted, planted_corpus[:80], "Number", planted_rankings, [8], seed=1, **kw).table
    b = run_used(planted, planted_corpus[:80], "Number", planted_rankings, [8], seed=1, **kw).table
    pd.testing.assert_frame_equal(a, b)
    c = run_used(planted, planted_corpus[:80], "Number", planted_rankings, [8], seed=2, **kw).table
    top_a, top_c = a[a.selection == "top"], c[c.selection == "top"]
    rand_a, rand_c = a[a.selection == "random"], c[c.selection == "random"]
    # the same neurons give the same effect; another seed draws other random neurons and other bootstrap samples
    np.testing.assert_array_equal(top_a.value.to_numpy(), top_c.value.to_numpy())
    assert not np.allclose(rand_a.value.to_numpy(), rand_c.value.to_numpy()), rand_a.value.tolist()
    assert not np.allclose(top_a.ci_low.to_numpy(), top_c.ci_low.to_numpy())


def test_rankings_as_columns_fitted_rankers_and_names(planted, planted_corpus):
    used = [5, 23]
    class Fitted:
        order_ = np.asarray(used + [i for i in range(64) if i not in used])

    t = run_used(planted, planted_corpus[:60], "Number", {"cols": np.asarray(Fitted.order_), "obj": Fitted()},
                      [2], layer=1, progress=False, n_bootstrap=0, bottom=False, n_random=0)
    assert value(t, "cols", "top", 2, "changed") == value(t, "obj", "top", 2, "changed") > 0.9
    with pytest.raises(ValueError, match="pass layer="):
        run_used(planted, planted_corpus[:20], "Number", [np.arange(64)], [2], progress=False)
    pytest.importorskip("tl_neuronprobe.rankers")
    t = run_used(planted, planted_corpus, "Number", ["probeless"], [2, 4], layer=1, progress=False,
                      n_bootstrap=0, bottom=False)
    assert set(t.table.ranking) == {"probeless"}
    assert t.readout == "identity" and [str(n) for n in t.rankings["probeless"][:1]]


def test_clear_errors(planted, planted_corpus, planted_rankings):
    c = planted_corpus[:20]
    with pytest.raises(ValueError, match="unknown edit 'scramble'"):
        run_used(planted, c, "Number", planted_rankings, [2], method="scramble", progress=False)
    with pytest.raises(KeyError, match="no word .* has attribute 'Gender'"):
        run_used(planted, c, "Gender", planted_rankings, [2], progress=False)
    with pytest.raises(ValueError, match="k=100 is larger than ranking"):
        run_used(planted, c, "Number", {"short": ["L1.N5", "L1.N23"]}, [100], progress=False)
    with pytest.raises(ValueError, match="out of range"):
        run_used(planted, c, "Number", {"bad": ["L1.N500"]}, [1], progress=False)
    with pytest.raises(ValueError, match="translation needs each position's class"):
        run_used(planted, c, "Number", planted_rankings, [2], positions="all", progress=False)
    with pytest.raises(ValueError, match="ks must be positive"):
        run_used(planted, c, "Number", planted_rankings, [0], progress=False)


def test_lexicon_from_the_corpus_judges_forms():
    corpus = tnp.Corpus.synthetic(300, seed=0)
    lex = Lexicon.from_corpus(corpus)
    assert lex.lemmas("keys") == {"key"}
    assert lex.values("keys", "Number") == {"Plur"}
    assert lex.judge("keys", "key", "Plur", "Number") == SAME
    assert lex.judge("key", "key", "Plur", "Number") == VALUE_CHANGED
    assert lex.judge("dogs", "key", "Plur", "Number") == WRONG_LEMMA
    assert lex.judge("zebras", "key", "Plur", "Number") == WRONG_LEMMA
    runs = {"lemma": "run", "upos": "VERB", "Tense": "Pres", "Person": "3", "Number": "Sing", "Agreement": "Sing"}
    assert lex.alternatives(runs, "Number") == {"Sing": ["runs"], "Plur": ["run"]}
    was = {"lemma": "be", "upos": "AUX", "Tense": "Past", "Person": "3", "Number": "Sing"}
    assert lex.alternatives(was, "Number") == {"Sing": ["was"], "Plur": ["were"]}
    assert lex.analyses("KEYS")[0]["lemma"] == "key"  # case-insensitive fallback


def test_bootstrap_resamples_sentences():
    rng = np.random.default_rng(0)
    sent = np.repeat(np.arange(50), 4)
    vals = rng.random((2, 200))
    vals[1] = vals[0] + 1.0
    point, lo, hi = bootstrap_means(vals, sent, 500, 0.9, seed=0)
    np.testing.assert_allclose(point, vals.mean(1))
    np.testing.assert_allclose(hi[1] - lo[1], hi[0] - lo[0])  # paired draws: a shifted row shifts its CI
    assert np.all(lo < point) and np.all(point < hi)
    p2, lo2, hi2 = bootstrap_means(vals[:, :40], sent[:40], 500, 0.9, seed=0)
    assert hi2[0] - lo2[0] > hi[0] - lo[0]  # fewer sentences, wider interval


def test_plot_and_compare_encoded_used(translated, tmp_path):
    fig = translated.plot(tmp_path / "used.png")
    assert (tmp_path / "used.png").stat().st_size > 5000
    import matplotlib.pyplot as plt

    plt.close(fig)
    # an encoded table in evaluate_encoded's wide format where both rankings encode equally well
    enc = pd.DataFrame([dict(attribute="Number", ranking=r, probe="logistic", selection="top", k=k,
                             accuracy=acc) for r, acc in (("used_first", 0.99), ("unused_first", 1.0))
                        for k in (1, 2, 4)])
    cmp = compare_encoded_used(enc, translated)
    cmp.plot(tmp_path / "cmp.png")
    assert cmp.per_k.set_index("k").loc[2, "best_encoded"] == "unused_first"
    assert cmp.per_k.set_index("k").loc[2, "best_used"] == "used_first"
    assert bool(cmp.per_k.set_index("k").loc[2, "disagree"])
    assert "disagree at k = 2" in cmp.summary and "unused_first encodes best" in cmp.summary
    assert "unused_first" in cmp.per_k.set_index("k").loc[2, "at_or_below_random"]
    assert (tmp_path / "cmp.png").stat().st_size > 5000
    plt.close("all")
    with pytest.raises(ValueError, match="share no"):
        compare_encoded_used(enc.assign(k=enc.k + 100), translated)


def test_edit_variants_and_all_positions(planted, planted_corpus, planted_rankings):
    c = planted_corpus[:60]
    kw = dict(progress=False, n_bootstrap=0, bottom=False, n_random=0)
    target = run_used(planted, c, "Number", planted_rankings, [2], method="mean", mean_of="target", **kw)
    dataset = run_used(planted, c, "Number", planted_rankings, [2], method="mean", **kw)
    # setting the used neurons to the *other* class's mean flips more than setting them to the dataset mean
    assert value(target, "used_first", "top", 2, "changed") > value(dataset, "used_first", "top", 2, "changed")
    assert value(target, "used_first", "top", 2, "changed") > 0.9
    other = run_used(planted, c, "Number", planted_rankings, [2], method="resample",
                          resample_from="other_class", **kw)
    anyone = run_used(planted, c, "Number", planted_rankings, [2], method="resample", **kw)
    assert value(other, "used_first", "top", 2, "changed") > value(anyone, "used_first", "top", 2, "changed")
    allpos = run_used(planted, c, "Number", planted_rankings, [2], method="zero", positions="all", **kw)
    assert value(allpos, "unused_first", "top", 2, "changed") == 0.0
    assert value(allpos, "used_first", "top", 2, "changed") > 0.1


class _Tok:
    """Word-piece-like decoding: ids index a list of pieces; '##' pieces attach to the previous one."""

    pieces = ["key", "##s", "dog", "cat", "##s", "##x", "cats"]

    def decode(self, ids, skip_special_tokens=False):
        out = ""
        for i in ids:
            p = self.pieces[i]
            out += p[2:] if p.startswith("##") else (" " + p if out else p)
        return out


def test_identity_readout_judges_multi_token_words():
    from tl_neuronprobe.interventions.readouts import IdentityReadout

    corpus = tnp.Corpus.from_records([{"words": ["keys", "key", "cats", "cat", "dog"],
                                       "lemma": ["key", "key", "cat", "cat", "dog"],
                                       "Number": ["Plur", "Sing", "Plur", "Sing", "Sing"]}])
    ro = IdentityReadout(Lexicon.from_corpus(corpus))
    ro.adapter = type("A", (), {"tokenizer": _Tok()})()
    ro.attribute = "Number"
    # two units: "keys" (tokens key ##s) and "cats" (cat ##s); clean predictions reproduce them
    ro.unit_ref = [("key", "Plur"), ("cat", "Plur")]
    ro.tok_counts = [np.asarray([2, 2])]
    ro.clean_preds = [torch.tensor([0, 1, 3, 4])]
    pred = np.asarray([[0, 1, 3, 4],    # unchanged
                       [0, 5, 3, 5],    # "keyx" (unknown -> wrong lemma), "catx" (wrong lemma)
                       [0, 0, 2, 4]])   # "key key" unknown, "dogs" -> wrong lemma (dog attested only as "dog")
    res = ro.finalize({"pred": pred})
    np.testing.assert_array_equal(res["changed"], [[0, 0], [1, 1], [1, 1]])
    np.testing.assert_array_equal(res["wrong_lemma"], [[0, 0], [1, 1], [1, 1]])
    single = IdentityReadout(Lexicon.from_corpus(corpus))
    single.adapter, single.attribute = ro.adapter, "Number"
    single.unit_ref, single.tok_counts = [("cat", "Plur")], [np.asarray([1])]
    single.clean_preds = [torch.tensor([6])]  # "cats" as one token
    res = single.finalize({"pred": np.asarray([[3], [2], [6]])})  # "cat" (same lemma, other value), "dog", same
    np.testing.assert_array_equal(res["changed"], [[1], [1], [0]])
    res = {k: v[:2] for k, v in res.items()}
    np.testing.assert_array_equal(res["changed"], [[1], [1]])
    np.testing.assert_array_equal(res["correct_lemma_wrong_value"], [[1], [0]])
    np.testing.assert_array_equal(res["wrong_lemma"], [[0], [1]])


def test_a_readout_object_can_be_reused(planted, planted_corpus, planted_rankings):
    from tl_neuronprobe.interventions.readouts import IdentityReadout

    ro = IdentityReadout()
    kw = dict(readout=ro, progress=False, n_bootstrap=50, bottom=False, n_random=1)
    a = run_used(planted, planted_corpus[:40], "Number", planted_rankings, [2], **kw)
    b = run_used(planted, planted_corpus[:40], "Number", planted_rankings, [2], **kw)
    pd.testing.assert_frame_equal(a.table, b.table)


def test_a_callable_metric_is_a_readout(planted, planted_corpus, planted_rankings):
    def top_changed(clean, edited):  # per token: did the top prediction change
        return (clean.argmax(-1) != edited.argmax(-1)).float()

    t = run_used(planted, planted_corpus[:40], "Number", planted_rankings, [2], readout=top_changed,
                 n_bootstrap=0, bottom=False, n_random=0)
    assert t.readout == "metric" and set(t.table.metric) == {"top_changed"}
    assert value(t, "used_first", "top", 2, "top_changed") > value(t, "unused_first", "top", 2, "top_changed")
    assert t.config["readout"]["type"] == "callable"


def test_identity_lexicon_from_a_larger_corpus_counts_flips_a_small_one_cannot_judge(planted, planted_rankings):
    """Few evaluated sentences rarely hold the other Number's form of their words, so their own lexicon calls a
    translated "dog" -> "dogs" a wrong lemma; ``Identity(lexicon="synthetic:400")`` knows both forms."""
    corpus = tnp.testing.planted_corpus(6, seed=11)
    own = run_used(planted, corpus, "Number", planted_rankings, [2], readout=tnp.interventions.Identity(),
                   n_bootstrap=0, n_random=0, bottom=False)
    wide = run_used(planted, corpus, "Number", planted_rankings, [2],
                    readout=tnp.interventions.Identity(lexicon="synthetic:400"), n_bootstrap=0, n_random=0,
                    bottom=False)

    def v(result, metric):
        t = result.table
        return float(t[(t.ranking == "used_first") & (t.selection == "top") & (t.metric == metric)].value.iloc[0])

    assert v(own, "changed") == v(wide, "changed") > 0.5  # the same predictions, judged differently
    assert v(wide, "correct_lemma_wrong_value") > v(own, "correct_lemma_wrong_value") + 0.2
    assert v(wide, "wrong_lemma") < v(own, "wrong_lemma")
