"""Repeatability, framing and positions per model family, hooks, fluency, result tables."""

from __future__ import annotations

import math

import pytest
import torch

import tl_neuronprobe as tnp
from tl_neuronprobe.textualization import Dense, Discrete, Gumbel, TextualizeConfig, textualize
from tl_neuronprobe.textualization._problem import Problem
from tl_neuronprobe.textualization._results import COLUMNS
from tl_neuronprobe.textualization._vocab import framing

from textualize_helpers import activation_from_words, n_hooks


@pytest.mark.parametrize("optimizer", [Gumbel(max_steps=12), Dense(max_steps=12), Discrete(max_steps=12)])
def test_same_seed_same_result(planted, optimizer):
    neurons = ["L1.N5", "L1.N30", "L0.N9"]
    config = TextualizeConfig(optimizer=optimizer, length=3, corpus=None, seed=3)
    a = textualize(planted, neurons, config, progress=False).table
    b = textualize(planted, neurons, config, progress=False).table
    assert a[["text", "activation", "similarity"]].equals(b[["text", "activation", "similarity"]])


def test_result_table_columns_and_lookup(planted):
    config = TextualizeConfig(optimizer=Gumbel(max_steps=10), length=2, corpus=tnp.Corpus.synthetic(30, seed=0))
    res = textualize(planted, "L1.N57,L1.N5", config, progress=False)
    t = res.to_frame()
    assert list(t.columns) == COLUMNS
    assert list(t.neuron) == ["L1.N57", "L1.N5"]  # the order asked
    assert res["L1.N5"].neuron == tnp.Neuron(1, 5) and res[0].neuron == tnp.Neuron(1, 57)
    assert (t.max_steps == 10).all() and (t.seconds > 0).all() and t.optimizer.eq("gumbel").all()
    assert res.config == config.to_dict() and res.info["position"] == 1
    assert all(len(tok) == 2 for tok in t.tokens)
    # the trigger's optimized text reaches its corpus maximum; the win rate is the share that do
    assert res["L1.N57"].beats_corpus and res["L1.N57"].activation > 3.5
    assert res.win_rate == pytest.approx((t.activation >= t.corpus_max).mean())
    unreachable = textualize(planted, "L1.N57,L1.N5", config, progress=False,
                             corpus_max={"L1.N57": 100.0, "L1.N5": (100.0, "x")})
    assert unreachable.win_rate == 0.0 and unreachable["L1.N5"].corpus_text == "x"
    with pytest.raises(KeyError, match="L1.N6"):
        res["L1.N6"]


