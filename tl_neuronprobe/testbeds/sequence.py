"""A planted neuron that fires on a two-token sequence, through a hand-built previous-token head.

Built from :func:`tl_neuronprobe.testing.planted_weights`: the planted token embeddings keep their 64
dimensions, and the residual stream gains a one-hot position subspace (``n_ctx`` dims) and a copy subspace
(64 dims). In layer 0, head 0 attends from each position to the previous one (queries and keys read the
position subspace; the key of position ``s`` matches the query of ``s + 1``) and copies that token's embedding
into the copy subspace. Layer-1 neuron :data:`SEQUENCE_NEURON` reads the current token's embedding
direction of ``second`` plus the copied direction of ``first``; its scale and bias are calibrated on every
token pair so that it fires (activation about 3) on ``first second`` and nowhere else (about -0.16 at best).
Both TransformerLens generations compute the same function (:func:`tl_neuronprobe.testing.build_model`).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from ..core.neurons import Neuron
from .planted import SPECIALS, build_model, planted_weights, word_tokenizer

#: the layer-1 MLP neuron planted to fire on the pair (``first``, ``second``)
SEQUENCE_NEURON = Neuron(1, 61)
DEFAULT_PAIR = ("old", "house")


def _pad(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    out = np.zeros(shape)
    out[tuple(slice(0, s) for s in a.shape)] = a
    return out


def sequence_weights(first: str = DEFAULT_PAIR[0], second: str = DEFAULT_PAIR[1], seed: int = 0, n_ctx: int = 16,
                     query_gain: float = 1.6, copy_gain: float = 0.4) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Uncalibrated weights (the sequence neuron without scale and bias) and the tokenizer's words."""
    base, words, _ = planted_weights(seed=seed, n_ctx=n_ctx)
    base = {k: v.double().numpy() for k, v in base.items()}
    for w in (first, second):
        if w not in words or w in SPECIALS:
            raise ValueError(f"{w!r} is not a word of the planted vocabulary")
    V, D0 = base["embed.W_E"].shape
    n_layers = 1 + max(int(k.split(".")[1]) for k in base if k.startswith("blocks."))
    H, _, dh0 = base["blocks.0.attn.W_Q"].shape
    P, C = D0, D0 + n_ctx  # start of the position and copy subspaces
    D = D0 + n_ctx + D0
    dh = D // H
    if dh < max(D0, n_ctx + 1, dh0):
        raise ValueError("the head dimension is too small for the copy")
    W = {"embed.W_E": _pad(base["embed.W_E"], (V, D)), "pos_embed.W_pos": np.zeros((n_ctx, D)),
         "ln_final.w": np.ones(D), "ln_final.b": np.zeros(D), "unembed.W_U": _pad(base["unembed.W_U"], (D, V)),
         "unembed.b_U": np.zeros(V)}
    W["pos_embed.W_pos"][np.arange(n_ctx), P + np.arange(n_ctx)] = 3.0
    M = base["blocks.0.mlp.W_in"].shape[1]
    for layer in range(n_layers):
        p = f"blocks.{layer}."
        W.update({p + "ln1.w": np.ones(D), p + "ln1.b": np.zeros(D), p + "ln2.w": np.ones(D),
                  p + "ln2.b": np.zeros(D), p + "attn.b_O": np.zeros(D), p + "mlp.b_out": np.zeros(D),
                  p + "mlp.b_in": base[p + "mlp.b_in"].copy(),
                  p + "mlp.W_in": _pad(base[p + "mlp.W_in"], (D, M)),
                  p + "mlp.W_out": _pad(base[p + "mlp.W_out"], (M, D))})
        for x in "QKV":
            W[p + f"attn.W_{x}"] = _pad(base[p + f"attn.W_{x}"], (H, D, dh))
            W[p + f"attn.b_{x}"] = np.zeros((H, dh))
        W[p + "attn.W_O"] = np.zeros((H, dh, D))  # no head writes, except the previous-token head below
    # layer 0, head 0: query at t matches key at t - 1 through the one-hot positions; copy the token part
    t = np.arange(n_ctx)
    W["blocks.0.attn.W_Q"][0] = 0.0
    W["blocks.0.attn.W_K"][0] = 0.0
    W["blocks.0.attn.W_V"][0] = 0.0
    W["blocks.0.attn.W_Q"][0][P + t, t] = query_gain
    W["blocks.0.attn.W_K"][0][P + t[:-1], t[1:]] = query_gain
    W["blocks.0.attn.W_V"][0][np.arange(D0), np.arange(D0)] = 1.0
    W["blocks.0.attn.W_O"][0][np.arange(D0), C + np.arange(D0)] = copy_gain
    # the sequence neuron: the current token's direction of `second` and the copied direction of `first`
    j = SEQUENCE_NEURON.index
    e_first = base["embed.W_E"][words.index(first)]
    e_second = base["embed.W_E"][words.index(second)]
    w_in = np.zeros(D)
    w_in[:D0] = e_second / np.linalg.norm(e_second)
    w_in[C:] = e_first / np.linalg.norm(e_first)
    W[f"blocks.{n_layers - 1}.mlp.W_in"][:, j] = w_in
    W[f"blocks.{n_layers - 1}.mlp.b_in"][j] = 0.0
    W[f"blocks.{n_layers - 1}.mlp.W_out"][j] = 0.0
    return {k: torch.tensor(v, dtype=torch.float32) for k, v in W.items()}, words


