"""Descriptions meet interventions: does ablating a described neuron change the model more on matching words?

For each neuron, the neuron is ablated (``tnp.interventions.Zero()`` or ``Mean()``) at every position and the
change of the model's output distribution (KL from the clean one) is read at each word's last token; the table
compares words that match the description with words that do not. Large on matching words: the described
concept is used there; near zero everywhere: it is at most encoded. Not for finding descriptions.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch

from .. import interventions
from ..core.adapter import ModelAdapter
from ..data.corpus import Corpus
from ._compose import evaluate, parse_formula
from ._result import Descriptions


def _last_tokens(word_of_token: torch.Tensor, lengths: Sequence[int]) -> list[np.ndarray]:
    """Per row, the position of each word's last token."""
    wot = word_of_token.cpu().numpy()
    out = []
    for row, n in enumerate(lengths):
        pos = np.full(n, -1, dtype=np.int64)
        for p, w in enumerate(wot[row]):
            if w >= 0:
                pos[w] = p
        out.append(pos)
    return out


@torch.no_grad()
def description_effects(model, corpus: Corpus, descriptions: Descriptions, neurons: Sequence[str] | None = None,
                        edit: "str | interventions.Zero | interventions.Mean" = "zero", activations=None,
                        batch_size: int = 32) -> pd.DataFrame:
    """Per described neuron: mean KL(clean || ablated) on words matching the description and on the others.

    ``edit``: ``"zero"`` / ``Zero()`` or ``"mean"`` / ``Mean()`` (needs ``activations`` holding the neurons). ``corpus`` must be the
    corpus the descriptions were made on (same words, same order).
    """
    if descriptions.concepts.n_words != corpus.n_words:
        raise ValueError(f"the descriptions cover {descriptions.concepts.n_words} words, the corpus {corpus.n_words}")
    if isinstance(edit, str):
        if edit not in ("zero", "mean"):
            raise ValueError(f"edit must be 'zero' or 'mean', got {edit!r}")
        edit = interventions.Zero() if edit == "zero" else interventions.Mean()
    if not isinstance(edit, (interventions.Zero, interventions.Mean)):
        raise ValueError(f"edit must be Zero() or Mean(), got {edit!r}")
    name = "zero" if isinstance(edit, interventions.Zero) else "mean"
    t = descriptions.table[(descriptions.table["end"] == "top") & descriptions.table["described"]]
    if neurons is not None:
        t = t[t["neuron"].isin([str(n) for n in neurons])]
    if t.empty:
        raise ValueError("no described neuron to intervene on")
    adapter = ModelAdapter.wrap(model)
    kl = {n: np.full(corpus.n_words, np.nan) for n in t["neuron"]}
    offsets = np.cumsum([0] + [len(s) for s in corpus.sentences])
    for start in range(0, len(corpus), batch_size):
        sents = corpus.sentences[start:start + batch_size]
        batch = adapter.collate(adapter.tokenize_sentences([s.words for s in sents]))
        clean = adapter.forward(batch).log_softmax(-1)
        last = _last_tokens(batch.word_of_token, [len(s) for s in sents])
        for neuron in t["neuron"]:
            applied = (edit.bind(adapter, [neuron]) if name == "zero"
                       else edit.bind(adapter, [neuron], activations=activations))
            ablated = adapter.forward(batch, applied.hooks()).log_softmax(-1)
            div = (clean.exp() * (clean - ablated)).sum(-1).cpu().numpy()
            for r, pos in enumerate(last):
                ok = pos >= 0
                kl[neuron][offsets[start + r] + np.flatnonzero(ok)] = div[r, pos[ok]]
    rows = []
    for _, row in t.iterrows():
        match = evaluate(parse_formula(row["formula"]), descriptions.concepts)
        v = kl[row["neuron"]]
        on, off = v[match & ~np.isnan(v)], v[~match & ~np.isnan(v)]
        rows.append(dict(neuron=row["neuron"], description=row["description"], n_match=len(on), n_other=len(off),
                         effect_match=on.mean() if len(on) else np.nan, effect_other=off.mean() if len(off) else np.nan))
    out = pd.DataFrame(rows)
    out["ratio"] = out["effect_match"] / out["effect_other"].where(out["effect_other"] > 0)
    return out.assign(edit=name)
