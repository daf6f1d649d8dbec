"""Word sets as concepts (issue 25, part 2): a planted neuron that fires on a semantic set of words (the
"clothing" case) is described as that set, with the set's size as the description's length; sets from shuffled
vectors (the label-free control) and single-form concepts alone do not describe it."""

from __future__ import annotations

import numpy as np
import pytest

import tl_neuronprobe as tnp
from tl_neuronprobe.descriptions import DescribeConfig, Search, describe, form_vectors, word_set_concepts

CLOTHING = ["clothes", "shirt", "pants", "wear", "jacket", "dress", "shoes", "coat", "skirt", "socks", "hat",
            "scarf"]
FOOD = ["bread", "rice", "soup", "apple", "cheese", "salad", "meat", "fish", "pasta", "cake", "beans", "egg"]
FILLER = [f"w{i}" for i in range(60)]


def _planted(seed: int = 0):
    """600 sentences of 8 words: filler, with a clothing and a food word now and then. L0.N0 fires on clothing
    words, L0.N1 on food words, L0.N2 is noise. Vectors: each set's forms around its own centre, filler random."""
    rng = np.random.default_rng(seed)
    records, rows = [], []
    for s in range(600):
        words = list(rng.choice(FILLER, 8))
        for pool, p in ((CLOTHING, 0.25), (FOOD, 0.25)):
            if rng.random() < p:
                words[int(rng.integers(8))] = str(rng.choice(pool))
        records.append({"words": words, "id": f"s{s}"})
        for w in words:
            rows.append([3.0 * (w in CLOTHING), 3.0 * (w in FOOD), 0.0])
    corpus = tnp.Corpus.from_records(records, name="planted-sets")
    X = np.asarray(rows, dtype=np.float32) + rng.normal(0, 0.3, size=(len(rows), 3)).astype(np.float32)
    centres = rng.normal(size=(2, 64))
    vec = {w: centres[0] + 0.2 * rng.normal(size=64) for w in CLOTHING}
    vec.update({w: centres[1] + 0.2 * rng.normal(size=64) for w in FOOD})
    vec.update({w: rng.normal(size=64) for w in FILLER})
    return corpus, tnp.Activations.from_array(X, corpus), vec


@pytest.fixture(scope="module")
def planted_sets():
    return _planted()


def _describe(corpus, acts, discovered=None):
    config = DescribeConfig(sources=("surface",), search=Search(max_length=3), seed=0)
    return describe(acts, corpus, config=config, discovered=discovered)


def test_a_semantic_set_neuron_is_described_by_its_set(planted_sets):
    corpus, acts, vec = planted_sets
    sets = word_set_concepts(corpus.words, lambda forms: np.stack([vec[f] for f in forms]), n_sets=40)
    assert set(sets.table["family"]) == {"set"} and "size" in sets.table
    d = _describe(corpus, acts, sets).table.set_index("neuron")
    for neuron, members in (("L0.N0", CLOTHING), ("L0.N1", FOOD)):
        row = d.loc[neuron]
        assert row["family"] == "set" and row["formula"].startswith("set="), row["formula"]
        assert row["description"].startswith("one of {") and all(w in members for w in
                                                                  row["description"][8:].rstrip(", ...}").split(", "))
        assert row["test_f1"] > 0.9
    s = _describe(corpus, acts, sets).scores
    own = s[(s["method"] == "description") & (s["neuron"] == "L0.N0")].iloc[0]
    assert own["length"] == 12  # the set counts its members


def test_shuffled_vectors_and_single_forms_do_not_describe_it(planted_sets):
    corpus, acts, vec = planted_sets
    rng = np.random.default_rng(1)
    forms = sorted(vec)
    shuffled = dict(zip(forms, [vec[f] for f in rng.permutation(forms)]))
    noise_sets = word_set_concepts(corpus.words, lambda fs: np.stack([shuffled[f] for f in fs]), n_sets=40)
    d = _describe(corpus, acts, noise_sets).table.set_index("neuron")
    assert d.loc["L0.N0", "test_f1"] < 0.7  # sets of unrelated words cover the clothing words poorly
    alone = _describe(corpus, acts).table.set_index("neuron")  # forms only: at most 3 of the 12 in a formula
    assert alone.loc["L0.N0", "test_f1"] < 0.6


def test_word_sets_are_seeded_and_check_their_input(planted_sets):
    corpus, _, vec = planted_sets
    get = lambda forms: np.stack([vec[f] for f in forms])  # noqa: E731
    a, b = word_set_concepts(corpus.words, get, n_sets=40), word_set_concepts(corpus.words, get, n_sets=40)
    assert list(a.table["name"]) == list(b.table["name"])
    with pytest.raises(ValueError, match="rows for"):
        word_set_concepts(corpus.words, np.zeros((3, 4)))
    with pytest.raises(ValueError, match="NaN"):
        word_set_concepts(corpus.words, lambda forms: np.full((len(forms), 4), np.nan))


@pytest.mark.minilm
def test_form_vectors_read_the_models_input_embedding(minilm):
    adapter = tnp.ModelAdapter(minilm)
    v = form_vectors(minilm, ["shirt", "pants", "the"])
    ids = adapter.tokenizer("shirt", add_special_tokens=False)["input_ids"]
    np.testing.assert_allclose(v[0], adapter.W_E[ids].mean(0).detach().numpy(), rtol=1e-6)
    cos = v @ v.T / np.outer(np.linalg.norm(v, axis=1), np.linalg.norm(v, axis=1))
    assert cos[0, 1] > cos[0, 2]  # MiniLM's embedding puts shirt nearer pants than "the"
