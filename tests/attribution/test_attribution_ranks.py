"""attribute_used across 2 gloo ranks on the CPU (one ``torchrun`` launch of ``attribution_ranks_script.py``):
the ranks split the sentence batches, and every rank returns the single-process result (scores up to the order
of a float64 sum, the same ranking, the same exact effects)."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SCRIPT = Path(__file__).with_name("attribution_ranks_script.py")
WORLD = 2


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    folder = tmp_path_factory.mktemp("attribution-ranks")
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}", str(SCRIPT),
           str(folder)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"torchrun failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return folder


def test_the_ranks_split_the_sentence_batches(out):
    single = json.loads((out / "work.single.json").read_text())
    ranks = [json.loads((out / f"work.rank{r}.json").read_text()) for r in range(WORLD)]
    assert all(ranks) and sorted(b for r in ranks for b in r) == sorted(single)
    assert not set(ranks[0]) & set(ranks[1])


@pytest.mark.parametrize("run", ["identity", "divergence"])
def test_every_rank_returns_the_single_process_result(out, run):
    table, rankings = pickle.loads((out / f"{run}.single.pkl").read_bytes())
    assert table.verified.sum() == 12
    for r in range(WORLD):
        got, got_rankings = pickle.loads((out / f"{run}.rank{r}.pkl").read_bytes())
        np.testing.assert_allclose(got.score, table.score, rtol=1e-10, atol=1e-15)
        np.testing.assert_allclose(got.exact, table.exact, rtol=1e-6, atol=1e-9)
        pd.testing.assert_series_equal(got["rank"], table["rank"])
        assert got_rankings == rankings
