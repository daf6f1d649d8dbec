"""Rankers against what a user would otherwise run, at test size, measured in the same run.

* ``Linear.fit`` vs scikit-learn's saga elastic net (10 iterations, standardized inputs) and
  vs the NeuroX-style torch probe (10 epochs, batch 32, Adam 1e-3, raw inputs): time and
  held-out accuracy.
* The top-k of ``Linear``'s ordering vs the reference probe's weight-mass ordering: a fresh
  probe trained on each top-k.
* The vectorized Gaussian greedy selection vs the published loop (a multivariate normal per
  candidate per class per step): time, and the same neurons.

Timings are taken with ``time.perf_counter``, both sides interleaved for several rounds, and
the best of each side compared, so machine load does not flip a comparison; the ``benchmark``
fixture only records (the tests also run under ``--benchmark-disable``).  Tolerances are the
noise measured over data seeds, stated beside each assertion.  The target on real data (the
ordering on held-out English) is checked elsewhere; the full-size figures are in docs/rankers.md
(``measure_rankers.py``).
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

import numpy as np
import pytest
import torch
import torch._dynamo  # noqa: F401,E402  (the first torch.optim.Adam imports it: ~2 s that neither side should pay)

from rankers_reference import (neurox_mass_order, neurox_predict, neurox_probe, niw_covariances,
                               published_gaussian_greedy, sklearn_saga)
from rankers_synth import make_pos_like
from tl_neuronprobe.core.validation import few_threads, split_indices
from tl_neuronprobe.probes import LogisticProbes
from tl_neuronprobe.rankers import Gaussian, Linear

ROUNDS = 3


@pytest.fixture(autouse=True)
def _one_thread():
    """Every side on one thread (torch's default 2 threads stall small ops on a busy 2-core machine)."""
    with few_threads(0, n_threads=1):
        yield


def best_of_interleaved(sides: dict[str, Callable[[], Any]], rounds: int = ROUNDS):
    """Run the sides in turn for ``rounds`` rounds; the best time of each side and its last result."""
    best = {name: math.inf for name in sides}
    out: dict[str, Any] = {}
    for _ in range(rounds):
        for name, fn in sides.items():
            t0 = time.perf_counter()
            out[name] = fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best, out


def record(benchmark, info: dict, fn: Callable[[], Any] = lambda: None) -> None:
    """Store the measured numbers with the benchmark (and time ``fn`` once, for its table)."""
    benchmark.extra_info.update(info)
    benchmark.pedantic(fn, rounds=1, iterations=1)
    print("\n", {k: (round(v, 4) if isinstance(v, float) else v) for k, v in info.items()})


@pytest.fixture(scope="module")
def pos_data():
    X, y, sid, types = make_pos_like(n_words=3000, n_neurons=1536, n_classes=17, n_types=800, seed=1)
    X, y = X.numpy(), y.numpy()
    tr, te = split_indices(len(y), 0.2, groups=sid, seed=0, y=y, min_train_per_class=2)
    return X, y, sid, tr, te


@pytest.fixture(scope="module")
def linear_runs(pos_data):
    X, y, sid, tr, te = pos_data
    torch.set_num_threads(1)
    return best_of_interleaved({
        "ours": lambda: Linear(seed=0).fit(X[tr], y[tr], groups=sid[tr]),
        "neurox": lambda: neurox_probe(X[tr], y[tr], 17),
        "saga": lambda: sklearn_saga(X[tr], y[tr], max_iter=10),
    })


def test_linear_vs_saga_and_neurox(benchmark, pos_data, linear_runs):
    X, y, sid, tr, te = pos_data
    t, out = linear_runs
    Z, clf = out["saga"]
    W, b = out["neurox"]
    info = dict(seconds_ours=t["ours"], seconds_saga=t["saga"], seconds_neurox=t["neurox"],
                accuracy_ours=out["ours"].score(X[te], y[te]), accuracy_saga=clf.score(Z.transform(X[te]), y[te]),
                accuracy_neurox=float((neurox_predict(W, b, X[te]) == y[te]).mean()),
                speedup_vs_saga=t["saga"] / t["ours"], speedup_vs_neurox=t["neurox"] / t["ours"])
    record(benchmark, info, lambda: Linear(seed=0).fit(X[tr], y[tr], groups=sid[tr]))
    # regression floors (the targets, 10x saga and no slower than the NeuroX-style probe, are goals below): measured
    # 18x and 1.9x on a quiet machine, 7.8x against saga under load; the regressions named: Linear as slow as saga,
    # or twice as slow as the NeuroX-style probe
    assert info["speedup_vs_saga"] >= 4, info
    assert info["speedup_vs_neurox"] >= 0.8, info
    # target: saga's accuracy.  Ours - saga over data seeds 0-5 (600 test words each): +0.0067, +0.0017,
    # +0.0067, +0.0117, -0.0017, +0.0017, standard deviation 0.005: that is the tolerance.
    assert info["accuracy_ours"] >= info["accuracy_saga"] - 0.005, info
    # target: the NeuroX-style probe's accuracy; ours was higher on all six data seeds (+0.007 to +0.027)
    assert info["accuracy_ours"] >= info["accuracy_neurox"], info


@pytest.mark.goal
def test_linear_speed_targets(linear_runs, goal):
    """The targets: 10x faster than saga's 10 iterations, no slower than the NeuroX-style probe's 10 epochs."""
    t, _ = linear_runs
    goal.check("Linear fit speed-up vs saga (synthetic POS)", t["saga"] / t["ours"], 10.0, unit="x")
    goal.check("Linear fit speed-up vs NeuroX-style probe", t["neurox"] / t["ours"], 1.0, unit="x")
    goal.assert_met()


def test_linear_topk_vs_reference_ordering(benchmark, pos_data, linear_runs):
    X, y, sid, tr, te = pos_data
    _, out = linear_runs
    ks = [10, 25, 50, 100, 200]
    ours, ref = out["ours"].order_, neurox_mass_order(out["neurox"][0].numpy())
    probe = LogisticProbes(seed=0).fit(X[tr], y[tr], [ours[:k] for k in ks] + [ref[:k] for k in ks], groups=sid[tr])
    acc = probe.subset_scores(X[te], y[te])
    a_ours, a_ref = acc[: len(ks)], acc[len(ks):]
    info = {f"k{k}_ours": float(a) for k, a in zip(ks, a_ours)} | {f"k{k}_ref": float(a) for k, a in zip(ks, a_ref)}
    info["mean_gain"] = float(np.mean(a_ours - a_ref))
    record(benchmark, info)
    # Target: at least as good as the reference ordering.  The gain (mean over k, accuracy points)
    # over data seeds 0-5 was +3.3, +0.4, +2.2, +1.6, -1.4, +0.3 (mean +1.1, standard deviation 1.65):
    # the tolerance is that standard deviation.  This file uses data seed 1.
    assert info["mean_gain"] >= -0.0165, info
    # at k = 200 the gains were -0.2, +0.2, +0.7, -1.8, -0.5, 0.0 points (standard deviation 0.87)
    assert a_ours[-1] >= a_ref[-1] - 0.0087, info


def test_gaussian_vs_published_loop(benchmark):
    X, y, sid, _ = make_pos_like(n_words=2000, n_neurons=128, n_classes=8, n_types=600, seed=2)
    X, y = X.numpy(), y.numpy()
    # the published estimate and score, every step taken: the selection must be the published loop's
    g = Gaussian.from_preset("published", max_k=50, seed=0).fit(X, y, groups=sid)
    tr, dv = g.train_index_, g.dev_index_
    means, covs, pri = niw_covariances(X[tr], y[tr], 8)

    def published_first_step():
        with torch.no_grad():
            return published_gaussian_greedy(means, covs, pri, X[dv], y[dv], 1)

    t, out = best_of_interleaved({"ours_50_steps": lambda: Gaussian.from_preset("published", max_k=50,
                                                                             seed=0).fit(X, y, groups=sid),
                                  "published_first_step": published_first_step})
    # the published loop's steps get slower as the subset grows: 50 steps cost at least 50 x its first step
    info = dict(seconds_ours_50_steps=t["ours_50_steps"], seconds_published_first_step=t["published_first_step"],
                speedup_lower_bound=50 * t["published_first_step"] / t["ours_50_steps"])
    record(benchmark, info)
    with torch.no_grad():
        sel_ref = published_gaussian_greedy(means, covs, pri, X[dv], y[dv], 2)
    assert g.selected_[:2].tolist() == sel_ref
    assert out["ours_50_steps"].selected_.tolist() == g.selected_.tolist()
    assert t["ours_50_steps"] * 5 <= 50 * t["published_first_step"], info  # target: 5x (measured 70x)
