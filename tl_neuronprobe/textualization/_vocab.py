"""Which tokens textualization may use and how text is framed: vocabulary restrictions, token names, the
tokenizer's special-token framing, and the error every textualization step raises. Not the optimization."""

from __future__ import annotations

import re
from typing import Callable, Sequence, Union

import numpy as np
import torch

from ..core.adapter import ModelAdapter

_UNUSED_TOKEN = re.compile(r"^(\[unused\d+\]|<unused\d+>|<extra_id_\d+>)$")

#: allowed tokens: ids, token strings (or single-token words), a predicate on the token string, a boolean mask
VocabSpec = Union[Sequence[int], Sequence[str], Callable[[str], bool], torch.Tensor, None]


class TextualizeError(ValueError):
    """The model, neurons or options cannot be textualized; the message names the problem."""


def framing(adapter: ModelAdapter) -> tuple[list[int], list[int]]:
    """Token ids the tokenizer puts before and after a text (``[CLS]``/``[SEP]``, BOS), as corpus text gets."""
    tok = adapter.tokenizer
    if tok is None:
        raise TextualizeError(f"{adapter.name} has no tokenizer: textualize needs one to frame and read out text")
    plain = list(tok("the", add_special_tokens=False)["input_ids"])
    full = list(tok("the", add_special_tokens=True)["input_ids"])
    start = next((i for i in range(len(full) - len(plain) + 1) if full[i:i + len(plain)] == plain), None)
    if start is None or not plain:
        raise TextualizeError(f"cannot locate the text inside the tokenizer's special-token framing {full}")
    prefix, suffix = full[:start], full[start + len(plain):]
    bos = tok.bos_token_id
    if not adapter.is_encoder and adapter.prepend_bos and bos is not None and (not prefix or prefix[0] != bos):
        prefix = [int(bos)] + prefix
    return [int(i) for i in prefix], [int(i) for i in suffix]


def token_names(adapter: ModelAdapter) -> list[str]:
    """The tokenizer's name for every embedding row (``''`` for rows past the tokenizer's vocabulary)."""
    tok = adapter.tokenizer
    n = min(adapter.d_vocab, len(tok)) if tok is not None else 0
    names = [str(t) for t in tok.convert_ids_to_tokens(list(range(n)))] if n else []
    return names + [""] * (adapter.d_vocab - n)


def resolve_vocab(adapter: ModelAdapter, vocab: VocabSpec = None) -> torch.Tensor:
    """Allowed token ids (sorted, CPU) from ``vocab``: None (every real, non-special token), token ids, token
    strings or single-token words, a predicate on the token string, or a boolean mask over the vocabulary."""
    names = token_names(adapter)
    if vocab is None:
        special = set(int(i) for i in (getattr(adapter.tokenizer, "all_special_ids", None) or []))
        ids = [i for i, name in enumerate(names) if i not in special and name and not _UNUSED_TOKEN.match(name)]
        what = "the default vocabulary (non-special tokens)"
    elif callable(vocab):
        ids = [i for i, name in enumerate(names) if name and vocab(name)]
        what = "the vocabulary predicate"
    elif isinstance(vocab, torch.Tensor) and vocab.dtype == torch.bool:
        if vocab.shape != (adapter.d_vocab,):
            raise TextualizeError(f"a boolean vocabulary mask must have shape ({adapter.d_vocab},), "
                                  f"got {tuple(vocab.shape)}")
        ids = torch.nonzero(vocab.cpu()).flatten().tolist()
        what = "the vocabulary mask"
    else:
        items = vocab.tolist() if isinstance(vocab, torch.Tensor) else list(vocab)
        ids = _listed_ids(adapter, items)
        what = f"the vocabulary list of {len(items)} entries"
    ids = sorted(set(ids))
    if not ids:
        raise TextualizeError(f"{what} leaves no token to optimize over")
    return torch.as_tensor(ids, dtype=torch.long)


def _listed_ids(adapter: ModelAdapter, items: Sequence) -> list[int]:
    """Token ids of listed ids, token strings or single-token words; errors name what is not a token."""
    ids, unknown = [], []
    for item in items:
        if isinstance(item, (int, np.integer)):
            if not 0 <= int(item) < adapter.d_vocab:
                raise TextualizeError(f"token id {item} is outside the vocabulary 0..{adapter.d_vocab - 1}")
            ids.append(int(item))
            continue
        tid = single_token(adapter.tokenizer, str(item))
        (unknown if tid is None else ids).append(str(item) if tid is None else tid)
    if unknown:
        raise TextualizeError(f"not single tokens of {adapter.name}'s tokenizer: {unknown[:10]}"
                              + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""))
    return ids


def single_token(tok, text: str) -> int | None:
    """The id of ``text`` as one token (a token string or a word the tokenizer keeps whole), else None."""
    if tok is None:
        return None
    tid = tok.convert_tokens_to_ids(text)
    unk = tok.unk_token_id
    if tid is not None and (tid != unk or text == tok.unk_token):
        return int(tid)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    return int(ids[0]) if len(ids) == 1 and ids[0] != unk else None
