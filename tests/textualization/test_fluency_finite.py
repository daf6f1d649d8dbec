"""The fluency term (self cross-entropy) is never silently read as zero: a non-finite value is an error naming
the neuron and the step, and a setting where it cannot be defined is refused up front."""

from __future__ import annotations

import math

import pytest
import tl_neuronprobe as tnp
from tl_neuronprobe.textualization import Discrete, TextualizeConfig, TextualizeError, textualize


def run(model, fluency, length=3):
    """Three discrete iterations with fluency weight ``fluency`` on L1.N5."""
    config = TextualizeConfig(optimizer=Discrete(max_steps=3, restarts=2, fluency=fluency), length=length,
                              corpus=None, seed=0)
    return textualize(model, ["L1.N5"], config, progress=False)


def _nan_logits(logits, hook):
    """Logits of the planted model with one vocabulary entry NaN: every self cross-entropy becomes NaN, while
    the neurons (before the unembedding) are untouched."""
    logits = logits.clone()
    logits[..., 0] = math.nan
    return logits


def test_non_finite_fluency_term_names_the_neuron(planted):
    with planted.hooks(fwd_hooks=[("unembed.hook_out", _nan_logits)]):
        with pytest.raises(TextualizeError, match=r"fluency term\) is nan for neuron L1\.N5 at the starting "
                                                  r"candidates .*logits are not finite"):
            run(planted, 1.0)
        # control: without the fluency term the same model optimizes (the logits are not read)
        assert run(planted, 0.0)[0].activation > 0
    # control: with finite logits the fluency run succeeds and reports a finite fluency
    assert math.isfinite(run(planted, 1.0)[0].fluency)


def test_non_finite_fluency_term_names_the_step(planted):
    """NaN logits from the second scoring pass on: the error names the step it appeared at."""
    calls = {"n": 0}

    def later_nan(logits, hook):
        calls["n"] += 1
        return _nan_logits(logits, hook) if calls["n"] > 3 else logits

    with planted.hooks(fwd_hooks=[("unembed.hook_out", later_nan)]):
        with pytest.raises(TextualizeError, match=r"for neuron L1\.N5 at step \d+ "):
            run(planted, 1.0)


class _NoSpecialTokens:
    """The planted tokenizer without its BOS (as GPT-2's, which adds none)."""

    def __init__(self, tokenizer):
        self._tokenizer = tokenizer

    def __call__(self, *args, **kwargs):
        return self._tokenizer(*args, **{**kwargs, "add_special_tokens": False})

    def __len__(self) -> int:
        return len(self._tokenizer)

    def __getattr__(self, name):
        return getattr(self._tokenizer, name)


def test_fluency_without_left_context_is_refused(planted):
    """No BOS and one optimized token: there is no next-token prediction to score, so no fluency term."""
    no_bos = tnp.ModelAdapter(planted, prepend_bos=False)
    no_bos.tokenizer = _NoSpecialTokens(no_bos.tokenizer)
    with pytest.raises(TextualizeError, match="fluency needs an optimized token with a left context"):
        run(no_bos, 1.0, length=1)
    # control: two tokens give the second one a left context
    assert math.isfinite(run(no_bos, 1.0, length=2)[0].fluency)
