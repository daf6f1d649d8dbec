"""Formulas: text, parsing, English, and the batched beam search against planted formulas."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from tl_neuronprobe.descriptions import formula_text, parse_formula
from tl_neuronprobe.descriptions._compose import beam_search, render


def test_text_round_trip_and_english():
    terms = ((None, "upos=NOUN"), ("AND", "Number=Plur"), ("AND NOT", "prev.upos=DET"))
    assert formula_text(terms) == "(upos=NOUN AND Number=Plur) AND NOT prev.upos=DET"
    assert parse_formula(formula_text(terms)) == terms
    labels = {"upos=NOUN": "NOUN", "Number=Plur": "plural", "prev.upos=DET": "after DET"}
    keys = {"upos=NOUN": "upos", "Number=Plur": "Number", "prev.upos=DET": "prev.upos"}
    assert render(terms, labels, keys) == "(plural NOUN), not after DET"
    assert render(((None, "upos=NOUN"), ("OR", "prev.upos=DET")), labels, keys) == "NOUN or after DET"


def test_round_trip_with_parentheses_in_concept_names():
    """Real English has concepts such as ``word=(`` and ``lemma=)``: the old parser dropped every parenthesis
    and failed on about 100 of MiniLM layer 3's 1,536 descriptions (``description_effects`` and P@k read them)."""
    cases = [((None, "word=("),),
             ((None, "lemma=)"), ("AND", "next.upos=NUM")),
             ((None, "ngram2=that he"), ("OR", "ngram2=) and"), ("AND", "head_upos=NOUN")),
             ((None, "xpos=-LRB-"), ("AND NOT", "word=("), ("OR", "ngram2=the \"")),
             ((None, "upos=PROPN"), ("OR", "word=)"), ("AND NOT", "next.upos=PROPN")),
             ((None, "xpos=IN"), ("OR", "lemma=("), ("AND NOT", "lemma=of")),
             ((None, "a=1"), ("AND", "b=2"), ("AND", "c=(3)"), ("OR", "d=)"))]
    for terms in cases:
        assert parse_formula(formula_text(terms)) == terms, formula_text(terms)
    with pytest.raises(ValueError, match="not a formula"):
        parse_formula("a=1 AND b=2 OR c=3")  # an operator change without formula_text's parentheses


def _planted(rng, n=4000, K=40):
    freq = rng.uniform(0.05, 0.3, K)
    freq[[6, 7, 8]] = (0.35, 0.35, 0.03)  # the three-term target is mostly its AND part
    C = rng.random((n, K)) < freq
    targets = [C[:, 0] & C[:, 1], C[:, 2] | C[:, 3], C[:, 4] & ~C[:, 5], (C[:, 6] & C[:, 7]) | C[:, 8]]
    return sp.csc_matrix(C), np.stack(targets, 1)


def test_beam_search_recovers_planted_formulas_batched():
    rng = np.random.default_rng(0)
    C, fire = _planted(rng)
    inter = (fire.T.astype(np.float32) @ C.toarray().astype(np.float32))
    formulas, iou = beam_search(C, torch.from_numpy(fire), inter, beam=5, max_length=3, batch=3)
    got = [frozenset((op, k) for op, k in f) for f in formulas]
    assert got[0] == {(None, 0), ("AND", 1)} or got[0] == {(None, 1), ("AND", 0)}
    assert got[1] == {(None, 2), ("OR", 3)} or got[1] == {(None, 3), ("OR", 2)}
    assert list(formulas[2]) == [(None, 4), ("AND NOT", 5)]
    assert {k for _, k in formulas[3]} == {6, 7, 8}
    np.testing.assert_allclose(iou, 1.0, atol=1e-6)


def test_beam_search_control_random_firing_stays_short():
    rng = np.random.default_rng(1)
    C, _ = _planted(rng)
    fire = rng.random((C.shape[0], 6)) < 0.1
    inter = fire.T.astype(np.float32) @ C.toarray().astype(np.float32)
    formulas, iou = beam_search(C, torch.from_numpy(fire), inter)
    assert all(len(f) == 1 for f in formulas)  # no term is justified on random firing
    assert iou.max() < 0.3
