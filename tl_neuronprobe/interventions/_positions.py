"""Where an intervention acts: the tokens of the words that carry an attribute, or any boolean position mask.

Not for the edits themselves (:mod:`tl_neuronprobe.interventions`); this module only tokenizes, collates and
marks positions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from ..core.adapter import Batch, ModelAdapter
from ..data.corpus import Corpus, Sentence

__all__ = ["WordPositions", "token_labels", "attribute_positions", "check_mask"]


# ------------------------------------------------------------------------------------------- positions
@dataclass
class WordPositions:
    """Where the words of a batch of sentences sit among its tokens.

    ``batch``: the collated (right-padded) batch to run; ``mask [b, p]``: tokens of the words that carry the
    attribute (sub-tokens included, specials and padding excluded); ``labels [b, p]``: per token, the index
    in ``classes`` of its word's value (-1 elsewhere); ``word [b, p]``: the index of the token's word in its
    sentence (-1 on specials and padding).
    """

    batch: Batch
    mask: torch.Tensor
    labels: torch.Tensor
    word: torch.Tensor
    classes: list[str]

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.mask.shape)  # type: ignore[return-value]


def _sentence_list(sentences: "Corpus | Sequence[Sentence]") -> list[Sentence]:
    if isinstance(sentences, Sentence):
        return [sentences]
    out = list(sentences)
    for s in out:
        if not isinstance(s, Sentence):
            raise TypeError(f"expected Sentence objects (or a Corpus), got {type(s).__name__}")
    return out


def token_labels(word_of_token: torch.Tensor, word_labels: Sequence[Sequence[int]]) -> torch.Tensor:
    """Per token, the label of its word (``word_labels[row][word]``), -1 on specials, padding and unlabeled words."""
    b, p = word_of_token.shape
    width = max((len(w) for w in word_labels), default=0) + 1
    table = torch.full((b, width), -1, dtype=torch.long)
    for row, labels in enumerate(word_labels):
        if len(labels):
            table[row, : len(labels)] = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    table = table.to(word_of_token.device)
    idx = torch.where(word_of_token >= 0, word_of_token, torch.full_like(word_of_token, width - 1))
    return table.gather(1, idx)


def attribute_positions(model, corpus: "Corpus | Sequence[Sentence]", attribute: str | None = None,
                        classes: Sequence[str] | None = None) -> WordPositions:
    """Tokenize and collate the sentences of ``corpus`` and mark the tokens of the words that carry ``attribute``.

    ``attribute=None`` marks every word. ``classes`` fixes the label order (default: the sorted values seen);
    words whose value is not in ``classes`` are not marked.
    """
    adapter = ModelAdapter.wrap(model)
    sents = _sentence_list(corpus)
    if not sents:
        raise ValueError("no sentences given")
    if attribute is not None and not any(attribute in s.attributes for s in sents):
        raise KeyError(f"no sentence has attribute {attribute!r}")
    values = [s.attributes.get(attribute, [None] * len(s)) if attribute else list(s.words) for s in sents]
    if classes is None:
        classes = sorted({v for vals in values for v in vals if v is not None} if attribute else {"word"})
    lookup = {c: i for i, c in enumerate(classes)}
    if attribute is None:
        labels = [[0] * len(s) for s in sents]
    else:
        labels = [[lookup.get(v, -1) if v is not None else -1 for v in vals] for vals in values]
    tokenized, _ = adapter.tokenize_checked(sents, long_sentences="error")
    batch = adapter.collate(tokenized)
    lab = token_labels(batch.word_of_token, labels)
    return WordPositions(batch, lab >= 0, lab, batch.word_of_token, list(classes))


def check_mask(positions: Any) -> "torch.Tensor | str | None":
    """Normalize ``positions``: None/'all', 'attribute' (resolved later), or a bool tensor [b, p] or [p]."""
    if positions is None or (isinstance(positions, str) and positions == "all"):
        return None
    if isinstance(positions, str):
        if positions == "attribute":
            return "attribute"
        raise ValueError(f"positions must be 'all', 'attribute', a WordPositions or a bool mask, got {positions!r}")
    if isinstance(positions, WordPositions):
        return positions.mask
    mask = torch.as_tensor(positions)
    if mask.dtype != torch.bool:
        if mask.dtype.is_floating_point or mask.dtype.is_complex:
            raise ValueError(f"a position mask must be boolean (or 0/1 integers), got dtype {mask.dtype}")
        if bool(((mask != 0) & (mask != 1)).any()):
            raise ValueError("an integer position mask may only hold 0 and 1")
        mask = mask.bool()
    if mask.ndim not in (1, 2):
        raise ValueError(f"a position mask must be [batch, pos] or [pos], got shape {tuple(mask.shape)}")
    return mask


