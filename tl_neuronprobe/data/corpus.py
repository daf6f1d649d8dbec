"""Annotated corpora: sentences of words, each word with any number of named attributes (missing allowed).

Readers: CoNLL-U (through the ``conllu`` package; UPOS, XPOS, DEPREL, lemma and every FEATS key as its own
attribute), TSV (``word<TAB>label``, blank line between sentences) and plain Python records. Errors name the
file and the line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np


#: named corpora for :meth:`Corpus.load` (``name`` or ``name:N``): ``loader(n_sentences or None, seed, **kw)``,
#: registered by the modules that provide them (``data.synthetic``, ``data.treebank``), so this module imports
#: neither of them
SOURCES: dict[str, Callable[..., "Corpus"]] = {}


def register_source(name: str, loader: Callable[..., "Corpus"]) -> None:
    """Make ``Corpus.load(name)`` and ``Corpus.load(f"{name}:N")`` call ``loader(N or None, seed)``."""
    SOURCES[name] = loader


class CorpusError(ValueError):
    """Malformed corpus input; the message names the file and line."""


@dataclass
class Sentence:
    """One sentence: its words and, per attribute, one value per word (None where the word lacks it)."""

    words: list[str]
    attributes: dict[str, list[str | None]] = field(default_factory=dict)
    id: str = ""

    def __post_init__(self) -> None:
        self.words = [str(w) for w in self.words]
        for name, values in self.attributes.items():
            if len(values) != len(self.words):
                raise CorpusError(
                    f"sentence {self.id!r}: attribute {name!r} has {len(values)} values for {len(self.words)} words"
                )

    def __len__(self) -> int:
        return len(self.words)


class Corpus:
    """A list of :class:`Sentence` with word-level views (``words``, ``sentence_ids``, ``attribute(name)``)."""

    def __init__(self, sentences: Iterable[Sentence], name: str = "corpus"):
        self.sentences = list(sentences)
        self.name = name
        for i, s in enumerate(self.sentences):
            if not s.id:
                s.id = str(i)
            if len(s.words) == 0:
                raise CorpusError(f"{name}: sentence {s.id!r} has no words")

    # --------------------------------------------------------------------------------------- views
    def __len__(self) -> int:
        return len(self.sentences)

    def __iter__(self) -> Iterator[Sentence]:
        return iter(self.sentences)

    def __getitem__(self, item):
        if isinstance(item, slice):
            return Corpus(self.sentences[item], self.name)
        return self.sentences[item]

    def __repr__(self) -> str:
        return f"Corpus({self.name!r}, {len(self)} sentences, {self.n_words} words, attributes={self.attribute_names})"

    @property
    def n_words(self) -> int:
        return sum(len(s) for s in self.sentences)

    @property
    def words(self) -> list[str]:
        return [w for s in self.sentences for w in s.words]

    @property
    def sentence_ids(self) -> np.ndarray:
        """Per word, the index of its sentence in this corpus."""
        return np.repeat(np.arange(len(self.sentences), dtype=np.int64), [len(s) for s in self.sentences])

    @property
    def attribute_names(self) -> list[str]:
        names: dict[str, None] = {}
        for s in self.sentences:
            names.update(dict.fromkeys(s.attributes))
        return list(names)

    def attribute(self, name: str) -> list[str | None]:
        """Per word, the value of attribute ``name`` (None where missing)."""
        if name not in self.attribute_names:
            raise KeyError(f"no word in {self.name} has attribute {name!r}; attributes: {self.attribute_names}")
        return [v for s in self.sentences for v in s.attributes.get(name, [None] * len(s))]

    def attributes(self) -> dict[str, list[str | None]]:
        return {name: self.attribute(name) for name in self.attribute_names}

    def subset(self, indices: Sequence[int]) -> "Corpus":
        return Corpus([self.sentences[i] for i in indices], self.name)

    # ------------------------------------------------------------------------------------- readers
    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]], name: str = "records") -> "Corpus":
        """Build from dicts ``{"words": [...], "id": ..., "<attribute>": [values per word], ...}``."""
        sentences = []
        for i, rec in enumerate(records):
            if "words" not in rec:
                raise CorpusError(f"{name}: record {i} has no 'words' key (keys: {sorted(rec)})")
            attrs = {k: [None if v is None else str(v) for v in vals] for k, vals in rec.items() if k not in ("words", "id")}
            sentences.append(Sentence(list(rec["words"]), attrs, str(rec.get("id", i))))
        return cls(sentences, name)

    @classmethod
    def from_tsv(cls, path: "str | Path", attribute: str = "label") -> "Corpus":
        """Read ``word<TAB>label`` lines, a blank line between sentences."""
        path = Path(path)
        sentences: list[Sentence] = []
        words: list[str] = []
        labels: list[str | None] = []
        start = 1

        def flush() -> None:
            if words:
                sentences.append(Sentence(list(words), {attribute: list(labels)}, f"{path.name}:{start}"))
                words.clear()
                labels.clear()

        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                line = line.rstrip("\n\r")
                if not line.strip():
                    flush()
                    start = lineno + 1
                    continue
                cols = line.split("\t")
                if len(cols) != 2 or not cols[0]:
                    raise CorpusError(f"{path}:{lineno}: expected 'word<TAB>label', got {len(cols)} column(s): {line!r}")
                words.append(cols[0])
                labels.append(None if cols[1] in ("", "_") else cols[1])
        flush()
        if not sentences:
            raise CorpusError(f"{path}: no sentences")
        return cls(sentences, path.name)

    @classmethod
    def from_conllu(cls, path: "str | Path", feats: bool = True) -> "Corpus":
        """Read a Universal Dependencies CoNLL-U file (plain, ``.gz`` or ``.xz``).

        Attributes: ``upos``, ``xpos``, ``deprel``, ``lemma``, ``head_upos`` (the UPOS of the word's syntactic
        head, ``ROOT`` for the root) and, with ``feats``, every FEATS key. Words are the
        syntactic words (integer ids): multiword-token ranges (``1-2``) are surface forms and empty nodes
        (``8.1``) belong to the enhanced graph, so neither is a word of the linear sentence, as UD specifies.
        """
        import conllu

        path = Path(path)
        sentences: list[Sentence] = []
        lines = read_text(path).splitlines()
        block: list[str] = []
        block_start = 1
        for lineno, line in enumerate(lines + [""], 1):
            if line.strip():
                if not block:
                    block_start = lineno
                block.append(line)
                continue
            if block:
                sentences.append(_conllu_sentence(conllu, path, block, block_start, feats))
                block = []
        if not sentences:
            raise CorpusError(f"{path}: no sentences")
        return cls(sentences, path.name)

    @classmethod
    def load(cls, spec: "str | Path", seed: int = 0) -> "Corpus":
        """``ud-english`` or ``ud-english:N`` (the shipped slice of UD English EWT, first N sentences),
        ``synthetic`` or ``synthetic:N``, a ``.conllu`` file (also ``.conllu.gz`` / ``.conllu.xz``), or a
        ``word<TAB>label`` file."""
        spec = str(spec)
        name, _, count = spec.partition(":")
        if name in SOURCES and (not count or count.isdigit()):
            return SOURCES[name](int(count) if count else None, seed)
        path = Path(spec)
        if not path.exists():
            raise FileNotFoundError(f"corpus file {path} does not exist (or use a built-in corpus: 'ud-english', "
                                    "'ud-english:N' for its first N sentences, or 'synthetic:N')")
        suffixes = [x.lower() for x in path.suffixes]
        conllu = any(x in (".conllu", ".conll") for x in suffixes)
        return cls.from_conllu(path) if conllu else cls.from_tsv(path)

    @classmethod
    def synthetic(cls, n_sentences: int = 1000, seed: int = 0, **kwargs) -> "Corpus":
        """The seeded synthetic English corpus (see :mod:`tl_neuronprobe.data.synthetic`)."""
        return SOURCES["synthetic"](n_sentences, seed, **kwargs)


_ID = re.compile(r"^(\d+)(?:-(\d+)|\.(\d+))?$")
_FIELDS = ["id", "form", "lemma", "upos", "xpos", "feats", "head", "deprel", "deps", "misc"]


def _conllu_sentence(conllu, path: Path, block: list[str], start: int, feats: bool = True) -> Sentence:
    """Validate one CoNLL-U sentence block line by line, then parse it with ``conllu``."""
    expected = 1
    sent_id = None
    for offset, line in enumerate(block):
        lineno = start + offset
        if line.startswith("#"):
            m = re.match(r"#\s*sent_id\s*=\s*(.+)", line)
            sent_id = m.group(1).strip() if m else sent_id
            continue
        cols = line.split("\t")
        if len(cols) != 10:
            raise CorpusError(f"{path}:{lineno}: expected 10 tab-separated columns, got {len(cols)}: {line!r}")
        m = _ID.match(cols[0])
        if not m:
            raise CorpusError(f"{path}:{lineno}: bad ID {cols[0]!r} (expected N, N-M or N.M)")
        first = int(m.group(1))
        if m.group(2) is not None:  # multiword token range
            if int(m.group(2)) < first or first != expected:
                raise CorpusError(f"{path}:{lineno}: bad multiword range {cols[0]!r} (next word is {expected})")
        elif m.group(3) is None:
            if first != expected:
                raise CorpusError(f"{path}:{lineno}: word ID {first} out of sequence (expected {expected})")
            expected += 1
    if expected == 1:
        raise CorpusError(f"{path}:{start}: sentence has no words")
    try:
        (tokenlist,) = conllu.parse("\n".join(block) + "\n\n", fields=_FIELDS)
    except Exception as exc:  # conllu gives no line numbers: add ours
        raise CorpusError(f"{path}:{start}: cannot parse sentence: {exc}") from exc
    words: list[str] = []
    rows: list[dict[str, str | None]] = []
    for token in tokenlist:
        if not isinstance(token["id"], int):
            continue
        row = {
            "lemma": _value(token["lemma"]),
            "upos": _value(token["upos"]),
            "xpos": _value(token["xpos"]),
            "deprel": _value(token["deprel"]),
        }
        for key, val in ((token["feats"] or {}) if feats else {}).items():
            row[key] = _value(val)
        words.append(token["form"])
        rows.append(row)
    upos_of = {t["id"]: _value(t["upos"]) for t in tokenlist if isinstance(t["id"], int)}
    heads = [t["head"] for t in tokenlist if isinstance(t["id"], int)]
    for row, head in zip(rows, heads):
        row["head_upos"] = "ROOT" if head in (0, "0") else upos_of.get(_int_or_none(head))
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    attrs = {n: [row.get(n) for row in rows] for n in names}
    attrs = {n: v for n, v in attrs.items() if any(x is not None for x in v)}
    return Sentence(words, attrs, sent_id or f"{path.name}:{start}")


def _int_or_none(v) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def read_text(path: Path) -> str:
    """The UTF-8 text of ``path``, decompressed when it ends in ``.gz`` or ``.xz``."""
    suffix = path.suffix.lower()
    if suffix in (".gz", ".xz"):
        import gzip
        import lzma

        opener = gzip.open if suffix == ".gz" else lzma.open
        with opener(path, "rt", encoding="utf-8") as fh:
            return fh.read()
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def _value(v) -> str | None:
    if v is None or v == "_":
        return None
    return str(v)
