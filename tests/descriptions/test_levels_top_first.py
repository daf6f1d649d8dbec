"""Descriptions at several levels in one call (issue 25, part 1): each neuron is described by what its strongest
activations share first (``top_description``), every level is scored on its own, saved, reloaded, read together
by ``level_simulation`` and shown level by level in the report.

The planted case is the one from GUM: a neuron whose strongest activations are all clothing words but which also
fires weakly on the very frequent "." and "the". The adaptive threshold fits the bulk ("." or "the"); the top 1%
level names the clothing set. Controls: a noise neuron gets no description at the top level, and word sets from
shuffled vectors do not describe the clothing neuron's top."""

from __future__ import annotations

import numpy as np
import pytest

import tl_neuronprobe as tnp
from tl_neuronprobe.descriptions import DescribeConfig, Descriptions, Search, describe, level_simulation, \
    word_set_concepts
from tl_neuronprobe.reporting import report

CLOTHING = ["clothes", "shirt", "pants", "wear", "jacket", "dress", "shoes", "coat", "skirt", "socks", "hat",
            "scarf"]
FILLER = [f"w{i}" for i in range(80)]


def _planted(seed: int = 0):
    """900 sentences of 9 words ending in "."; "the" now and then, a clothing word in ~6% of the sentences (under
    1% of the words). L0.N0: 3 on clothing, 1 on "." and "the", noise 0.2; L0.N1: noise only."""
    rng = np.random.default_rng(seed)
    records, rows = [], []
    for s in range(900):
        words = list(rng.choice(FILLER, 8))
        if rng.random() < 0.5:
            words[int(rng.integers(8))] = "the"
        if rng.random() < 0.06:
            words[int(rng.integers(8))] = str(rng.choice(CLOTHING))
        words.append(".")
        records.append({"words": words, "id": f"s{s}"})
        rows += [[3.0 * (w in CLOTHING) + 1.0 * (w in (".", "the")), 0.0] for w in words]
    corpus = tnp.Corpus.from_records(records, name="planted-levels")
    X = np.asarray(rows, dtype=np.float32) + rng.normal(0, 0.2, size=(len(rows), 2)).astype(np.float32)
    centre = rng.normal(size=32)
    vec = {w: centre + 0.2 * rng.normal(size=32) for w in CLOTHING}
    vec.update({w: rng.normal(size=32) for w in FILLER + ["the", "."]})
    return corpus, tnp.Activations.from_array(X, corpus), vec


@pytest.fixture(scope="module")
def planted():
    corpus, acts, vec = _planted()
    sets = word_set_concepts(corpus.words, lambda forms: np.stack([vec[f] for f in forms]), n_sets=20)
    config = DescribeConfig(sources=("surface",), search=Search(max_length=2, levels=(0.01,)), seed=0)
    return corpus, acts, vec, config, describe(acts, corpus, config=config, discovered=sets)


def test_the_strongest_activations_are_described_first(planted):
    corpus, acts, vec, config, d = planted
    row = d.table.set_index("neuron").loc["L0.N0"]
    assert row["level"] == "adaptive" and set(row["formula"].split(" OR ")) <= {"word=.", "word=the"}, row["formula"]
    assert row["top_level"] == "0.01" and row["top_formula"].startswith("set="), row["top_formula"]
    assert all(w in CLOTHING for w in row["top_description"][len("one of {"):].rstrip(", ...}").split(", "))
    noise = d.table.set_index("neuron").loc["L0.N1"]  # control: nothing at the top of a noise neuron
    assert not d.levels["0.01"].table.set_index("neuron").loc["L0.N1", "described"]
    assert noise["top_level"] == "adaptive" or not noise["described"]


def test_shuffled_sets_do_not_describe_the_top(planted):
    corpus, acts, vec, config, _ = planted
    forms = sorted(vec)
    perm = np.random.default_rng(1).permutation(len(forms))
    shuffled = {f: vec[forms[p]] for f, p in zip(forms, perm)}
    sets = word_set_concepts(corpus.words, lambda fs: np.stack([shuffled[f] for f in fs]), n_sets=20)
    top = describe(acts, corpus, config=config, discovered=sets).levels["0.01"].table.set_index("neuron")
    assert not top.loc["L0.N0", "formula"].startswith("set=")
    assert top.loc["L0.N0", "test_f1"] < planted[4].levels["0.01"].table.set_index("neuron").loc["L0.N0", "test_f1"]


def test_each_level_is_scored_on_its_own(planted):
    d = planted[4]
    frame = d.levels_frame()
    assert list(frame["level"][:2]) == ["0.01", "adaptive"] and len(frame) == 2 * len(d.neurons)
    at = frame[frame["neuron"] == "L0.N0"].set_index("level")
    assert at.loc["0.01", "test_f1"] > 0.6  # the set holds out on held-out sentences
    assert at.loc["0.01", "length"] >= 2 and at.loc["adaptive", "length"] <= 2  # a set counts its members
    top = d.levels["0.01"]
    assert top.meta["level"] == "0.01" and abs(top.table.set_index("neuron").loc["L0.N1", "fire_rate"] - 0.01) < 0.003
    graded = level_simulation(d, planted[1])
    assert set(graded["method"]) == {"graded", "lookup_matched"} and len(graded) == 2 * len(d.neurons)


def test_levels_save_load_and_report(planted, tmp_path):
    d = planted[4]
    d.save(tmp_path / "d")
    back = Descriptions.load(tmp_path / "d")
    assert list(back.levels) == ["0.01"]
    assert back.levels_frame().equals(d.levels_frame())
    assert back.table["top_description"].equals(d.table["top_description"])
    d.levels = {}  # saving again without levels leaves no stale level behind
    d.save(tmp_path / "d")
    assert not (tmp_path / "d" / "levels").exists() and Descriptions.load(tmp_path / "d").levels == {}
    index = report({"acts": planted[1], "descriptions": back}, tmp_path / "r")
    page = (index.parent / "neurons" / "L0.N0.html").read_text()
    top_row, main_row = page.index("<td>0.01</td>"), page.index("<td>adaptive</td>")
    assert top_row < main_row and "one of {" in page[top_row:main_row]


def test_levels_are_checked_and_can_be_left_out(planted):
    with pytest.raises(ValueError, match="levels are quantiles"):
        Search(levels=(0.0,))
    with pytest.raises(ValueError, match="repeat"):
        Search(levels=(0.01, 0.01))
    corpus, acts, _, config, _ = planted
    one = describe(acts, corpus, config=config.replace(search=config.search.replace(levels=())))
    assert one.levels == {} and one.table["top_description"].equals(one.table["description"])
    same = describe(acts, corpus, config=config.replace(quantile=0.01, search=Search(threshold="quantile",
                                                                                      levels=(0.01,))))
    assert same.levels == {}  # the main level is not described twice
