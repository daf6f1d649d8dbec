"""The shipped UD English slice and the document split behind every real-data number."""

import pytest

import tl_neuronprobe as tnp
from tl_neuronprobe.data.treebank import SLICE, document_of, document_part, split_by_document


def test_ud_english_loads_with_gold_annotations():
    c = tnp.Corpus.load("ud-english:200")
    assert len(c) == 200 and c.name == "ud-english:200"
    for attr in ("upos", "xpos", "lemma", "deprel", "head_upos", "Number", "Tense", "VerbForm"):
        assert attr in c.attribute_names
    upos = [u for u in c.attribute("upos") if u is not None]
    assert {"NOUN", "VERB", "DET", "ADP", "PUNCT"} <= set(upos)
    assert (SLICE.parent / "LICENSE.txt").exists() and (SLICE.parent / "README.md").exists()


def test_shipped_slice_is_exactly_the_heldout_documents():
    c = tnp.Corpus.load("ud-english")
    docs = {document_of(s.id) for s in c}
    assert len(c) > 3000 and all(document_part(d) == "heldout" for d in docs)
    parts = split_by_document(c)
    assert len(parts["tune"]) == 0 and len(parts["heldout"]) == len(c)


def test_document_of_strips_the_sentence_number_only():
    assert document_of("weblog-juancole.com_juancole_20051126063000_ENG_20051126_063000-0001") == \
        "weblog-juancole.com_juancole_20051126063000_ENG_20051126_063000"
    assert document_of("answers-20111108104151AAcT3fL_ans-0004") == "answers-20111108104151AAcT3fL_ans"


def test_bad_size_is_an_error():
    with pytest.raises(ValueError, match="ud-english has"):
        tnp.Corpus.load("ud-english:999999")
