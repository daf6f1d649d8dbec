"""textualize, corpus_top_windows, evaluate_used and describe across 2 gloo ranks on the CPU give exactly the
single-process result, on every rank.

One ``torchrun --standalone --nproc_per_node 2`` run of ``ranks_script.py`` (about 10 s of torch start-up
per launch, so one launch for the four stages); rank 0 also runs each stage alone inside
``distributed.local()`` (same process, same thread count, so any difference is the split's). Tables must be
equal exactly (``check_exact=True``): every split follows the single-process batches or chunks, so every
number is computed from the same inputs in the same order. One exception, stated: describe's ``ap`` column
(average precision of the best concept, reported, never used to decide) is a float32 sum over words whose
rounding depends on how many neurons share a chunk of ``refine``; it may differ in the last bit (measured
9.4e-8 relative), so it is compared at ``rtol=1e-6``.
"""

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

SCRIPT = Path(__file__).with_name("ranks_script.py")
WORLD = 2


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("ranks")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}",
           str(SCRIPT), str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"torchrun failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    print(proc.stdout)
    return out


def load(out: Path, stage: str):
    single = pickle.loads((out / f"{stage}.single.pkl").read_bytes())
    ranks = [pickle.loads((out / f"{stage}.rank{r}.pkl").read_bytes()) for r in range(WORLD)]
    return single, ranks


def same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_ranks_split_the_work(runs):
    """Each rank did a share, the shares add up to the single-process work: chunk indices are disjoint and
    cover the run's, window batches, sweep specs and described neurons add up."""
    single = json.loads((runs / "work.single.json").read_text())
    ranks = [json.loads((runs / f"work.rank{r}.json").read_text()) for r in range(WORLD)]
    assert sorted(c for w in ranks for c in w["chunk_generator"]) == sorted(single["chunk_generator"])
    for key in ("all_neuron_forward", "run_sweep", "_fit_end"):
        assert all(w[key] for w in ranks), f"a rank did no {key}"
        assert sum(sum(w[key]) for w in ranks) == sum(single[key]), key


def test_textualize_across_ranks(runs):
    single, ranks = load(runs, "textualize")
    for got in ranks:
        for a, b in zip(got, single, strict=True):
            same(a, b)
    assert single[0]["neuron"].nunique() == 12


def test_corpus_top_windows_across_ranks(runs):
    single, ranks = load(runs, "windows")
    for got in ranks:
        same(got, single)
    assert len(single) == 12 * 4


def test_evaluate_used_across_ranks(runs):
    single, ranks = load(runs, "used")
    for got in ranks:
        for a, b in zip(got, single, strict=True):
            same(a, b)
    assert set(single[0]["selection"]) == {"top", "bottom", "random"}


def test_describe_across_ranks(runs):
    single, ranks = load(runs, "describe")
    for got in ranks:
        same(got["table"].drop(columns=["ap"]), single["table"].drop(columns=["ap"]))
        pd.testing.assert_series_equal(got["table"]["ap"], single["table"]["ap"], check_exact=False, rtol=1e-6)
        same(got["scores"], single["scores"])
        np.testing.assert_array_equal(got["iou"], single["iou"])
        np.testing.assert_array_equal(got["q"], single["q"])
    assert set(single["table"]["end"]) == {"top", "bottom"}
