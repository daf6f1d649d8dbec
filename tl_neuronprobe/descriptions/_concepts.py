"""Concepts: named boolean masks over a corpus's words, from annotations, surface form, context and word lists.

A :class:`Concepts` holds a sparse boolean matrix ``[n_words, n_concepts]`` and a tidy table with one row per
concept (``name``, ``family``, ``key``, ``value``, ``label``, ``support``). It is not for scoring neurons; see
:mod:`._associate` for that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

FAMILIES = ("annotation", "surface", "context", "user", "discovered")
_FEATURE_WORDS = {"Plur": "plural", "Sing": "singular", "Past": "past-tense", "Pres": "present-tense",
                  "Fut": "future-tense", "Neg": "negative", "Yes": "", "Ind": "indicative", "Imp": "imperative",
                  "Inf": "infinitive", "Part": "participle", "Ger": "gerund"}
_ANNOTATION_SKIP = {"Agreement", "Attractor"}  # readout labels of the synthetic corpus, not word properties


@dataclass
class KeyValues:
    """One concept key (``upos``, ``prev.upos``, ``suffix3``): per word, a value or None."""

    key: str
    family: str
    values: Sequence[str | None]


@dataclass
class Concepts:
    """``matrix[i, j]``: word ``i`` has concept ``j``; ``table``: one row per concept."""

    matrix: sp.csc_matrix
    table: pd.DataFrame

    def __post_init__(self) -> None:
        self.matrix = sp.csc_matrix(self.matrix, dtype=bool)
        if self.matrix.shape[1] != len(self.table):
            raise ValueError(f"{self.matrix.shape[1]} concept columns but {len(self.table)} table rows")
        self.table = self.table.reset_index(drop=True)
        dup = self.table["name"][self.table["name"].duplicated()]
        if len(dup):
            raise ValueError(f"concept names must be unique; repeated: {sorted(set(dup))[:5]}")
        self._index = {n: i for i, n in enumerate(self.table["name"])}

    def __len__(self) -> int:
        return int(self.matrix.shape[1])

    def __repr__(self) -> str:
        fams = self.table["family"].value_counts().to_dict()
        return f"Concepts({self.n_words} words x {len(self)} concepts, families={fams})"

    @property
    def n_words(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def names(self) -> list[str]:
        return list(self.table["name"])

    def index(self, name: str) -> int:
        if name not in self._index:
            raise KeyError(f"no concept named {name!r} (of {len(self)}); e.g. {self.names[:5]}")
        return self._index[name]

    def mask(self, concept: "str | int") -> np.ndarray:
        """Dense boolean mask over the words of one concept (by name or column)."""
        j = self.index(concept) if isinstance(concept, str) else int(concept)
        out = np.zeros(self.n_words, dtype=bool)
        out[self.matrix.indices[self.matrix.indptr[j]:self.matrix.indptr[j + 1]]] = True
        return out

    def rows(self, idx: np.ndarray) -> "Concepts":
        """The same concepts restricted to some words (support recounted)."""
        m = sp.csr_matrix(self.matrix)[np.asarray(idx)]
        table = self.table.assign(support=np.asarray(m.sum(0)).ravel().astype(np.int64))
        return Concepts(m, table)

    def select(self, cols: "Sequence[int] | np.ndarray") -> "Concepts":
        cols = np.asarray(cols, dtype=np.int64)
        return Concepts(self.matrix[:, cols], self.table.iloc[cols])

    def __add__(self, other: "Concepts") -> "Concepts":
        if other.n_words != self.n_words:
            raise ValueError(f"cannot join concepts over {self.n_words} and {other.n_words} words")
        keep = ~other.table["name"].isin(self._index).to_numpy()
        other = other.select(np.flatnonzero(keep))
        return Concepts(sp.hstack([self.matrix, other.matrix]), pd.concat([self.table, other.table]))


# ---------------------------------------------------------------------------------------------- labels
def concept_label(key: str, value: str) -> str:
    """English for one concept: ``('prev.upos', 'DET')`` -> ``'after DET'``."""
    if key in ("upos", "xpos"):
        return value
    if key == "deprel":
        return f"{value} (dependency)"
    if key in ("head.upos", "head_upos"):  # Corpus.from_conllu gives head_upos
        return f"head is {value}"
    if key == "lemma":
        return f'lemma "{value}"'
    if key == "word":
        return f'"{value}"'
    if key.startswith("prefix"):
        return f'starting with "{value}"'
    if key.startswith("suffix"):
        return f'ending in "-{value}"'
    if key in ("shape", "position"):
        return value
    if key.startswith("prev.") or key.startswith("next."):
        side = "after" if key.startswith("prev.") else "before"
        return f"{side} {value}" if key.endswith("upos") else f'{side} "{value}"'
    if key.startswith("ngram"):
        return f'in "{value}"'
    if key in ("user", "discovered"):
        return value
    word = _FEATURE_WORDS.get(value)
    return word if word else f"{key}={value}"


# --------------------------------------------------------------------------------------------- sources
def annotation_keys(attributes: Mapping[str, Sequence[str | None]]) -> list[KeyValues]:
    """Every annotation attribute (UPOS, XPOS, FEATS keys, lemma, deprel, head.upos when present)."""
    return [KeyValues(k, "annotation", v) for k, v in attributes.items() if k not in _ANNOTATION_SKIP]


def _shape(word: str) -> str | None:
    if any(ch.isdigit() for ch in word):
        return "with digits"
    if word and all(not ch.isalnum() for ch in word):
        return "punctuation"
    if word.isupper() and len(word) > 1:
        return "all caps"
    if word[:1].isupper():
        return "capitalized"
    return None


def surface_keys(words: Sequence[str], sentence_ids: np.ndarray, affixes: Sequence[int] = (2, 3)) -> list[KeyValues]:
    """Lower-cased form, prefixes and suffixes, shape (capitals, digits, punctuation), sentence position."""
    lower = [w.lower() for w in words]
    out = [KeyValues("word", "surface", lower), KeyValues("shape", "surface", [_shape(w) for w in words])]
    for n in affixes:
        out.append(KeyValues(f"prefix{n}", "surface", [w[:n] if len(w) > n + 1 else None for w in lower]))
        out.append(KeyValues(f"suffix{n}", "surface", [w[-n:] if len(w) > n + 1 else None for w in lower]))
    sid = np.asarray(sentence_ids)
    first = np.r_[True, sid[1:] != sid[:-1]]
    last = np.r_[sid[1:] != sid[:-1], True]
    pos = np.where(first, "first word", np.where(last, "last word", None))
    out.append(KeyValues("position", "surface", list(pos)))
    return out


def _shifted(values: Sequence[str | None], sid: np.ndarray, step: int) -> list[str | None]:
    """Per word, the value of the word ``step`` places away in the same sentence (None outside it)."""
    n = len(values)
    out: list[str | None] = [None] * n
    for i in range(n):
        j = i + step
        if 0 <= j < n and sid[j] == sid[i]:
            out[i] = values[j]
    return out


def context_keys(words: Sequence[str], sentence_ids: np.ndarray, attributes: Mapping[str, Sequence],
                 max_ngram: int = 3) -> list[KeyValues]:
    """Previous and next word's UPOS and lemma, and the word n-grams (2..max_ngram) that end at each word."""
    sid = np.asarray(sentence_ids)
    out = []
    for attr in ("upos", "lemma"):
        if attr in attributes:
            out.append(KeyValues(f"prev.{attr}", "context", _shifted(attributes[attr], sid, -1)))
            out.append(KeyValues(f"next.{attr}", "context", _shifted(attributes[attr], sid, +1)))
    lower = [w.lower() for w in words]
    for n in range(2, max_ngram + 1):
        grams: list[str | None] = list(lower)
        for back in range(1, n):
            prev = _shifted(lower, sid, -back)
            grams = [None if g is None or p is None else f"{p} {g}" for g, p in zip(grams, prev)]
        out.append(KeyValues(f"ngram{n}", "context", grams))
    return out


