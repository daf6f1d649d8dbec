"""``words_needed`` on a planted model where a word is written into exactly m neurons: it needs m.

The testbed (built here from the planted weights, one layer): the residual directions u_1..u_m are
orthonormal and orthogonal to every other token; the word's embedding is a mix of all m, and for every
proper subset S of the m neurons a decoy token sits exactly on the direction the subset's joint maximum
takes (sum of u_i over S). So the top-j neurons of the word, maximized jointly, land on a decoy for every
j < m and on the word only at j = m. Neuron j of the m reads u_j (pre-activation sqrt(D) cos(x, u_j)).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

import tl_neuronprobe as tnp
from tl_neuronprobe.textualization import Dense, WordsNeededConfig, words_needed
from tl_neuronprobe.textualization._words import WORD_COLUMNS

WORD = "table"
PLANTED = (10, 20, 30, 40)  # the neurons that carry the word (the first m of them)


def word_model(m: int, planted: bool = True, seed: int = 0):
    """Layer 0 writes WORD into the neurons PLANTED[:m]; returns (model, decoys by subset size)."""
    weights, words, _ = tnp.testing.planted_weights(seed=seed, n_layers=1)
    W = {k: v.double().numpy() for k, v in weights.items()}
    rng = np.random.default_rng(seed)
    D = W["embed.W_E"].shape[1]
    raw = rng.standard_normal((D, D))
    raw[:, 0] = 1.0
    basis = np.linalg.qr(raw)[0][:, 1:].T  # orthonormal, orthogonal to ones: LayerNorm only rescales
    u, rest = basis[:m], basis[m:]
    E = 2.0 * _unit(rng.standard_normal((len(words), len(rest))) @ rest)  # every token off span(u)
    E[words.index(WORD)] = 2.0 * _unit(np.linspace(1.0, 0.9, m) @ u)
    content = [w for w in words if w not in tnp.testing.SPECIALS and w != WORD]
    decoys: dict[int, list[str]] = {}
    subsets = [s for r in range(1, m) for s in itertools.combinations(range(m), r)]
    for word, subset in zip(content, subsets):
        E[words.index(word)] = 2.0 * _unit(u[list(subset)].sum(axis=0))
        decoys.setdefault(len(subset), []).append(word)
    W["embed.W_E"] = E
    M = W["blocks.0.mlp.W_in"].shape[1]
    W["blocks.0.mlp.W_in"] = _unit(rng.standard_normal((M, len(rest))) @ rest).T  # [D, M], off span(u)
    W["blocks.0.mlp.b_in"] = np.zeros(M)
    if planted:
        for j, direction in zip(PLANTED, u):
            W["blocks.0.mlp.W_in"][:, j] = direction
    tensors = {k: torch.tensor(v, dtype=torch.float32) for k, v in W.items()}
    model = tnp.testing.build_model(tensors, tnp.testing.word_tokenizer(words), n_heads=2)
    return model, decoys


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


CONFIG = WordsNeededConfig(ks=(1, 2, 3, 4), optimizer=Dense(max_steps=100, restarts=1), reference=200)


@pytest.mark.parametrize("m", [2, 3])
def test_a_word_written_into_m_neurons_needs_m(m):
    model, decoys = word_model(m)
    words = [WORD, decoys[1][0]] + ([decoys[2][0]] if m > 2 else [])
    res = words_needed(model, words, layers=0, config=CONFIG)
    table = res.table
    assert list(table.columns) == WORD_COLUMNS and len(table) == len(words) * 4
    needed = res.needed.set_index("word").needed
    assert needed[WORD] == m, table[table.word == WORD]
    assert needed[decoys[1][0]] == 1  # a decoy sits on one neuron's direction
    if m > 2:
        assert needed[decoys[2][0]] == 2
    mine = table[(table.word == WORD) & (table.k == m)].iloc[0]
    assert set(mine.neurons) == set(PLANTED[:m]) and mine["rank"] == 0 and mine.cosine > 0.99
    below = table[(table.word == WORD) & (table.k < m)]
    assert (~below.recovered).all() and below.nearest.isin(sum(decoys.values(), [])).all()
    curve = res.curve
    assert list(curve.columns) == ["layer", "k", "share", "words"]
    assert curve.set_index("k").share[m] == pytest.approx(table[table.k == m].recovered.mean())


def test_without_the_planted_neurons_the_word_is_not_recovered(tmp_path):
    model, decoys = word_model(3, planted=False)
    res = words_needed(model, [WORD], layers=[0], config=CONFIG)
    assert WordsNeededConfig.from_dict(res.config) == CONFIG
    assert not res.table.recovered.any() and math.isnan(res.needed.needed.iloc[0])
    res.plot(tmp_path / "words.png")
    assert (tmp_path / "words.png").stat().st_size > 1000


def test_words_must_be_single_tokens(planted):
    with pytest.raises(ValueError, match="single-token words.*zebra"):
        words_needed(planted, ["cabinet", "zebra"], 0, CONFIG.replace(ks=(1,), optimizer=Dense(max_steps=2)))
