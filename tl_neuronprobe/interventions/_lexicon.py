"""The lexicon that judges a model's predicted words: form -> lemma and attribute values, from a corpus.

Not for reading the model (:mod:`tl_neuronprobe.interventions.readouts`); built from the annotated corpus itself,
so judging a prediction needs nothing outside it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any, Iterable

from ..data.corpus import Corpus

__all__ = ["Lexicon", "word_features", "CONTEXT_ATTRIBUTES", "SAME", "VALUE_CHANGED", "WRONG_LEMMA"]

#: attributes that describe a word's context, not its form; never used to match alternative forms
CONTEXT_ATTRIBUTES = ("Agreement", "Attractor", "deprel", "xpos", "head", "deps", "misc", "id")

SAME, VALUE_CHANGED, WRONG_LEMMA = 0, 1, 2


# ------------------------------------------------------------------------------------------------ lexicon
class Lexicon:
    """Word form -> analyses (lemma and attribute values), counted over an annotated corpus.

    ``lemma_attribute`` names the lemma annotation (forms are their own lemma when a corpus has none).
    Lookups try the exact form, then its lower-case version (for uncased tokenizers).
    """

    def __init__(self, entries: dict[str, Counter], lemma_attribute: str = "lemma"):
        self.entries = entries
        self.lemma_attribute = lemma_attribute
        self._lower: dict[str, list[str]] = defaultdict(list)
        for form in entries:
            self._lower[form.lower()].append(form)
        self._by_lemma: dict[str, list[tuple[str, frozenset]]] = defaultdict(list)
        for form, analyses in entries.items():
            for a in analyses:
                self._by_lemma[dict(a)["lemma"]].append((form, a))

    @classmethod
    def from_corpus(cls, corpus: Corpus, lemma_attribute: str = "lemma",
                    exclude: Iterable[str] = CONTEXT_ATTRIBUTES) -> "Lexicon":
        """Count every (form, analysis) of ``corpus``; ``exclude`` drops context attributes from analyses."""
        skip = set(exclude)
        entries: dict[str, Counter] = defaultdict(Counter)
        for s in corpus:
            names = [n for n in s.attributes if n not in skip and n != lemma_attribute]
            lemmas = s.attributes.get(lemma_attribute) or [None] * len(s)
            for j, form in enumerate(s.words):
                feats = [(n, s.attributes[n][j]) for n in names if s.attributes[n][j] is not None]
                lemma = lemmas[j] if lemmas[j] is not None else form.lower()
                entries[form][frozenset(feats + [("lemma", lemma)])] += 1
        return cls(dict(entries), lemma_attribute)

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, form: str) -> bool:
        return bool(self.analyses(form))

    def analyses(self, form: str) -> list[dict[str, str]]:
        """Every analysis of ``form`` (dicts with ``lemma`` and attribute values), most frequent first."""
        forms = [form] if form in self.entries else self._lower.get(form.lower(), [])
        out: Counter = Counter()
        for f in forms:
            out.update(self.entries[f])
        return [dict(a) for a, _ in out.most_common()]

    def lemmas(self, form: str) -> set[str]:
        return {a["lemma"] for a in self.analyses(form)}

    def values(self, form: str, attribute: str, lemma: str | None = None) -> set[str | None]:
        """Values of ``attribute`` that ``form`` takes (restricted to analyses with ``lemma`` if given)."""
        return {a.get(attribute) for a in self.analyses(form) if lemma is None or a["lemma"] == lemma}

    def judge(self, form: str, lemma: str, value: str | None, attribute: str) -> int:
        """``SAME`` (0), ``VALUE_CHANGED`` (1: same lemma, ``value`` not among the form's values) or
        ``WRONG_LEMMA`` (2: another lemma, or an unknown form)."""
        if lemma not in self.lemmas(form):
            return WRONG_LEMMA
        return SAME if value in self.values(form, attribute, lemma) else VALUE_CHANGED

    def alternatives(self, features: dict[str, str | None], attribute: str,
                     ignore: Iterable[str] = ()) -> dict[str, list[str]]:
        """Forms of the same lemma that agree on every other feature, grouped by their value of ``attribute``.

        ``features`` is one word's analysis (lemma plus attributes; context attributes are ignored, and so are
        the names in ``ignore``). "runs" (Number=Sing, Person=3, Tense=Pres) gives {"Sing": ["runs"],
        "Plur": ["run"]}.
        """
        skip = set(CONTEXT_ATTRIBUTES) | set(ignore) | {attribute}
        lemma = features.get("lemma")
        want = {k: v for k, v in features.items() if k not in skip and k != "lemma" and v is not None}
        out: dict[str, list[str]] = defaultdict(list)
        for form, a in self._by_lemma.get(lemma, []):
            d = dict(a)
            value = d.get(attribute)
            if value is None:
                continue
            other = {k: v for k, v in d.items() if k not in skip and k != "lemma"}
            if other == want and form not in out[value]:
                out[value].append(form)
        return dict(out)


def word_features(corpus: Corpus, sentence: int, word: int, lemma_attribute: str = "lemma") -> dict[str, Any]:
    """One word's annotations as a lexicon analysis (``lemma`` plus its attribute values)."""
    s = corpus.sentences[sentence]
    feats = {n: v[word] for n, v in s.attributes.items() if n != lemma_attribute and v[word] is not None}
    lemmas = s.attributes.get(lemma_attribute)
    feats["lemma"] = lemmas[word] if lemmas and lemmas[word] is not None else s.words[word].lower()
    return feats
