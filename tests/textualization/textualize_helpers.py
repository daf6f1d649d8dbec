"""Helpers shared by the textualization tests (independent of the code under test)."""

from __future__ import annotations

import torch

import tl_neuronprobe as tnp


def n_hooks(model) -> int:
    """Forward hooks attached anywhere in the model."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def activation_from_words(model, neuron, words, position) -> float:
    """The neuron on ``words`` (word-level tokenizer: one token each), tokenized by the adapter the way corpus
    text is (its own specials and BOS), read at the token of word ``position``: independent of textualize."""
    adapter = tnp.ModelAdapter(model)
    sent = adapter.tokenize_sentences([list(words)])[0]
    tok_pos = int((torch.as_tensor(sent.word_of_token) == position % len(words)).nonzero()[0, 0])
    out = {}

    def grab(act, hook=None):
        out["v"] = act.reshape(act.shape[0], act.shape[1], -1)[0, tok_pos, neuron.index].item()
    with torch.no_grad():
        adapter.forward(torch.as_tensor(sent.input_ids)[None], [(neuron.hook_name, grab)])
    return out["v"]
