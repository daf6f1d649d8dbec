"""A seeded synthetic English corpus: the embedded default data.

Sentences carry UPOS, lemma, Number, Tense and Person, and test subject-verb agreement across attractor
phrases ("the keys to the cabinet are red ."). Verbs also carry ``Agreement`` (the subject's number, which
the verb form must match) and ``Attractor`` (``match``/``mismatch`` when a noun of the same/other number
stands between subject and verb, ``none`` otherwise), so agreement readouts need nothing else.
"""

from __future__ import annotations

import numpy as np

from .corpus import Corpus, Sentence, register_source

#: lemma -> (singular, plural)
NOUNS: dict[str, tuple[str, str]] = {
    "key": ("key", "keys"), "cabinet": ("cabinet", "cabinets"), "dog": ("dog", "dogs"), "cat": ("cat", "cats"),
    "author": ("author", "authors"), "book": ("book", "books"), "table": ("table", "tables"),
    "teacher": ("teacher", "teachers"), "car": ("car", "cars"), "house": ("house", "houses"),
    "child": ("child", "children"), "box": ("box", "boxes"), "girl": ("girl", "girls"), "boy": ("boy", "boys"),
    "tree": ("tree", "trees"), "city": ("city", "cities"), "man": ("man", "men"), "woman": ("woman", "women"),
    "letter": ("letter", "letters"), "garden": ("garden", "gardens"),
}
#: lemma -> (3rd person singular present, other present, past)
VERBS: dict[str, tuple[str, str, str]] = {
    "run": ("runs", "run", "ran"), "sleep": ("sleeps", "sleep", "slept"), "eat": ("eats", "eat", "ate"),
    "see": ("sees", "see", "saw"), "like": ("likes", "like", "liked"), "find": ("finds", "find", "found"),
    "watch": ("watches", "watch", "watched"), "know": ("knows", "know", "knew"), "wait": ("waits", "wait", "waited"),
    "smile": ("smiles", "smile", "smiled"),
}
INTRANSITIVE = ("run", "sleep", "eat", "wait", "smile")
TRANSITIVE = ("see", "like", "find", "watch", "know")
#: number -> (present, past) of "be"
BE = {"Sing": ("is", "was"), "Plur": ("are", "were")}
#: pronoun -> (Person, Number)
PRONOUNS = {"I": ("1", "Sing"), "you": ("2", "Sing"), "he": ("3", "Sing"), "she": ("3", "Sing"),
            "we": ("1", "Plur"), "they": ("3", "Plur")}
ADJECTIVES = ("red", "old", "small", "happy", "tall", "green", "quiet", "new")
PREPOSITIONS = ("to", "near", "behind", "with", "of", "on")
ADVERBS = ("often", "quickly", "never", "always")
DETERMINERS = {"the": None, "a": "Sing", "this": "Sing", "these": "Plur", "that": "Sing", "those": "Plur"}


def verb_forms(lemma: str) -> dict[str, str]:
    """Present-tense forms of a verb by subject number (``{"Sing": "runs", "Plur": "run"}``), "be" included."""
    if lemma == "be":
        return {"Sing": BE["Sing"][0], "Plur": BE["Plur"][0]}
    sg, pl, _ = VERBS[lemma]
    return {"Sing": sg, "Plur": pl}


def vocabulary() -> list[str]:
    """Every word form the generator can produce, in a fixed order."""
    words: list[str] = []
    for sg, pl in NOUNS.values():
        words += [sg, pl]
    for forms in VERBS.values():
        words += list(dict.fromkeys(forms))
    words += [w for pair in BE.values() for w in pair]
    words += list(PRONOUNS) + list(ADJECTIVES) + list(PREPOSITIONS) + list(ADVERBS) + list(DETERMINERS) + ["."]
    return list(dict.fromkeys(words))


class _Builder:
    def __init__(self) -> None:
        self.words: list[str] = []
        self.rows: list[dict[str, str]] = []

    def add(self, word: str, **attrs: str) -> int:
        self.words.append(word)
        self.rows.append({k: v for k, v in attrs.items() if v is not None})
        return len(self.words) - 1

    def sentence(self, sid: str) -> Sentence:
        names: dict[str, None] = {}
        for r in self.rows:
            names.update(dict.fromkeys(r))
        return Sentence(list(self.words), {n: [r.get(n) for r in self.rows] for n in names}, sid)


