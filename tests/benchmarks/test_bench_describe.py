"""Chunked association and batched formula search against the naive per-neuron loop, same run, same numbers.

Small sizes (a few seconds), and the association's speed target (9,216 neurons x about 2,000 concepts x 50,000
words in under a minute on 2 CPU cores) on the full-size words and concepts with 512 neurons, scaled to 9,216
(the cost is linear in neurons), interleaved with the naive loop on a sample. The full-size measurement is
``tests/benchmarks/measure_describe.py``, its numbers in ``docs/describe.md``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from describe_reference import naive_association, planted_activations, treebank_concepts  # noqa: E402

from tl_neuronprobe.descriptions._associate import associate  # noqa: E402
from tl_neuronprobe.descriptions._compose import beam_search  # noqa: E402
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


#: the issue's target: association of 9,216 neurons x ~2,000 concepts x 50,000 words in under a minute, 2 cores
TARGET_S, FULL_NEURONS, THREADS, ROUNDS = 60.0, 9_216, 2, 3


def interleaved_bests(sides: dict, rounds: int) -> dict[str, dict[str, float]]:
    """Run the sides in turn (alternating which goes first); each side's best wall and best CPU (process) time."""
    times = {name: {"wall": [], "cpu": []} for name in sides}
    names = list(sides)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            t, c = time.perf_counter(), time.process_time()
            sides[name]()
            times[name]["wall"].append(time.perf_counter() - t)
            times[name]["cpu"].append(time.process_time() - c)
    return {name: {k: min(v) for k, v in ts.items()} for name, ts in times.items()}


def test_association_speed_target_full_size_words_and_concepts(benchmark):
    """Per-neuron cost on the target's words and concepts (50,000 x ~2,000), best of interleaved rounds against the
    naive loop, scaled to 9,216 neurons: under a minute on 2 threads (the target; wall time, or CPU time when
    other processes inflate the wall time), and faster than the naive loop's per-(neuron x concept x word)
    throughput in the same run."""
    concepts, sid = treebank_concepts(50_000, 2_000)
    C = concepts.matrix
    X = planted_activations(C, 512)
    Xt = torch.from_numpy(X)
    m = 16  # naive sample
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        associate(Xt[:, :32], C, sid)  # warm up (thread pool, allocator)
        best = benchmark.pedantic(interleaved_bests, args=({
            "chunked": lambda: associate(Xt, C, sid),
            "naive": lambda: naive_association(X[:, :m], C, sid)}, ROUNDS), rounds=1, iterations=1)
    finally:
        torch.set_num_threads(threads)
    n, k = C.shape
    full = {key: best["chunked"][key] * FULL_NEURONS / X.shape[1] for key in ("wall", "cpu")}
    naive_full = {key: best["naive"][key] * FULL_NEURONS / m for key in ("wall", "cpu")}
    per_triple = {name: best[name]["wall"] / (w * k * n) for name, w in (("chunked", X.shape[1]), ("naive", m))}
    load = os.getloadavg()[0]
    benchmark.extra_info.update(words=n, concepts=k, nnz=int(C.nnz), full_wall_s=full["wall"],
                                full_cpu_s=full["cpu"], naive_full_wall_s=naive_full["wall"], load=load)
    print(f"\nassociation {n} words x {k} concepts ({C.nnz} non-zeros), scaled to {FULL_NEURONS} neurons: "
          f"{full['wall']:.1f} s wall, {full['cpu']:.1f} CPU s; naive loop {naive_full['wall']:.1f} s wall, "
          f"{naive_full['cpu']:.1f} CPU s; {per_triple['naive'] / per_triple['chunked']:.1f}x per "
          f"(neuron x concept x word); load average {load:.1f} (best of {ROUNDS} interleaved rounds)")
    assert per_triple["chunked"] < per_triple["naive"]
    # the target is wall time on 2 quiet cores; the process never waits on I/O, so there its wall time is at most
    # its CPU time: on a loaded machine (wall inflated by other processes) CPU time under the target suffices
    quiet_bound = min(full["wall"], full["cpu"])
    assert quiet_bound < TARGET_S, (f"association scaled to {FULL_NEURONS} neurons takes {full['wall']:.1f} s "
                                    f"wall, {full['cpu']:.1f} CPU s (target {TARGET_S:.0f} s on {THREADS} cores; "
                                    f"load average {load:.1f})")
