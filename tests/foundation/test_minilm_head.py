"""MiniLM's shipped masked-LM head: ``load("minilm")`` attaches it, ``head="none"`` keeps Hugging Face's random
one, and on held-out shipped sentences the trained head predicts masked words far above a unigram baseline and
predicts its own (unmasked) input; the random head, as the control, does neither."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import tl_neuronprobe as tnp
from tl_neuronprobe.models import HEADS, MINILM_HEAD, attach_head

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def _measure_script():
    """``scripts/measure_minilm_head.py`` as a module (the docs' table comes from it; the test runs its code)."""
    sys.path.insert(0, str(SCRIPTS))
    try:
        spec = importlib.util.spec_from_file_location("measure_minilm_head", SCRIPTS / "measure_minilm_head.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(SCRIPTS))


def test_the_head_ships_with_the_package_and_is_small():
    assert MINILM_HEAD.exists()
    assert MINILM_HEAD.stat().st_size < 1_000_000
    assert (MINILM_HEAD.parent / "README.md").exists()


def test_head_argument_is_checked():
    with pytest.raises(ValueError, match="head must be one of"):
        tnp.models.load("minilm", head="random")
    with pytest.raises(ValueError, match="applies to 'minilm'"):
        tnp.models.load("tiny", head="none")
    assert HEADS == ("trained", "none")


def _tiny_mlm():
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(0)
    return BertForMaskedLM(BertConfig(vocab_size=40, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                      intermediate_size=16))


def test_attach_head_copies_head_weights_and_refuses_anything_else(tmp_path):
    from safetensors.torch import save_file

    model = _tiny_mlm()
    dense = torch.randn(8, 8)
    save_file({"cls.predictions.transform.dense.weight": dense, "cls.predictions.bias": torch.ones(40)},
              str(tmp_path / "head.safetensors"))
    attach_head(model, tmp_path / "head.safetensors")
    assert torch.equal(model.cls.predictions.transform.dense.weight, dense)
    assert torch.equal(model.cls.predictions.decoder.bias, torch.ones(40))  # tied to cls.predictions.bias
    save_file({"bert.embeddings.word_embeddings.weight": torch.zeros(40, 8)}, str(tmp_path / "body.safetensors"))
    with pytest.raises(ValueError, match="not a head weight"):
        attach_head(model, tmp_path / "body.safetensors")
    save_file({"cls.predictions.bias": torch.zeros(41)}, str(tmp_path / "shape.safetensors"))
    with pytest.raises(ValueError, match=r"has shape \(41,\)"):
        attach_head(model, tmp_path / "shape.safetensors")
    with pytest.raises(FileNotFoundError, match="head='none'"):
        attach_head(model, tmp_path / "missing.safetensors")


@pytest.mark.minilm
def test_load_attaches_the_trained_head_and_none_keeps_the_random_one(minilm):
    from safetensors.torch import load_file
    from transformers import BertForMaskedLM

    from tl_neuronprobe.models import minilm_path

    adapter = tnp.ModelAdapter(minilm)
    corpus = tnp.Corpus.load("ud-english:4")
    batch = adapter.collate(adapter.tokenize_sentences([s.words for s in corpus.sentences]))
    reference = BertForMaskedLM.from_pretrained(minilm_path()).eval()
    weights = load_file(str(MINILM_HEAD))
    state = reference.state_dict()
    assert not any(torch.equal(state[k], v) for k, v in weights.items())  # Hugging Face's head is not ours
    attach_head(reference, MINILM_HEAD)
    with torch.inference_mode():
        expected = reference(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        logits = adapter.forward(batch)
    real = batch.attention_mask.bool()
    torch.testing.assert_close(logits[real], expected[real], atol=1e-4, rtol=1e-4)

    torch.manual_seed(0)
    bare = tnp.ModelAdapter(tnp.models.load("minilm", device="cpu", head="none"))
    with torch.inference_mode():
        random_logits = bare.forward(batch)
    assert (random_logits[real] - logits[real]).abs().max() > 1.0


@pytest.mark.minilm
def test_trained_head_predicts_held_out_words_and_the_random_head_does_not(minilm):
    """On 120 held-out shipped sentences: masked top-5 well above the unigram baseline (counted on the very
    sentences scored, which favours the baseline), identity far above it; the random head at chance."""
    measure = _measure_script()
    corpus = tnp.Corpus.load("ud-english:120")
    pred = measure.predictions(minilm, corpus, seed=0)
    trained = measure.scores(**pred)
    counts = np.bincount(pred["ids"].astype(np.int64))
    best = np.argsort(-counts, kind="stable")[:5]
    n = len(pred["ids"])
    unigram = measure.scores(pred["ids"], pred["masked"], np.tile(best, (n, 1)), np.full(n, best[0]), pred["number"])
    torch.manual_seed(0)
    random = measure.scores(**measure.predictions(tnp.models.load("minilm", device="cpu", head="none"), corpus, 0))
    assert pred["masked"].sum() > 400
    assert trained["masked_top1"] > 1.5 * unigram["masked_top1"]
    assert trained["masked_top5"] > unigram["masked_top5"] + 0.03
    assert trained["identity"] > 0.75 and unigram["identity"] < 0.1
    assert trained["identity_number_words"] > 0.7
    assert random["masked_top5"] < 0.01 and random["identity"] < 0.01
