"""Bad input gives one clear error naming the problem."""

from __future__ import annotations

import pytest

import tl_neuronprobe as tnp
from tl_neuronprobe.textualization import (CorpusSearch, Dense, Discrete, Gumbel, TextualizeConfig, TextualizeError,
                                           textualize)

QUICK = TextualizeConfig(optimizer=Gumbel(max_steps=2), corpus=None)
KW = dict(progress=False)
CORPUS = TextualizeConfig(optimizer=CorpusSearch(), corpus="synthetic:10")


@pytest.mark.parametrize("length", [0, -2])
def test_length_must_be_positive(planted, length):
    with pytest.raises(TextualizeError, match="length must be an integer >= 1"):
        QUICK.replace(length=length)


def test_length_beyond_context(planted):
    with pytest.raises(TextualizeError, match="exceeds the context of 32 tokens"):
        textualize(planted, ["L1.N5"], QUICK.replace(length=40), **KW)


def test_position_outside_the_tokens(planted):
    with pytest.raises(TextualizeError, match="position 3 is outside the 3 optimized tokens"):
        textualize(planted, ["L1.N5"], QUICK.replace(length=3, position=3), **KW)


@pytest.mark.parametrize("vocab, message", [
    ([], "leaves no token"),
    (lambda token: False, "vocabulary predicate leaves no token"),
    (["dog", "zebra", "unicorn"], r"not single tokens .*\['zebra', 'unicorn'\]"),
    ([10_000], "token id 10000 is outside the vocabulary"),
])
def test_vocabulary_restrictions(planted, vocab, message):
    with pytest.raises(TextualizeError, match=message):
        textualize(planted, ["L1.N5"], QUICK.replace(vocab=vocab), **KW)


def test_neurons_that_do_not_exist(planted):
    with pytest.raises(ValueError, match="out of range"):
        textualize(planted, ["L1.N999"], QUICK, **KW)
    with pytest.raises(ValueError, match="layers \\[5\\] do not exist"):
        textualize(planted, ["L5.N1"], QUICK, **KW)
    with pytest.raises(ValueError, match="unknown site"):
        textualize(planted, ["L1.N1@mlp.nope"], QUICK, **KW)
    with pytest.raises(TextualizeError, match="no neurons given"):
        textualize(planted, [], QUICK, **KW)


def test_unknown_optimizer_and_bad_options(planted):
    with pytest.raises(TextualizeError, match="optimizer must be one of Gumbel"):
        TextualizeConfig(optimizer="beam")
    with pytest.raises(TextualizeError, match="Gumbel.max_steps must be an integer >= 1"):
        Gumbel(max_steps=0)
    with pytest.raises(TextualizeError, match="Discrete.init must be"):
        Discrete(init="zeros")
    with pytest.raises(TextualizeError, match="fluency range must be 0 < low <= high"):
        Discrete(fluency=(1.0, 0.1))
    with pytest.raises(TextualizeError, match="Dense.lr must be a number > 0"):
        Dense(lr=0)
    with pytest.raises(TextualizeError, match="CorpusSearch needs a corpus"):
        TextualizeConfig(optimizer=CorpusSearch(), corpus=None)
    with pytest.raises(TextualizeError, match="dtype must be one of"):
        TextualizeConfig(dtype="float64")
    with pytest.raises(TextualizeError, match="config must be a TextualizeConfig"):
        textualize(planted, ["L1.N5"], Gumbel(), **KW)


def test_fluency_needs_a_decoder(tiny_bert):
    with pytest.raises(TextualizeError, match="is an encoder"):
        textualize(tiny_bert, ["L1.N5"], QUICK.replace(optimizer=Discrete(max_steps=2, fluency=1.0)), **KW)


def test_site_the_gradient_cannot_reach(planted):
    """A hook that detaches the neuron from the input: gradient methods refuse, naming the neuron and hook;
    the corpus scan still works."""
    detach = [("blocks.1.mlp.hook_pre", lambda act, hook: act.detach()),
              ("blocks.1.mlp.hook_post", lambda act, hook: act.detach())]
    with planted.hooks(fwd_hooks=detach):
        for optimizer in (Gumbel(max_steps=2), Dense(max_steps=2), Discrete(max_steps=2)):
            with pytest.raises(TextualizeError, match=r"neurons \['L1.N5'\] cannot be reached: no gradient "
                                                      r"flows .*blocks\.1\.mlp\.hook_pre"):
                textualize(planted, ["L1.N5", "L0.N2"], QUICK.replace(optimizer=optimizer), **KW)
        res = textualize(planted, ["L1.N5"], CORPUS, **KW)
        assert res[0].activation > 0


def test_model_without_token_embedding_hook(planted):
    class NoEmbeddingHook(tnp.ModelAdapter):
        @property
        def token_embedding_hook(self) -> str:
            raise ValueError(f"{self.name} exposes no token-embedding hook point")

    adapter = NoEmbeddingHook(planted)
    with pytest.raises(TextualizeError, match="no token embeddings reachable by hooks"):
        textualize(adapter, ["L1.N5"], QUICK, **KW)
    assert len(textualize(adapter, ["L1.N5"], CORPUS, **KW)) == 1


def test_hook_that_is_not_the_token_embeddings(planted):
    class WrongHook(tnp.ModelAdapter):
        @property
        def token_embedding_hook(self) -> str:
            return "blocks.0.ln1.hook_normalized"

    with pytest.raises(TextualizeError, match="does not output the token embeddings W_E\\[ids\\] alone"):
        textualize(WrongHook(planted), ["L1.N5"], QUICK.replace(optimizer=Discrete(max_steps=2)), **KW)
