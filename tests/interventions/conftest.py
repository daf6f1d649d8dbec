"""Fixtures for the intervention tests: the planted testbed per generation and the trained agreement decoder."""

from __future__ import annotations

import pytest
import torch

import tl_neuronprobe as tnp
from tl_neuronprobe import interventions as iv
from tl_neuronprobe.testbeds.agreement import train_agreement_decoder


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread, and a shared 2-core machine makes two threads oversubscribe
    (10x slower measured); restored after each module so other test folders keep their setting."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def small_corpus():
    return tnp.testing.planted_corpus(96, seed=3)


@pytest.fixture(scope="session")
def positions(planted, small_corpus):
    return iv.attribute_positions(planted, small_corpus[:16], "Number")


@pytest.fixture(scope="session")
def planted_rankings(planted):
    """A ranking that puts the used Number neurons first, one that puts the unused ones first."""
    used, unused = planted.planted.used["Number"], planted.planted.unused["Number"]
    rest = [tnp.Neuron(1, i) for i in range(64) if tnp.Neuron(1, i) not in used + unused]
    return {"used_first": used + unused + rest, "unused_first": unused + used + rest}


@pytest.fixture(scope="session")
def agreement_model(generation):
    return train_agreement_decoder(seed=0, generation=generation)
