"""Synthetic activations shaped like a part-of-speech probing set (for benchmarks).

Words are drawn from a Zipfian vocabulary; every word type has a main class and some
types are ambiguous, so the label depends on context.  A word's activation is a GELU of
a low-rank latent (class + word type + context noise) mapped to ``n_neurons`` neurons,
so neurons are correlated and the class is spread over many of them, as in real MLP
activations.  Sentences are consecutive runs of about 15 words.
"""

from __future__ import annotations

import numpy as np
import torch


def make_pos_like(
    n_words: int = 14_000,
    n_neurons: int = 9_216,
    n_classes: int = 17,
    n_types: int = 3_000,
    rank: int = 96,
    class_scale: float = 0.45,
    type_scale: float = 0.8,
    noise_scale: float = 1.0,
    ambiguity: float = 0.15,
    scaled_noise: bool = False,
    seed: int = 0,
):
    """Return ``X [n_words, n_neurons] float32, y [n_words] int64, sentence_ids, word_types``."""
    rng = np.random.default_rng(seed)
    class_p = 1.0 / np.arange(1, n_classes + 1) ** 0.9
    class_p /= class_p.sum()
    type_class = rng.choice(n_classes, size=n_types, p=class_p)
    type_p = 1.0 / np.arange(1, n_types + 1) ** 1.05
    type_p /= type_p.sum()
    types = rng.choice(n_types, size=n_words, p=type_p)
    y = type_class[types].copy()
    flip = rng.random(n_words) < ambiguity
    y[flip] = rng.choice(n_classes, size=int(flip.sum()), p=class_p)
    sentence_ids = np.repeat(np.arange(n_words // 15 + 1), 15)[:n_words].astype(np.int64)

    class_emb = rng.standard_normal((n_classes, rank))
    type_emb = rng.standard_normal((n_types, rank))
    latent = (
        class_scale * class_emb[y]
        + type_scale * type_emb[types]
        + noise_scale * rng.standard_normal((n_words, rank))
    )
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(rank, n_neurons, generator=g) / rank**0.5
    # a heavy-tailed gain per neuron, like real neurons of different scales
    gain = torch.exp(0.5 * torch.randn(n_neurons, generator=g))
    bias = -0.5 + 0.5 * torch.randn(n_neurons, generator=g)
    pre = torch.from_numpy(latent.astype(np.float32)) @ A
    pre = pre * gain + bias
    noise = 0.05 * torch.randn(n_words, n_neurons, generator=g)
    if scaled_noise:  # read-out noise proportional to the neuron's scale: no SNR advantage for big neurons
        noise = noise * gain
    X = torch.nn.functional.gelu(pre) + noise
    return X.contiguous(), torch.from_numpy(y.astype(np.int64)), sentence_ids, types