# --------------------------------------------------------------------------------------------- assembly
def _key_columns(kv: KeyValues, n_words: int, min_support: int, max_per_key: int):
    vals = np.asarray([("" if v is None else str(v)) for v in kv.values], dtype=object)
    if len(vals) != n_words:
        raise ValueError(f"concept key {kv.key!r} has {len(vals)} values for {n_words} words")
    present = np.flatnonzero(vals != "")
    if len(present) == 0:
        return None
    uniq, inv, counts = np.unique(vals[present].astype(str), return_inverse=True, return_counts=True)
    ok = (counts >= min_support) & (counts < n_words)
    order = np.flatnonzero(ok)[np.argsort(-counts[ok], kind="stable")][:max_per_key]
    if len(order) == 0:
        return None
    remap = np.full(len(uniq), -1)
    remap[order] = np.arange(len(order))
    col = remap[inv]
    keep = col >= 0
    table = pd.DataFrame({"name": [f"{kv.key}={u}" for u in uniq[order]], "family": kv.family, "key": kv.key,
                          "value": list(uniq[order]), "label": [concept_label(kv.key, u) for u in uniq[order]],
                          "support": counts[order].astype(np.int64)})
    return present[keep], col[keep], table


def from_keys(keys: Iterable[KeyValues], n_words: int, min_support: int = 5, max_per_key: int = 300) -> Concepts:
    """Concepts from key/value lists: one concept per value seen on at least ``min_support`` words."""
    rows, cols, tables, offset = [], [], [], 0
    for kv in keys:
        got = _key_columns(kv, n_words, min_support, max_per_key)
        if got is None:
            continue
        r, c, t = got
        rows.append(r)
        cols.append(c + offset)
        tables.append(t)
        offset += len(t)
    if not tables:
        return Concepts(sp.csc_matrix((n_words, 0), dtype=bool),
                        pd.DataFrame(columns=["name", "family", "key", "value", "label", "support"]))
    data = np.ones(sum(len(r) for r in rows), dtype=bool)
    m = sp.csc_matrix((data, (np.concatenate(rows), np.concatenate(cols))), shape=(n_words, offset), dtype=bool)
    return Concepts(m, pd.concat(tables, ignore_index=True))


