"""Fixtures for the probe tests: the easy planted arrays (one neuron per class) of tests/rankers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "rankers"))

from planted_arrays import PlantedData, make_one_per_class  # noqa: E402


@pytest.fixture(scope="session")
def planted_data() -> PlantedData:
    return make_one_per_class()
