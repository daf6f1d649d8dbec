"""Loading a local Hugging Face folder: the expected "no MLM head, unused pooler" report of a bare encoder
checkpoint stays quiet, while a missing body weight is an error and an unused non-pooler weight a warning.

The checkpoints are tiny BERTs written here from a config (no download), then edited tensor by tensor.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForMaskedLM, BertConfig, BertModel, BertTokenizerFast

import tl_neuronprobe as tnp

pytestmark = pytest.mark.skipif("bridge" not in tnp.testing.available_generations(),
                                reason="a Hugging Face encoder needs TransformerBridge")

WORDS = ["the", "cat", "dog", "sat", "ran", "on", "a", "mat", "."]
BODY_KEY = "encoder.layer.0.attention.self.query.weight"


def _bare_bert(folder: Path, edit=None) -> Path:
    """A 2-layer BERT saved without MLM head but with its pooler (as MiniLM is), plus a word-piece tokenizer;
    ``edit(state_dict)`` changes the saved tensors."""
    folder.mkdir()
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    BertTokenizerFast(vocab_file=str(vocab)).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(WORDS) + 5, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32)
    BertModel(config).save_pretrained(folder)  # a bare model: "pooler.*" saved, no "cls.*"
    if edit is not None:
        weights = folder / "model.safetensors"
        state = load_file(weights)
        edit(state)
        save_file(state, weights, metadata={"format": "pt"})
    return folder


class _Records(logging.Handler):
    """Every warning that reaches the ``transformers`` logger (which does not propagate to the root), with that
    logger set to show warnings meanwhile (TransformerLens sets it to ERROR when its bridge is first imported)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def __enter__(self) -> "_Records":
        logger = logging.getLogger("transformers")
        self._level = logger.level
        logger.setLevel(logging.WARNING)
        logger.addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        logger = logging.getLogger("transformers")
        logger.removeHandler(self)
        logger.setLevel(self._level)


def _drop_body_weight(state: dict) -> None:
    del state[BODY_KEY]


def _add_unused_weight(state: dict) -> None:
    state["cls.seq_relationship.weight"] = torch.zeros(2, 16)


def test_missing_body_weight_is_an_error_naming_it(tmp_path):
    folder = _bare_bert(tmp_path / "broken", _drop_body_weight)
    with _Records() as records, pytest.raises(ValueError, match=f"missing.*bert.{BODY_KEY}"):
        tnp.models.load(str(folder), device="cpu")
    assert any(BODY_KEY in m for m in records.messages), "Hugging Face's own report is let through"


def test_bare_checkpoint_loads_quietly(tmp_path):
    folder = _bare_bert(tmp_path / "bare")
    with _Records() as records, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = tnp.models.load(str(folder), device="cpu")
    assert model.cfg.n_layers == 2
    assert records.messages == [] and [str(w.message) for w in caught] == []
    # control: loaded directly, the same folder is reported (head missing, pooler unused), so the quiet is ours
    with _Records() as raw:
        AutoModelForMaskedLM.from_pretrained(folder)
    assert any("cls.predictions" in m for m in raw.messages) and any("pooler" in m for m in raw.messages)


def test_unused_weight_other_than_the_pooler_is_a_warning(tmp_path):
    folder = _bare_bert(tmp_path / "extra", _add_unused_weight)
    with pytest.warns(UserWarning, match="not used.*cls.seq_relationship.weight"):
        tnp.models.load(str(folder), device="cpu")
