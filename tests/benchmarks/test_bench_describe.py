"""Chunked association and batched formula search against the naive per-neuron loop, same run, same numbers.

Small sizes (a few seconds); the full-size measurement is ``tests/benchmarks/measure_describe.py``, its
numbers in ``docs/describe.md``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from describe_reference import naive_association, planted_activations, treebank_concepts  # noqa: E402

from tl_neuronprobe.descriptions import associate, beam_search  # noqa: E402
from tl_neuronprobe.descriptions._associate import intersections_at  # noqa: E402


@pytest.fixture(scope="module")
def setup():
    concepts, sid = treebank_concepts(4000, 400)
    X = planted_activations(concepts.matrix, 384)
    return concepts.matrix, sid, X


def test_association_chunked_vs_naive_loop(benchmark, setup):
    C, sid, X = setup
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t = time.perf_counter()
        ref_auroc, ref_iou, ref_z = naive_association(X, C, sid)
        naive = time.perf_counter() - t
        Xt = torch.from_numpy(X)
        t = time.perf_counter()
        a = associate(Xt, C, sid)
        fast = time.perf_counter() - t
        benchmark.pedantic(associate, args=(Xt, C, sid), rounds=1, iterations=1)
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_allclose(a.auroc, ref_auroc, atol=1e-4)
    np.testing.assert_allclose(a.iou, ref_iou, atol=1e-5)
    np.testing.assert_allclose(a.z, ref_z, atol=2e-2, rtol=1e-3)
    assert fast < naive, (fast, naive)


def test_formula_search_batched_runs_all_neurons(setup):
    C, sid, X = setup
    Xt = torch.from_numpy(X[:, :96])
    thr = np.quantile(X[:, :96], 0.95, axis=0)
    inter, _ = intersections_at(Xt, C, thr)
    t = time.perf_counter()
    formulas, iou = beam_search(C, Xt > torch.from_numpy(thr), inter)
    assert len(formulas) == 96 and time.perf_counter() - t < 60
    assert np.median(iou[::3]) > np.median(np.delete(iou, np.arange(0, 96, 3)))  # planted beat noise
