"""The adapter is the one place that knows TransformerLens generations and encoder versus decoder."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, GPT2Config, RobertaConfig

import tl_neuronprobe as tnp
from tl_neuronprobe.core import adapter

PACKAGE = Path(tnp.__file__).parent


def _imported_names(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            names |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
    return names


def test_hf_configs_are_told_apart():
    assert adapter.is_encoder_config(BertConfig()) and adapter.is_encoder_config(RobertaConfig())
    assert not adapter.is_encoder_config(GPT2Config())
    assert not adapter.is_encoder_config(BertConfig(is_decoder=True))  # a BERT used as a decoder
    assert adapter.names_an_encoder("xlm-roberta") and adapter.names_an_encoder("BertForMaskedLM")
    assert not adapter.names_an_encoder("GPT2LMHeadModel")


def test_only_the_adapter_and_testbeds_import_transformer_lens_models():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "adapter.py" or "testbeds" in path.parts:
            continue
        if any(n.startswith("transformer_lens") for n in _imported_names(path)):
            offenders.append(str(path.relative_to(PACKAGE)))
    assert offenders == []


def test_generations_are_public():
    classes = adapter.transformer_lens_classes()
    assert set(classes) == set(tnp.testing.available_generations()) and classes


def test_built_in_models_take_a_seed():
    w0 = tnp.models.load("tiny").W_E
    assert torch.equal(w0, tnp.models.load("tiny", seed=0).W_E)
    assert not torch.equal(w0, tnp.models.load("tiny", seed=1).W_E)


def test_unknown_model_names_say_what_exists():
    with pytest.raises(FileNotFoundError, match="neither a built-in model .*planted"):
        tnp.models.load("no-such-model-anywhere")


@pytest.mark.minilm
def test_minilm_boots_as_an_encoder(minilm):
    ad = tnp.ModelAdapter(minilm)
    assert ad.is_encoder and not ad.prepend_bos and ad.generation in adapter.transformer_lens_classes()
