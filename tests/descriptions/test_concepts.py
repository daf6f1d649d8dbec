"""Concept sources, support, cap, and names."""

from __future__ import annotations

import numpy as np
import pytest

import tl_neuronprobe as tnp
from tl_neuronprobe.descriptions import build_concepts, word_list_concepts


@pytest.fixture(scope="module")
def corpus():
    return tnp.Corpus.synthetic(120, seed=2)


def test_families_masks_and_support(corpus):
    c = build_concepts(corpus.words, corpus.sentence_ids, corpus.attributes(), word_lists={"colours": ["red", "green"]})
    assert set(c.table["family"]) == {"annotation", "surface", "context", "user"}
    words = np.array([w.lower() for w in corpus.words])
    upos = np.array(corpus.attribute("upos"), dtype=object)
    np.testing.assert_array_equal(c.mask("upos=NOUN"), upos == "NOUN")
    np.testing.assert_array_equal(c.mask("user=colours"), np.isin(words, ["red", "green"]))
    prev = np.r_[None, upos[:-1]]
    first = np.r_[True, corpus.sentence_ids[1:] != corpus.sentence_ids[:-1]]
    np.testing.assert_array_equal(c.mask("prev.upos=DET"), (prev == "DET") & ~first)
    assert (c.table["support"] >= 5).all()
    assert (c.table["support"].to_numpy() == np.asarray(c.matrix.sum(0)).ravel()).all()
    assert c.table.set_index("name").loc["prev.upos=DET", "label"] == "after DET"
    assert "Agreement=Sing" not in c.names  # readout labels are not word properties


def test_min_support_and_cap(corpus):
    c = build_concepts(corpus.words, corpus.sentence_ids, corpus.attributes(), min_support=30, max_concepts=20,
                       word_lists={"x": ["the"]})
    assert len(c) == 20 and "user=x" in c.names
    assert (c.table.loc[c.table["family"] != "user", "support"] >= 30).all()
    with pytest.raises(ValueError, match="min_support"):
        build_concepts(corpus.words, corpus.sentence_ids, {}, sources=["annotations"], min_support=5)
    with pytest.raises(ValueError, match="unknown concept sources"):
        build_concepts(corpus.words, corpus.sentence_ids, {}, sources=["vibes"])
    with pytest.raises(ValueError, match="empty"):
        word_list_concepts(corpus.words, {"none": []})


def test_head_upos_from_conllu(tmp_path):
    from tl_neuronprobe.descriptions import add_head_upos

    text = ("# sent_id = a-1\n1\tDogs\tdog\tNOUN\tNNS\t_\t2\tnsubj\t_\t_\n2\tbark\tbark\tVERB\tVBP\t_\t0\troot\t_\t_\n"
            "3\t.\t.\tPUNCT\t.\t_\t2\tpunct\t_\t_\n\n")
    path = tmp_path / "x.conllu"
    path.write_text(text)
    corpus = tnp.Corpus.from_conllu(path)
    add_head_upos(corpus, path)
    assert corpus.attribute("head.upos") == ["VERB", "ROOT", "VERB"]
    c = build_concepts(corpus.words, corpus.sentence_ids, corpus.attributes(), min_support=1)
    assert c.table.set_index("name").loc["head.upos=VERB", "label"] == "head is VERB"
    other = tnp.Corpus.synthetic(1, seed=0)
    with pytest.raises(ValueError, match="does not match"):
        add_head_upos(other, path)
