"""Fixtures for the ranker tests (planted data lives in planted_arrays.py)."""

from __future__ import annotations

import pytest
import torch

from planted_arrays import PlantedData, make_planted


@pytest.fixture(scope="session")
def planted_data() -> PlantedData:
    return make_planted()


@pytest.fixture(autouse=True)
def _seed_torch():
    torch.manual_seed(1234)  # rankers must not depend on the global seed; tests reset it anyway