def _pair_preactivations(model, words: list[str]) -> torch.Tensor:
    """Sequence-neuron pre-activation on ``BOS a b`` for every pair of non-special words [V', V']."""
    from ..core.adapter import ModelAdapter

    adapter = ModelAdapter(model)
    ids = torch.as_tensor([i for i, w in enumerate(words) if w not in SPECIALS])
    a, b = torch.meshgrid(ids, ids, indexing="ij")
    bos = torch.full((a.numel(), 1), words.index("<bos>"))
    tokens = torch.cat([bos, a.reshape(-1, 1), b.reshape(-1, 1)], dim=1)
    out = {}

    def grab(act, hook=None):  # noqa: ARG001
        out["pre"] = act[:, -1, SEQUENCE_NEURON.index].detach()
    with torch.no_grad():
        adapter.forward(tokens, [(f"blocks.{SEQUENCE_NEURON.layer}.mlp.hook_pre", grab)],
                        stop_at_layer=SEQUENCE_NEURON.layer + 1)
    return out["pre"].reshape(len(ids), len(ids))


@functools.lru_cache(maxsize=8)
def _calibrated(first: str, second: str, seed: int, generation: str) -> tuple[float, float, float]:
    weights, words = sequence_weights(first, second, seed)
    model = build_model(weights, word_tokenizer(words), n_heads=2, generation=generation)
    pre = _pair_preactivations(model, words)
    content = [w for w in words if w not in SPECIALS]
    target = pre[content.index(first), content.index(second)]
    others = pre.clone()
    others[content.index(first), content.index(second)] = -float("inf")
    runner_up = others.max()
    if not target > runner_up:
        raise ValueError(f"the pair ({first!r}, {second!r}) is not separable in this construction; "
                         "choose other words")
    scale = 4.0 / float(target - runner_up)  # target -> +3, the best other pair -> -1
    return scale, 3.0 - scale * float(target), float(target - runner_up)


def sequence_model(generation: str = "auto", first: str = DEFAULT_PAIR[0], second: str = DEFAULT_PAIR[1],
                   seed: int = 0):
    """The two-token planted model; ``model.planted_sequence`` maps :data:`SEQUENCE_NEURON` to the pair."""
    from .planted import _resolve_generation

    generation = _resolve_generation(generation)
    scale, bias, margin = _calibrated(first, second, seed, generation)
    weights, words = sequence_weights(first, second, seed)
    layer, j = SEQUENCE_NEURON.layer, SEQUENCE_NEURON.index
    weights[f"blocks.{layer}.mlp.W_in"][:, j] *= scale
    weights[f"blocks.{layer}.mlp.b_in"][j] = bias
    model = build_model(weights, word_tokenizer(words), n_heads=2, generation=generation)
    model.planted_sequence = {SEQUENCE_NEURON: (first, second)}
    model.planted_margin = margin * scale
    return model
