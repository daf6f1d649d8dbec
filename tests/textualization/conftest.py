"""Fixtures for the textualization tests: one CPU thread (these models are tiny, and the machine is shared),
the planted two-token model per TransformerLens generation, and an independent way to score tokens."""

from __future__ import annotations

import pytest
import torch

import tl_neuronprobe as tnp
from tl_neuronprobe.testbeds.sequence import sequence_model


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def sequence_planted(generation):
    return sequence_model(generation=generation)


@pytest.fixture(scope="session")
def tiny_bert():
    if "bridge" not in tnp.testing.available_generations():
        pytest.skip("encoders need TransformerBridge")
    return tnp.testing.tiny_model("bridge", "bert", n_layers=2, d_model=32, d_mlp=64, seed=3)
