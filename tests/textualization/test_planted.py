"""Ground truth: planted neurons whose driving tokens are known must be recovered by every optimizer."""

from __future__ import annotations

import pytest

import tl_neuronprobe as tnp
from tl_neuronprobe.textualization import Dense, Discrete, Gumbel, TextualizeConfig, textualize
from tl_neuronprobe.testbeds.sequence import SEQUENCE_NEURON

from textualize_helpers import activation_from_words, count_forward_rows, random_search

BUDGET = {"gumbel": Gumbel(max_steps=120), "dense": Dense(max_steps=120), "discrete": Discrete(max_steps=25)}
#: budgets under which brute force is not sure to win: with 105 words, random search over as many sequences finds
#: "... cabinet" with probability 1 - (104/105)^evaluations (about 0.4 here; at BUDGET: 0.93 to 1.00). Chosen on
#: seeds 0-9; SEEDS are others.
SMALL = {"gumbel": Gumbel(max_steps=20, samples=2, restarts=1), "dense": Dense(max_steps=12),
         "discrete": Discrete(max_steps=4, restarts=1, candidates=8, top_tokens=4)}
SEEDS = range(10, 18)


@pytest.mark.parametrize("method", ["gumbel", "dense", "discrete"])
def test_single_token_trigger_is_found(planted, method):
    (neuron, word), = planted.planted.trigger.items()
    res = textualize(planted, [neuron], TextualizeConfig(optimizer=BUDGET[method], length=3, seed=0, corpus=None),
                     progress=False)
    r = res[neuron]
    assert r.tokens[-1] == word, f"{method} found {r.tokens}, not ...{word}"
    assert r.activation > 3.5  # the neuron's activation on its trigger (about 3.96); about 0 elsewhere
    # the reported activation is that of the discrete tokens, as plain text would give it
    assert r.activation == pytest.approx(activation_from_words(planted, neuron, r.tokens, -1), abs=1e-4)


@pytest.mark.parametrize("method", ["gumbel", "dense", "discrete"])
def test_optimizers_beat_random_search_with_as_many_model_evaluations(planted, method):
    """The trigger vocabulary is small enough to brute-force, so finding the trigger proves little on its own:
    each optimizer must find it more often than random search given the same number of forward passes
    (sequences through the model, counted from outside; random search gets no backward passes to pay for)."""
    (neuron, word), = planted.planted.trigger.items()
    found, hits, best, baseline = 0, 0, [], []
    for seed in SEEDS:
        with count_forward_rows(planted) as count:
            config = TextualizeConfig(optimizer=SMALL[method], length=3, seed=seed, corpus=None)
            r = textualize(planted, [neuron], config, progress=False)[neuron]
        assert 0 < count["rows"] < 100, count  # a budget where random search misses about half the time
        tokens, activation = random_search(planted, neuron, count["rows"], length=3, seed=seed)
        found += r.tokens[-1] == word
        hits += tokens[-1] == word
        best.append(r.activation)
        baseline.append(activation)
    assert found >= len(SEEDS) - 1, (method, found)
    assert hits <= len(SEEDS) - 3 and found - hits >= 3, (method, found, hits)
    assert sum(best) / len(best) > sum(baseline) / len(baseline) + 1.0, (best, baseline)


@pytest.mark.parametrize("method", ["gumbel", "dense", "discrete"])
def test_two_token_sequence_is_found(sequence_planted, method):
    first, second = sequence_planted.planted_sequence[SEQUENCE_NEURON]
    config = TextualizeConfig(optimizer=BUDGET[method], length=3, seed=1, corpus=None)
    res = textualize(sequence_planted, [SEQUENCE_NEURON], config, progress=False)
    r = res[0]
    assert r.tokens[-2:] == [first, second], f"{method} found {r.tokens}, not ...{first} {second}"
    assert r.activation > 2.5  # about 3 on the pair, below 0 on every other pair
    assert r.activation == pytest.approx(
        activation_from_words(sequence_planted, SEQUENCE_NEURON, r.tokens, -1), abs=1e-4)


def test_sequence_model_fires_on_its_pair_only(sequence_planted):
    from tl_neuronprobe.testbeds.sequence import _pair_preactivations, sequence_weights

    first, second = sequence_planted.planted_sequence[SEQUENCE_NEURON]
    _, words = sequence_weights(first, second)
    pre = _pair_preactivations(sequence_planted, words)
    content = [w for w in words if w not in tnp.testing.SPECIALS]
    best = int(pre.argmax())
    assert (content[best // len(content)], content[best % len(content)]) == (first, second)
    assert pre.max() == pytest.approx(3.0, abs=1e-3)
    assert pre.flatten().topk(2).values[1] == pytest.approx(-1.0, abs=1e-3)
    # and the pair also drives it further along a sequence (the head attends to the previous position only)
    assert activation_from_words(sequence_planted, SEQUENCE_NEURON, ["the", "cat", first, second], -1) > 2.5
    assert activation_from_words(sequence_planted, SEQUENCE_NEURON, [first, "cat", second], -1) < 0.1


def test_batched_neurons_each_read_their_own_neuron(planted):
    """Many neurons in one batch (different sites): each row is scored on its own neuron."""
    (trigger, word), = planted.planted.trigger.items()
    neurons = [trigger, tnp.Neuron(1, 5), tnp.Neuron(1, 30), tnp.Neuron(1, 7, "resid.post"),
               tnp.Neuron(0, 3, "attn.z")]
    res = textualize(planted, neurons, TextualizeConfig(optimizer=Discrete(max_steps=15), length=2, corpus=None),
                     progress=False)
    assert res[trigger].tokens[-1] == word
    for r in res:
        assert r.activation == pytest.approx(activation_from_words(planted, r.neuron, r.tokens, -1), abs=1e-4)
