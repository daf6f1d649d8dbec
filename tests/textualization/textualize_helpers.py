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


def count_forward_rows(model):
    """A context manager counting the sequences (batch rows) that go through the model's first block, forward
    passes only: how many model evaluations an optimizer spent, measured from outside textualize."""
    import contextlib

    @contextlib.contextmanager
    def counting():
        box = {"rows": 0}
        point = model.hook_dict["blocks.0.hook_resid_pre"]
        handle = point.register_forward_hook(lambda mod, inp, out: box.__setitem__("rows", box["rows"] + out.shape[0]))
        try:
            yield box
        finally:
            handle.remove()
    return counting()


def random_search(model, neuron, n_evals: int, length: int, seed: int, batch: int = 512) -> tuple[list[str], float]:
    """Baseline: ``n_evals`` uniformly random sequences of ``length`` words from the model's non-special
    vocabulary (what textualize optimizes over by default), each scored once at its last word; the best one and
    its activation. Same framing as text (the adapter's specials and BOS)."""
    adapter = tnp.ModelAdapter(model)
    special = set(adapter.tokenizer.all_special_ids)
    vocab = [w for w, i in sorted(adapter.tokenizer.get_vocab().items(), key=lambda kv: kv[1]) if i not in special]
    g = torch.Generator().manual_seed(seed)
    draws = torch.randint(0, len(vocab), (n_evals, length), generator=g)
    best, best_act = None, -float("inf")
    for start in range(0, n_evals, batch):
        sents = adapter.tokenize_sentences([[vocab[int(i)] for i in row] for row in draws[start:start + batch]])
        ids = torch.stack([torch.as_tensor(s.input_ids) for s in sents])
        tok_pos = [int((torch.as_tensor(s.word_of_token) == length - 1).nonzero()[0, 0]) for s in sents]
        out = {}

        def grab(act, hook=None):
            out["v"] = act.reshape(act.shape[0], act.shape[1], -1)[torch.arange(len(sents)), tok_pos, neuron.index]
        with torch.no_grad():
            adapter.forward(ids, [(neuron.hook_name, grab)])
        j = int(out["v"].argmax())
        if float(out["v"][j]) > best_act:
            best, best_act = [vocab[int(i)] for i in draws[start + j]], float(out["v"][j])
    return best, best_act
