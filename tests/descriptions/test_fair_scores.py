"""Scores that compare a description fairly with a lookup table (issue 25, part 3): the description's length, a
length-matched lookup baseline, delphi-style detection and fuzzing over held-out sentences judged by the
description itself, and descriptions at a fixed activation level (``Search(threshold="quantile")``)."""

from __future__ import annotations

import numpy as np
import pytest

from tl_neuronprobe.descriptions import DescribeConfig, Search, describe
from tl_neuronprobe.descriptions._score import context_scores, lookup_top_forms


def test_context_scores_by_hand():
    # 4 sentences of 3 words; one neuron. It fires on sentence 0 (word 1) and sentence 2 (words 6, 7).
    sentences = np.repeat([10, 11, 12, 13], 3)
    x = np.array([0, 5, 0, 0, 0, 0, 3, 9, 0, 0, 0, 0], dtype=np.float32)[:, None]
    fire = x > 1
    # the description matches word 1 and word 7 (the top word of both firing sentences) and word 3 (sentence 1)
    desc = np.zeros_like(fire)
    desc[[1, 7, 3], 0] = True
    s = context_scores(desc, fire, x, sentences, seed=0)
    # detection: firing sentences {0, 2} both called; silent {1, 3}: 1 called, 3 not -> 0.5 * (1 + 0.5)
    assert s["context_detection_bacc"][0] == pytest.approx(0.75)
    # fuzzing: right highlights (words 1, 7) match; wrong highlights are silent words, none matches -> 1.0
    assert s["fuzzing_bacc"][0] == pytest.approx(1.0)
    # a description matching every word calls everything: chance on both
    every = context_scores(np.ones_like(fire), fire, x, sentences)
    assert every["context_detection_bacc"][0] == pytest.approx(0.5) and every["fuzzing_bacc"][0] == pytest.approx(0.5)
    # never firing: undefined, not a number that looks like a score
    quiet = context_scores(desc, np.zeros_like(fire), x, sentences)
    assert np.isnan(quiet["context_detection_bacc"][0]) and np.isnan(quiet["fuzzing_bacc"][0])


def test_fuzzing_is_deterministic_and_uses_the_seed():
    rng = np.random.default_rng(0)
    sentences = np.repeat(np.arange(50), 8)
    x = rng.normal(size=(400, 6)).astype(np.float32)
    fire = x > 1.0
    desc = rng.random((400, 6)) < 0.3
    a, b = context_scores(desc, fire, x, sentences, seed=3), context_scores(desc, fire, x, sentences, seed=3)
    np.testing.assert_array_equal(a["fuzzing_bacc"], b["fuzzing_bacc"])
    assert not np.array_equal(a["fuzzing_bacc"], context_scores(desc, fire, x, sentences, seed=4)["fuzzing_bacc"])


def test_lookup_top_forms_takes_the_m_most_active_forms():
    forms = np.array([0, 1, 2, 3, 0, 1, 2, 3, 4, 0, 1, 2])
    x = np.array([9, 5, 1, 0, 9, 5, 1, 0, 50, 9, 5, 1], dtype=np.float64)[:, None].repeat(2, 1)
    fit, test = np.arange(9), np.arange(9, 12)
    fit_mask, test_mask = lookup_top_forms(forms, fit, test, x[fit], np.array([1, 2]))
    # form 4 (mean 50) is seen once: below min_count=2, never chosen
    assert fit_mask[:, 0].tolist() == [True, False, False, False, True, False, False, False, False]
    assert test_mask[:, 1].tolist() == [True, True, False]
    assert not fit_mask[8].any()


@pytest.fixture(scope="module")
def levels(testbed):
    return {q: describe(testbed.acts, config=DescribeConfig(seed=0, quantile=q, search=Search(threshold="quantile")),
                        concepts=testbed.concepts) for q in (0.01, 0.05)}


def test_a_level_fixes_each_neurons_firing_share(levels, described):
    for q, d in levels.items():
        rate = d.table["fire_rate"].to_numpy()
        assert np.all(np.abs(rate - q) <= max(0.25 * q, 0.004)), (q, rate.min(), rate.max())
    adaptive = described.table["fire_rate"].to_numpy()  # control: the adaptive threshold follows the concept
    assert np.abs(adaptive - 0.05).max() > 0.05


def test_scores_carry_length_and_the_matched_lookup(described, testbed):
    s = described.scores
    assert {"context_detection_bacc", "fuzzing_bacc", "length"} <= set(s.columns)
    assert set(s["method"]) >= {"description", "lookup_matched", "token_lookup"}
    desc = s[s["method"] == "description"].set_index("neuron")
    matched = s[s["method"] == "lookup_matched"].set_index("neuron")
    t = described.table.set_index("neuron")
    np.testing.assert_array_equal(desc["length"].to_numpy(), np.where(t["described"], t["n_terms"], 0))
    np.testing.assert_array_equal(matched["length"].to_numpy(), np.maximum(desc["length"].to_numpy(), 1))
    # the full lookup's length: the fit forms whose mean activation is above the neuron's threshold, by hand
    from tl_neuronprobe.descriptions._score import sentence_split

    lookup = s[s["method"] == "token_lookup"].set_index("neuron")
    fit, _ = sentence_split(testbed.acts.sentence_ids, described.meta["test_size"], described.meta["seed"])
    forms = np.asarray([w.lower() for w in testbed.acts.words])[fit]
    X = testbed.acts.X.numpy()[fit]
    for j, neuron in enumerate(described.neurons[:12]):
        means = {f: X[forms == f, j].mean() for f in np.unique(forms)}
        expected = sum(v > t["threshold"].iloc[j] for v in means.values())
        assert lookup.loc[neuron, "length"] == expected, neuron