@pytest.mark.parametrize("kind", ["gpt2", "bert"])
def test_soft_inputs_reproduce_token_inputs(generation, kind):
    """The token-embedding hook carries the token embeddings alone: positions, token types and the
    embedding LayerNorm are added by the model after it, for decoders and encoders alike."""
    if kind == "bert" and generation != "bridge":
        pytest.skip("encoders are TransformerBridge only")
    model = tnp.testing.tiny_model(generation, kind, seed=1)
    adapter = tnp.ModelAdapter(model)
    neurons = [tnp.Neuron(0, 1), tnp.Neuron(1, 7, "resid.pre"), tnp.Neuron(1, 9, "attn.z")]
    p = Problem(adapter, neurons, length=4, position=1)
    rows = p.rows(range(3), 2)
    idx = torch.randint(p.n_allowed, (6, 4), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        hard, _ = p.forward(rows, tokens=p.allowed[idx], target=True)
        soft, _ = p.forward(rows, embeds=p.E[idx], target=True)
        permuted, _ = p.forward(rows, embeds=p.E[idx.flip(1)], target=True)
    assert torch.allclose(hard, soft, atol=1e-5)
    assert not torch.allclose(soft, permuted, atol=1e-3)  # order matters: positions are applied
    # read at the requested position of the framed text, as the adapter's own tokenization gives it
    words = [p.names[int(i)] for i in p.allowed[idx[0]]]
    assert hard[0].item() == pytest.approx(activation_from_words(model, neurons[0], words, 1), abs=1e-5)


def test_framing_per_family(planted, tiny_bert):
    pre, post = framing(tnp.ModelAdapter(planted))
    assert pre == [planted.tokenizer.bos_token_id] and post == []
    p = Problem(tnp.ModelAdapter(tiny_bert), [tnp.Neuron(0, 0)], length=5, position=None, soft=False)
    assert p.encoder and p.pos == 2  # encoders read the middle token by default
    assert Problem(tnp.ModelAdapter(planted), [tnp.Neuron(0, 0)], 5, None, soft=False).pos == 4


def test_encoder_reads_the_chosen_position(tiny_bert):
    n = tnp.Neuron(1, 11)
    for position in (0, 2):
        config = TextualizeConfig(optimizer=Discrete(max_steps=8), length=3, position=position, corpus=None)
        res = textualize(tiny_bert, [n], config, progress=False)
        r = res[0]
        assert r.activation == pytest.approx(activation_from_words(tiny_bert, n, r.tokens, position), abs=1e-4)
        assert math.isnan(r.fluency)  # no self cross-entropy for encoders


def test_decoder_position_zero(planted):
    (neuron, word), = planted.planted.trigger.items()
    config = TextualizeConfig(optimizer=Discrete(max_steps=25), length=3, position=0, corpus=None)
    r = textualize(planted, [neuron], config, progress=False)[0]
    assert r.tokens[0] == word


def test_hooks_never_left_behind(planted, monkeypatch):
    before = n_hooks(planted)
    textualize(planted, ["L1.N5"], TextualizeConfig(optimizer=Gumbel(max_steps=3), length=2, corpus="synthetic:10"),
               progress=False)
    assert n_hooks(planted) == before
    discrete = TextualizeConfig(optimizer=Discrete(max_steps=3), length=2, corpus=None)
    with pytest.raises(ValueError):
        textualize(planted, ["L1.N5"], discrete.replace(vocab=lambda t: False), progress=False)
    assert n_hooks(planted) == before

    class Stop(Exception):
        pass

    original = Problem._reads

    def failing(self, *args, **kwargs):  # a hook that fails mid-pass, with every other hook attached
        hooks = original(self, *args, **kwargs)

        def boom(act, hook=None):
            raise Stop
        return hooks + [(hooks[0][0], boom)]
    monkeypatch.setattr(Problem, "_reads", failing)
    with pytest.raises(Stop):
        textualize(planted, ["L1.N5"], discrete, progress=False)
    monkeypatch.undo()
    assert n_hooks(planted) == before
    textualize(planted, ["L1.N5"], discrete.replace(optimizer=Discrete(max_steps=2)), progress=False)


def test_fluency_weight_lowers_self_cross_entropy(planted):
    def run(fluency):
        config = TextualizeConfig(optimizer=Discrete(max_steps=20, restarts=2, fluency=fluency), length=4,
                                  corpus=None, seed=0)
        return textualize(planted, ["L1.N30"], config, progress=False)[0]
    plain = run(0.0)
    fluent = run(10.0)
    assert fluent.fluency < plain.fluency
    population = run((0.1, 10.0))  # log-spaced weights
    assert population.activation > 0 and not math.isnan(population.fluency)


def test_vocab_restrictions(planted):
    allowed = ["dog", "cat", "cabinet", "red"]
    r = textualize(planted, ["L1.N57"], TextualizeConfig(optimizer=Gumbel(max_steps=40), length=2, vocab=allowed,
                                                         corpus=None), progress=False)[0]
    assert set(r.tokens) <= set(allowed) and r.tokens[-1] == "cabinet"
    r = textualize(planted, ["L1.N57"], TextualizeConfig(optimizer=Discrete(max_steps=10), length=2, corpus=None,
                                                         vocab=lambda t: t != "cabinet"), progress=False)[0]
    assert "cabinet" not in r.tokens and r.activation < 1.0
    ids = planted.tokenizer.convert_tokens_to_ids(["dog", "cats"])
    r = textualize(planted, ["L1.N5"], TextualizeConfig(optimizer=Dense(max_steps=10), length=2, vocab=ids,
                                                        corpus=None), progress=False)[0]
    assert set(r.token_ids) <= set(ids)


def test_discrete_started_from_the_corpus_never_falls_below_it(planted):
    corpus = tnp.Corpus.synthetic(40, seed=3)
    neurons = ["L1.N5", "L1.N30", "L1.N50", "L1.N57"]
    config = TextualizeConfig(optimizer=Discrete(max_steps=3, init="corpus"), length=3, corpus=corpus)
    res = textualize(planted, neurons, config, progress=False)
    for r in res:
        assert r.activation >= r.corpus_max - 1e-5


def test_ratio_needs_a_positive_corpus_maximum():
    from tl_neuronprobe.textualization._results import NeuronText

    r = NeuronText(tnp.Neuron(0, 1), "gumbel", ["a"], [5], "a", activation=0.5, corpus_max=-0.2)
    assert math.isnan(r.ratio) and r.beats_corpus
    r = NeuronText(tnp.Neuron(0, 1), "gumbel", ["a"], [5], "a", activation=0.5, corpus_max=2.0)
    assert r.ratio == pytest.approx(0.25) and not r.beats_corpus
