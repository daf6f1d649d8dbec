"""Fixtures for the report tests: a small results folder from the planted model, its site, a headless chromium."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from report_helpers import TRIGGER, build_results, open_browser

from tl_neuronprobe.reporting import run_report


@pytest.fixture(scope="session")
def planted_run(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("results")
    return dict(build_results(out), out=out)


@pytest.fixture(scope="session")
def results(planted_run) -> Path:
    return planted_run["out"]


@pytest.fixture(scope="session")
def site(results, tmp_path_factory) -> Path:
    """The report of ``results`` (with a descriptions table planted for two neurons)."""
    folder = tmp_path_factory.mktemp("with-descriptions")
    shutil.copytree(results, folder, dirs_exist_ok=True)
    (folder / "descriptions.csv").write_text("neuron,description,score\nL1.N5,singular determiner this,0.91\n"
                                             f"{TRIGGER},the noun cabinet,0.88\n")
    return run_report(folder, tmp_path_factory.mktemp("site") / "report")


@pytest.fixture(scope="session")
def browser():
    drv = open_browser()
    yield drv
    drv.quit()
