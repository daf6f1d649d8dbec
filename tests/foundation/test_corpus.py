import pytest

import tl_neuronprobe as tnp
from tl_neuronprobe.data import synthetic

CONLLU = """# sent_id = s1
# text = The cats don't sleep.
1	The	the	DET	DT	Definite=Def|PronType=Art	2	det	_	_
2	cats	cat	NOUN	NNS	Number=Plur	5	nsubj	_	_
3-4	don't	_	_	_	_	_	_	_	_
3	do	do	AUX	VBP	Mood=Ind|Number=Plur|Tense=Pres	5	aux	_	_
4	n't	not	PART	RB	_	5	advmod	_	_
5	sleep	sleep	VERB	VB	VerbForm=Inf	0	root	_	_
5.1	sleeps	sleep	VERB	VB	_	_	_	2:nsubj	_
6	.	.	PUNCT	.	_	5	punct	_	_

# sent_id = s2
1	Dogs	dog	NOUN	NNS	Number=Plur	2	nsubj	_	_
2	run	run	VERB	VBP	Number=Plur|Tense=Pres	0	root	_	_
"""


def write(tmp_path, text, name="x.conllu"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_conllu_words_attributes_multiword_and_empty_nodes(tmp_path):
    c = tnp.Corpus.from_conllu(write(tmp_path, CONLLU))
    assert len(c) == 2
    s = c[0]
    assert s.id == "s1"
    # syntactic words only: the range 3-4 and the empty node 5.1 are not words
    assert s.words == ["The", "cats", "do", "n't", "sleep", "."]
    assert s.attributes["upos"] == ["DET", "NOUN", "AUX", "PART", "VERB", "PUNCT"]
    assert s.attributes["Number"] == [None, "Plur", "Plur", None, None, None]
    assert s.attributes["lemma"][1] == "cat"
    assert s.attributes["xpos"][1] == "NNS"
    assert s.attributes["deprel"][1] == "nsubj"
    assert s.attributes["Tense"][2] == "Pres"
    assert c.attribute("Number") == [None, "Plur", "Plur", None, None, None, "Plur", "Plur"]
    assert c.sentence_ids.tolist() == [0] * 6 + [1] * 2


@pytest.mark.parametrize("bad_line, pattern", [
    ("2\tcats\tcat\tNOUN\tNNS\tNumber=Plur\t5\tnsubj\t_", r"x.conllu:3: expected 10 tab-separated columns, got 9"),
    ("two\tcats\tcat\tNOUN\tNNS\tNumber=Plur\t5\tnsubj\t_\t_", r"x.conllu:3: bad ID 'two'"),
    ("3\tcats\tcat\tNOUN\tNNS\tNumber=Plur\t5\tnsubj\t_\t_", r"x.conllu:3: word ID 3 out of sequence"),
])
def test_malformed_conllu_names_file_and_line(tmp_path, bad_line, pattern):
    lines = CONLLU.splitlines()
    lines[3] = bad_line  # the line of word 2 in sentence 1 (file line 4 -> index 3); ids refer to line numbers
    text = "\n".join(lines[1:]) + "\n"  # drop the first comment so the bad line is file line 3
    with pytest.raises(tnp.CorpusError, match=pattern):
        tnp.Corpus.from_conllu(write(tmp_path, text))


def test_empty_conllu_is_an_error(tmp_path):
    with pytest.raises(tnp.CorpusError, match="no sentences"):
        tnp.Corpus.from_conllu(write(tmp_path, "\n\n"))


def test_tsv_reader_and_errors(tmp_path):
    c = tnp.Corpus.from_tsv(write(tmp_path, "the\tDET\ncat\tNOUN\n\ndogs\tNOUN\nrun\t_\n", "x.tsv"), attribute="pos")
    assert [s.words for s in c] == [["the", "cat"], ["dogs", "run"]]
    assert c.attribute("pos") == ["DET", "NOUN", "NOUN", None]
    with pytest.raises(tnp.CorpusError, match=r"y.tsv:2: expected 'word<TAB>label'"):
        tnp.Corpus.from_tsv(write(tmp_path, "the\tDET\ncat NOUN\n", "y.tsv"))


def test_records_and_length_mismatch():
    c = tnp.Corpus.from_records([{"words": ["a", "b"], "tag": ["X", None]}])
    assert c.attribute("tag") == ["X", None]
    with pytest.raises(tnp.CorpusError, match="2 words"):
        tnp.Corpus.from_records([{"words": ["a", "b"], "tag": ["X"]}])
    with pytest.raises(KeyError, match="no word"):
        c.attribute("Number")


def test_synthetic_is_seeded_and_grammatical():
    a, b, other = (tnp.Corpus.synthetic(300, seed=s) for s in (1, 1, 2))
    assert [s.words for s in a] == [s.words for s in b]
    assert [s.words for s in a] != [s.words for s in other]
    kinds = set()
    for s in a:
        for i, w in enumerate(s.words):
            agr = s.attributes.get("Agreement", [None] * len(s))[i]
            tense = s.attributes["Tense"][i] if "Tense" in s.attributes else None
            if agr is None or tense != "Pres":
                continue
            lemma = s.attributes["lemma"][i]
            person = s.attributes["Person"][i]
            if person == "3":  # the verb form matches the subject's number, across attractors
                assert w == synthetic.verb_forms(lemma)[agr], (s.words, i)
            kinds.add(s.attributes["Attractor"][i])
    assert {"none", "match", "mismatch"} <= kinds
    assert {"upos", "lemma", "Number", "Tense", "Person"} <= set(a.attribute_names)