def _noun_phrase(b: _Builder, rng: np.random.Generator, number: str, adjective_p: float = 0.3) -> None:
    dets = [d for d, n in DETERMINERS.items() if n in (None, number)]
    det = dets[rng.integers(len(dets))]
    b.add(det, upos="DET", lemma=det, Number=DETERMINERS[det])
    if rng.random() < adjective_p:
        adj = ADJECTIVES[rng.integers(len(ADJECTIVES))]
        b.add(adj, upos="ADJ", lemma=adj)
    lemma = list(NOUNS)[rng.integers(len(NOUNS))]
    b.add(NOUNS[lemma][number == "Plur"], upos="NOUN", lemma=lemma, Number=number, Person="3")


def _sentence(rng: np.random.Generator, sid: str, attractor_p: float) -> Sentence:
    b = _Builder()
    kind = rng.integers(3)
    number = "Sing" if rng.random() < 0.5 else "Plur"
    if kind == 2:  # pronoun subject, transitive verb, object noun phrase
        pron = list(PRONOUNS)[rng.integers(len(PRONOUNS))]
        person, number = PRONOUNS[pron]
        b.add(pron, upos="PRON", lemma=pron, Number=number, Person=person)
        lemma = TRANSITIVE[rng.integers(len(TRANSITIVE))]
        past = rng.random() < 0.3
        third_sg = person == "3" and number == "Sing"
        form = VERBS[lemma][2] if past else VERBS[lemma][0 if third_sg else 1]
        b.add(form, upos="VERB", lemma=lemma, Tense="Past" if past else "Pres", Person=person,
              Number=None if past else number, Agreement=number, Attractor="none")
        _noun_phrase(b, rng, "Sing" if rng.random() < 0.5 else "Plur")
    else:
        _noun_phrase(b, rng, number)
        attractor = "none"
        if rng.random() < attractor_p:
            other = "Plur" if rng.random() < 0.5 else "Sing"
            prep = PREPOSITIONS[rng.integers(len(PREPOSITIONS))]
            b.add(prep, upos="ADP", lemma=prep)
            _noun_phrase(b, rng, other, adjective_p=0.0)
            attractor = "match" if other == number else "mismatch"
        past = rng.random() < 0.3
        if kind == 0:  # copula + adjective
            form = BE[number][1 if past else 0]
            b.add(form, upos="AUX", lemma="be", Tense="Past" if past else "Pres", Person="3", Number=number,
                  Agreement=number, Attractor=attractor)
            adj = ADJECTIVES[rng.integers(len(ADJECTIVES))]
            b.add(adj, upos="ADJ", lemma=adj)
        else:  # intransitive verb, optional adverb
            lemma = INTRANSITIVE[rng.integers(len(INTRANSITIVE))]
            form = VERBS[lemma][2] if past else VERBS[lemma][0 if number == "Sing" else 1]
            b.add(form, upos="VERB", lemma=lemma, Tense="Past" if past else "Pres", Person="3",
                  Number=None if past else number, Agreement=number, Attractor=attractor)
            if rng.random() < 0.4:
                adv = ADVERBS[rng.integers(len(ADVERBS))]
                b.add(adv, upos="ADV", lemma=adv)
    b.add(".", upos="PUNCT", lemma=".")
    return b.sentence(sid)


def generate(n_sentences: int = 1000, seed: int = 0, attractor_p: float = 0.5) -> Corpus:
    """``n_sentences`` seeded sentences; the same seed gives the same corpus."""
    if n_sentences < 1:
        raise ValueError(f"n_sentences must be >= 1, got {n_sentences}")
    rng = np.random.default_rng(seed)
    return Corpus([_sentence(rng, f"syn-{seed}-{i}", attractor_p) for i in range(n_sentences)], f"synthetic(seed={seed})")


register_source("synthetic", lambda n_sentences=None, seed=0, **kw: generate(
    1000 if n_sentences is None else n_sentences, seed, **kw))
