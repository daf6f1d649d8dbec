"""Rankers against what a user would otherwise run, measured in the same run.

* ``Linear.fit`` vs scikit-learn's saga elastic net (10 iterations, standardized inputs) and
  vs the NeuroX-style torch probe (10 epochs, batch 32, Adam 1e-3, raw inputs): time and
  held-out accuracy.
* The top-k of ``Linear``'s ordering vs the reference probe's weight-mass ordering: a fresh
  probe trained on each top-k.
* The vectorized Gaussian greedy selection vs the published loop (a multivariate normal per
  candidate per class per step): time per step, and the same neurons.

Sizes are small so the file runs in about a minute; ``measure_rankers.py`` runs the full
sizes.  Ratios are printed and stored in ``benchmark.extra_info``.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
import torch._dynamo  # noqa: F401,E402  (the first torch.optim.Adam imports it: ~2 s that neither side should pay)

from rankers_reference import (neurox_mass_order, neurox_predict, neurox_probe, niw_covariances,
                               published_gaussian_greedy, sklearn_saga)
from rankers_synth import make_pos_like
from tl_neuronprobe.core.validation import split_indices
from tl_neuronprobe.probes import LogisticProbes
from tl_neuronprobe.rankers import Gaussian, Linear


@pytest.fixture(scope="module")
def pos_data():
    X, y, sid, types = make_pos_like(n_words=3000, n_neurons=1536, n_classes=17, n_types=800, seed=1)
    X, y = X.numpy(), y.numpy()
    tr, te = split_indices(len(y), 0.2, groups=sid, seed=0, y=y, min_train_per_class=2)
    return X, y, sid, tr, te


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


@pytest.fixture(scope="module")
def neurox_ref(pos_data):
    """The NeuroX-style probe, timed on one thread like ours (torch's default 2 threads is
    several times slower on a busy 2-core machine: small ops stall)."""
    X, y, sid, tr, te = pos_data
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        (W, b), t_ref = _timed(lambda: neurox_probe(X[tr], y[tr], 17))
    finally:
        torch.set_num_threads(prev)
    return W, b, t_ref


def test_linear_vs_saga_and_neurox(benchmark, pos_data, neurox_ref):
    X, y, sid, tr, te = pos_data
    (Z, clf), t_saga = _timed(lambda: sklearn_saga(X[tr], y[tr], max_iter=10))
    acc_saga = clf.score(Z.transform(X[te]), y[te])
    W, b, t_ref = neurox_ref
    acc_ref = float((neurox_predict(W, b, X[te]) == y[te]).mean())

    lin = benchmark.pedantic(lambda: Linear(random_state=0).fit(X[tr], y[tr], groups=sid[tr]),
                             rounds=1, iterations=1)
    t_ours = benchmark.stats.stats.mean
    acc_ours = lin.score(X[te], y[te])
    info = dict(seconds_ours=t_ours, seconds_saga=t_saga, seconds_neurox=t_ref, accuracy_ours=acc_ours,
                accuracy_saga=acc_saga, accuracy_neurox=acc_ref, speedup_vs_saga=t_saga / t_ours,
                speedup_vs_neurox=t_ref / t_ours)
    benchmark.extra_info.update(info)
    print("\nLinear.fit:", {k: round(v, 3) for k, v in info.items()})
    assert t_ours * 10 <= t_saga, info
    assert t_ours <= t_ref, info
    assert acc_ours >= acc_saga - 0.005, info  # 600 test words: half a point of noise allowed here
    assert acc_ours >= acc_ref, info


def test_linear_topk_vs_reference_ordering(benchmark, pos_data, neurox_ref):
    X, y, sid, tr, te = pos_data
    ks = [10, 25, 50, 100, 200]
    ours = Linear(random_state=0).fit(X[tr], y[tr], groups=sid[tr]).order_
    W, b, _ = neurox_ref
    ref = neurox_mass_order(W.numpy())

    def retrain():
        probe = LogisticProbes(random_state=0)
        probe.fit(X[tr], y[tr], [ours[:k] for k in ks] + [ref[:k] for k in ks], groups=sid[tr])
        return probe.score(X[te], y[te])

    acc = benchmark.pedantic(retrain, rounds=1, iterations=1)
    a_ours, a_ref = acc[: len(ks)], acc[len(ks):]
    info = {f"k{k}_ours": float(a) for k, a in zip(ks, a_ours)} | {f"k{k}_ref": float(a) for k, a in zip(ks, a_ref)}
    info["mean_gain"] = float(np.mean(a_ours - a_ref))
    benchmark.extra_info.update(info)
    print("\ntop-k retrained:", {k: round(v, 3) for k, v in info.items()})
    # The target is "at least as good as the reference ordering".  Measured +0.4 points here; 600 test
    # words carry about a point of noise in the mean, so one point is allowed.  The full-size runs
    # (measure_rankers.py: +0.5 and +0.7 on two data seeds) and the MiniLM test below are the real check.
    assert np.mean(a_ours) >= np.mean(a_ref) - 0.01, info
    assert a_ours[-1] >= a_ref[-1] - 0.02, info


def test_gaussian_vs_published_loop(benchmark):
    X, y, sid, _ = make_pos_like(n_words=2000, n_neurons=128, n_classes=8, n_types=600, seed=2)
    X, y = X.numpy(), y.numpy()
    steps_ref = 2
    g = benchmark.pedantic(lambda: Gaussian(max_features=50, random_state=0).fit(X, y, groups=sid),
                           rounds=1, iterations=1)
    t_ours = benchmark.stats.stats.mean
    tr, dv = g.train_index_, g.dev_index_
    means, covs, pri = niw_covariances(X[tr], y[tr], 8)
    with torch.no_grad():
        sel_ref, times = published_gaussian_greedy(means, covs, pri, X[dv], y[dv], steps_ref, time_steps=True)
    # the published loop's steps get slower as the subset grows; 50 steps cost at least 50 x its first step
    est_ref_50 = 50 * times[0]
    info = dict(seconds_ours_50_steps=t_ours, seconds_published_first_steps=times,
                published_50_steps_lower_bound=est_ref_50, speedup_lower_bound=est_ref_50 / t_ours,
                same_first_neurons=g.selected_[:steps_ref].tolist() == sel_ref)
    benchmark.extra_info.update(info)
    print("\nGaussian greedy:", info)
    assert g.selected_[:steps_ref].tolist() == sel_ref
    assert t_ours * 5 <= est_ref_50, info


@pytest.mark.minilm
def test_linear_topk_on_minilm_activations(benchmark, minilm):
    """Real neurons: MiniLM's 9,216 MLP neurons on the synthetic UPOS corpus.  The labels are
    easy (one tag per word type), so the top-k are compared where accuracy has not saturated
    (k = 3 ... 25).  Measured: +5.7 points over the NeuroX-style order (mean over k)."""
    import tl_neuronprobe as tnp

    acts = tnp.extract(minilm, tnp.Corpus.load("synthetic:1200"), device="cpu", progress=False)
    X, y, classes, idx = acts.dataset("upos", return_index=True, min_count=10)
    X, y = X.numpy(), y.numpy()
    sid = np.asarray(acts.sentence_ids)[idx]
    tr, te = split_indices(len(y), 0.2, groups=sid, seed=0, y=y, min_train_per_class=2)
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        (W, b), t_ref = _timed(lambda: neurox_probe(X[tr], y[tr], len(classes)))
        lin = benchmark.pedantic(lambda: Linear(random_state=0).fit(X[tr], y[tr], groups=sid[tr]),
                                 rounds=1, iterations=1)
    finally:
        torch.set_num_threads(prev)
    t_ours = benchmark.stats.stats.mean
    ks = [3, 5, 7, 10, 15, 25]
    ref = neurox_mass_order(W.numpy())
    probe = LogisticProbes(random_state=0)
    probe.fit(X[tr], y[tr], [lin.order_[:k] for k in ks] + [ref[:k] for k in ks], groups=sid[tr])
    acc = probe.score(X[te], y[te])
    a_ours, a_ref = acc[: len(ks)], acc[len(ks):]
    info = {f"k{k}_ours": float(a) for k, a in zip(ks, a_ours)} | {f"k{k}_ref": float(a) for k, a in zip(ks, a_ref)}
    info |= dict(mean_gain=float(np.mean(a_ours - a_ref)), seconds_ours=t_ours, seconds_neurox=t_ref,
                 accuracy_ours=lin.score(X[te], y[te]), accuracy_neurox=float((neurox_predict(W, b, X[te]) == y[te]).mean()),
                 n_words=len(y))
    benchmark.extra_info.update(info)
    print("\nMiniLM top-k retrained:", {k: round(v, 3) for k, v in info.items()})
    assert np.mean(a_ours) >= np.mean(a_ref), info
    assert info["accuracy_ours"] >= info["accuracy_neurox"] - 0.005, info
    assert t_ours <= t_ref * 1.25, info