def from_masks(masks: Mapping[str, np.ndarray], family: str, labels: Mapping[str, str] | None = None) -> Concepts:
    """Concepts from named boolean masks (user word lists, discovered clusters)."""
    names = list(masks)
    if not names:
        raise ValueError("from_masks needs at least one mask")
    cols = [sp.csc_matrix(np.asarray(masks[n], dtype=bool).reshape(-1, 1)) for n in names]
    m = sp.hstack(cols, format="csc")
    labels = labels or {}
    table = pd.DataFrame({"name": [f"{family}={n}" for n in names], "family": family, "key": family,
                          "value": names, "label": [labels.get(n, n) for n in names],
                          "support": np.asarray(m.sum(0)).ravel().astype(np.int64)})
    return Concepts(m, table)


def word_list_concepts(words: Sequence[str], word_lists: Mapping[str, Iterable[str]]) -> Concepts:
    """One concept per user word list: the words whose lower-cased form is in the list."""
    lower = np.asarray([w.lower() for w in words], dtype=object)
    masks = {}
    for name, items in word_lists.items():
        wanted = {str(x).lower() for x in items}
        if not wanted:
            raise ValueError(f"word list {name!r} is empty")
        masks[name] = np.fromiter((w in wanted for w in lower), dtype=bool, count=len(lower))
    return from_masks(masks, "user")