def test_descriptions_detect_and_fuzz_planted_neurons_and_a_random_concept_does_not(described, testbed):
    m = described.compare_methods().set_index("method")
    assert m.loc["description", "context_detection_bacc"] > 0.8
    assert m.loc["description", "fuzzing_bacc"] > 0.85
    assert abs(m.loc["random_concept", "fuzzing_bacc"] - 0.5) < 0.1  # control: chance
    assert m.loc["random_concept", "context_detection_bacc"] < 0.65


def test_context_scores_do_not_depend_on_the_chunk():
    rng = np.random.default_rng(2)
    sentences = np.repeat(np.arange(40), 6)
    x = rng.normal(size=(240, 9)).astype(np.float32)
    fire, desc = x > 1.0, rng.random((240, 9)) < 0.3
    whole, chunked = context_scores(desc, fire, x, sentences, chunk=512), context_scores(desc, fire, x, sentences,
                                                                                         chunk=4)
    for key in whole:
        np.testing.assert_array_equal(whole[key], chunked[key])


def test_top_and_random_simulation_by_hand():
    from tl_neuronprobe.descriptions._score import codes, top_and_random_corr

    rng = np.random.default_rng(5)
    ids = np.repeat(np.arange(30), 5)
    sentences = codes(ids)  # the function numbers sentences the same way (sorted ids as strings)
    assert sorted(set(sentences)) == list(range(30))
    x = rng.normal(size=(150, 3))
    x[5:10, 0] += 6  # sentence id 1 holds neuron 0's top activations
    pred = x + rng.normal(scale=1.0, size=x.shape)
    got = top_and_random_corr(pred, x, ids, n_top=2, n_random=3, seed=0)
    # by hand: the 2 sentences with the highest peak, then the first 3 others in the seeded random order
    order = np.random.default_rng(0).permutation(30)
    for j in range(3):
        peaks = np.array([x[sentences == s, j].max() for s in range(30)])
        top = set(np.argsort(-peaks)[:2].tolist())
        chosen = top | set([s for s in order if s not in top][:3])
        w = np.isin(sentences, list(chosen))
        assert got[j] == pytest.approx(np.corrcoef(pred[w, j], x[w, j])[0, 1], abs=1e-9)
    assert sentences[5] in set(np.argsort(-np.array([x[sentences == s, 0].max() for s in range(30)]))[:2].tolist())


def test_levels_read_together_simulate_a_graded_neuron():
    """L0.N0 is 6 on tag X (5% of words), 3 on tag Y (12%), ~0 elsewhere, over 200 word forms: the top 4%
    level is described as X, the top 15% as X or Y; read together they predict the three levels. Each level alone
    predicts two values; the length-matched lookup of forms and a noise neuron (L0.N1) are the controls."""
    import tl_neuronprobe as tnp
    from tl_neuronprobe.descriptions import level_simulation

    rng = np.random.default_rng(0)
    records, rows = [], []
    for s in range(500):
        words = [f"f{i}" for i in rng.integers(0, 200, 10)]
        tags = rng.choice(["X", "Y", "Z"], size=10, p=[0.05, 0.12, 0.83])
        records.append({"words": words, "tag": list(tags), "id": f"s{s}"})
        rows += [[{"X": 6.0, "Y": 3.0, "Z": 0.0}[t], 0.0] for t in tags]
    corpus = tnp.Corpus.from_records(records)
    X = np.asarray(rows, dtype=np.float32) + rng.normal(0, 0.5, size=(len(rows), 2)).astype(np.float32)
    acts = tnp.Activations.from_array(X, corpus)
    levels = {q: describe(acts, corpus, config=DescribeConfig(sources=("annotations", "surface"), quantile=q,
                                                              search=Search(max_length=2, threshold="quantile")))
              for q in (0.04, 0.15)}
    graded = level_simulation(levels, acts).set_index(["method", "neuron"])
    g = graded.loc[("graded", "L0.N0")]
    assert g["simulation_corr"] > 0.9 and g["simulation_top_random"] > 0.9
    for d in levels.values():  # each level alone: two values only
        own = d.scores[(d.scores["method"] == "description") & (d.scores["neuron"] == "L0.N0")].iloc[0]
        assert g["simulation_corr"] > own["simulation_corr"] + 0.03
    assert graded.loc[("lookup_matched", "L0.N0"), "simulation_corr"] < 0.5
    assert abs(graded.loc[("graded", "L0.N1"), "simulation_corr"]) < 0.2
    with pytest.raises(ValueError, match="split differently"):
        level_simulation({**levels, "other": describe(acts, corpus, config=DescribeConfig(seed=1))}, acts)
