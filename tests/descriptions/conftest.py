"""Fixtures of the description tests: the planted testbed and its descriptions (built once per session)."""

from __future__ import annotations

import pytest

from tl_neuronprobe.descriptions import DescribeConfig, describe
from tl_neuronprobe.testbeds.descriptions import planted_descriptions


@pytest.fixture(scope="session")
def testbed():
    return planted_descriptions(n_sentences=600, seed=0)


@pytest.fixture(scope="session")
def described(testbed):
    return describe(testbed.acts, config=DescribeConfig(seed=0), concepts=testbed.concepts)