#: families of concepts the caller builds and passes in (word lists, ``discovered=`` clusters and word sets): the
#: vocabulary cap never drops them
GIVEN_FAMILIES = ("user", "discovered", "set")


def cap(concepts: Concepts, max_concepts: int | None, min_support: int = 1) -> Concepts:
    """Keep at most ``max_concepts`` (highest support first; concepts the caller gave, of the families in
    :data:`GIVEN_FAMILIES`, always kept) with enough support."""
    t = concepts.table
    given = t["family"].isin(GIVEN_FAMILIES).to_numpy()
    keep = np.flatnonzero((t["support"].to_numpy() >= min_support) | given)
    if max_concepts is not None and len(keep) > max_concepts:
        user = keep[given[keep]]
        rest = keep[~given[keep]]
        rest = rest[np.argsort(-t["support"].to_numpy()[rest], kind="stable")][: max(0, max_concepts - len(user))]
        keep = np.sort(np.concatenate([user, rest]))
    return concepts.select(keep)


def build_concepts(words: Sequence[str], sentence_ids: np.ndarray, attributes: Mapping[str, Sequence],
                   sources: "str | Sequence[str]" = "auto", word_lists: Mapping[str, Iterable[str]] | None = None,
                   extra: Sequence[Concepts] = (), min_support: int = 5, max_concepts: int | None = 3000,
                   max_per_key: int = 300, max_ngram: int = 3,
                   progress: Callable[[str], None] | None = None) -> Concepts:
    """All concepts of the chosen sources over these words.

    ``sources``: ``"auto"`` (annotations when present, surface, context, and word lists when given) or a list
    of ``"annotations"``, ``"surface"``, ``"context"``, ``"words"``; ``extra`` adds ready-made concepts (e.g.
    discovered ones). ``min_support``: least number of words; ``max_concepts``: cap on the vocabulary.
    """
    names = ["annotations", "surface", "context", "words"] if sources == "auto" else list(sources)
    unknown = set(names) - {"annotations", "surface", "context", "words", "discovered"}
    if unknown:
        raise ValueError(f"unknown concept sources {sorted(unknown)}; use annotations, surface, context, words, "
                         "discovered (discovered concepts are passed to describe() through discovered=)")
    n = len(words)
    keys: list[KeyValues] = []
    if "annotations" in names:
        keys += annotation_keys(attributes)
    if "surface" in names:
        keys += surface_keys(words, sentence_ids)
    if "context" in names:
        keys += context_keys(words, sentence_ids, attributes, max_ngram=max_ngram)
    out = from_keys(keys, n, min_support, max_per_key)
    if word_lists and "words" in names:
        out = out + word_list_concepts(words, word_lists)
    for e in extra:
        out = out + e
    out = cap(out, max_concepts, min_support)
    if len(out) == 0:
        raise ValueError(f"no concept has at least min_support={min_support} words among {n}; lower min_support")
    return out


def add_head_upos(corpus, path) -> None:
    """Add a ``head.upos`` attribute (the UPOS of each word's syntactic head; ``ROOT`` for the root) to a corpus
    read from the CoNLL-U file ``path``. Sentences must match in order. Only for corpora built elsewhere:
    ``Corpus.from_conllu`` already gives the same values as its ``head_upos`` attribute."""
    import conllu

    with open(path, encoding="utf-8") as fh:
        parsed = conllu.parse(fh.read())
    if len(parsed) < len(corpus.sentences):
        raise ValueError(f"{path} has {len(parsed)} sentences, the corpus {len(corpus.sentences)}")
    for sent, tokens in zip(corpus.sentences, parsed):
        words = [t for t in tokens if isinstance(t["id"], int)]
        if [t["form"] for t in words] != sent.words:
            raise ValueError(f"sentence {sent.id!r} does not match {path} (different words)")
        upos = {t["id"]: t["upos"] for t in words}
        sent.attributes["head.upos"] = ["ROOT" if not t["head"] else upos.get(t["head"]) for t in words]
