"""Real English: the shipped slice of UD English EWT and the document split used for every real-data number.

The split is by document (a document's sentences never straddle two parts) and does not depend on any random
generator's version: documents are ordered by the SHA-1 of their id and the last quarter of that order is the
*held-out* part. That part is what ships inside the package (``Corpus.load("ud-english")``) and what the docs
report on; the other three quarters (``tune``) are only in the full treebank and are where defaults were tuned.
"""

from __future__ import annotations

import functools
import hashlib
import re
from pathlib import Path

import numpy as np

from .corpus import Corpus, register_source

#: the shipped slice (held-out documents of EWT train), with its license and README beside it
SLICE = Path(__file__).with_name("ud_english") / "en_ewt-ud-heldout.conllu.xz"
_SENT_NUMBER = re.compile(r"-\d+$")


def document_of(sentence_id: str) -> str:
    """The document a UD sentence id belongs to: ``'weblog-x_ENG_2005-0003'`` -> ``'weblog-x_ENG_2005'``."""
    return _SENT_NUMBER.sub("", str(sentence_id))


def document_part(document: str, heldout_share: float = 0.25) -> str:
    """``'heldout'`` or ``'tune'``: the part of the split that ``document`` falls in (stable across machines)."""
    digest = int(hashlib.sha1(document.encode("utf-8")).hexdigest()[:12], 16)
    return "heldout" if digest / float(16 ** 12) >= 1.0 - heldout_share else "tune"


def split_by_document(corpus: Corpus, heldout_share: float = 0.25) -> dict[str, Corpus]:
    """``{"tune": Corpus, "heldout": Corpus}``, every document wholly in one part."""
    parts: dict[str, list[int]] = {"tune": [], "heldout": []}
    for i, sentence in enumerate(corpus.sentences):
        parts[document_part(document_of(sentence.id), heldout_share)].append(i)
    out = {name: corpus.subset(idx) for name, idx in parts.items()}
    for name, part in out.items():
        part.name = f"{corpus.name}[{name}]"
    return out


def document_groups(corpus: Corpus) -> np.ndarray:
    """Per word, an integer id of its sentence's document (for grouped splits that keep documents whole)."""
    docs = [document_of(s.id) for s in corpus.sentences]
    ids = {d: i for i, d in enumerate(dict.fromkeys(docs))}
    return np.repeat(np.asarray([ids[d] for d in docs], dtype=np.int64), [len(s) for s in corpus.sentences])


@functools.lru_cache(maxsize=1)
def _slice() -> Corpus:
    if not SLICE.exists():
        raise FileNotFoundError(f"the shipped treebank slice {SLICE} is missing from this installation")
    return Corpus.from_conllu(SLICE)


def ud_english(n_sentences: int | None = None) -> Corpus:
    """The shipped slice of UD English EWT (held-out documents, CC BY-SA 4.0), first ``n_sentences`` of it.

    Parsed once per process (about 4 s); each call returns a new :class:`Corpus` over the parsed sentences.
    """
    full = _slice()
    n = len(full) if n_sentences is None else int(n_sentences)
    if not 0 < n <= len(full):
        raise ValueError(f"ud-english has {len(full)} sentences; asked for {n_sentences}")
    corpus = full.subset(range(n))
    corpus.name = "ud-english" if n_sentences is None else f"ud-english:{n}"
    return corpus


register_source("ud-english", lambda n_sentences=None, seed=0: ud_english(n_sentences))
