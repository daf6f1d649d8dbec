"""Durrani et al.'s lambda search and minimal subset: results returned, the ranker left alone."""

from __future__ import annotations

import numpy as np

import tl_neuronprobe.rankers as R
from tl_neuronprobe.probes import LogisticProbes

from planted_arrays import assert_controls_miss, covers, label_free_orders, make_planted, recovered


def test_minimal_subset_finds_planted_neurons_and_leaves_the_ranker_alone():
    d = make_planted(n=3000, seed=0)
    lin = R.Linear()
    before = lin.get_params()
    res = R.minimal_subset(R.Linear(), d.X, d.y, delta=0.01, groups=d.groups)
    assert set(res.neurons.tolist()) <= set(d.planted.tolist())
    assert covers(res.neurons, d.signals, res.k)
    assert res.share == res.k / d.X.shape[1]
    assert res.accuracy >= res.oracle_accuracy - 0.01
    curve = res.curve.set_index("k").accuracy
    assert curve[res.k - 1] < res.oracle_accuracy - 0.01  # one neuron fewer is not enough
    assert res.ranker is not None and res.ranker.order_[: res.k].tolist() == res.neurons.tolist()
    res2 = R.minimal_subset(lin, d.X, d.y, delta=0.01, groups=d.groups)
    assert lin.get_params() == before and not hasattr(lin, "order_")  # no refit behind the user's back
    assert res2.neurons.tolist() == res.neurons.tolist()
    # the label-free controls' top-k retrained: far from the oracle
    tr, te = np.arange(2400), np.arange(2400, 3000)
    subsets = [order[: res.k] for order in label_free_orders(d.X).values()]
    acc = LogisticProbes(seed=0).fit(d.X[tr], d.y[tr], subsets).subset_scores(d.X[te], d.y[te])
    assert acc.max() < res.oracle_accuracy - 0.2, acc


def test_linear_cv_picks_the_penalties_and_leaves_the_estimator_alone():
    d = make_planted(n=1500, seed=1)
    lin = R.Linear()
    grid = [(0.0, 0.0), (1e-3, 0.0), (1e-2, 1e-2), (1.0, 1.0)]
    cv = R.LinearCV(lin, grid=grid, tolerance=0.02).fit(d.X, d.y, groups=d.groups)
    table = cv.cv_results_
    assert table.chosen.sum() == 1
    base = table.loc[(table.l1 == 0) & (table.l2 == 0), "accuracy"].iloc[0]
    chosen = table[table.chosen].iloc[0]
    assert chosen.accuracy >= base - 0.02
    # the huge penalty kills the probe, so it cannot be chosen; the next most regularized is
    huge = table[(table.l1 == 1.0)].iloc[0]
    assert huge.accuracy < base - 0.02
    assert (chosen.l1, chosen.l2) == (1e-2, 1e-2) == (cv.l1_, cv.l2_)
    assert lin.l1 is None and lin.l2 == 0.1 and not hasattr(lin, "order_")  # parameters untouched, not refit
    assert (cv.estimator_.l1, cv.estimator_.l2) == (1e-2, 1e-2)
    assert recovered(cv.order_, d.planted)  # the refit copy, with the chosen penalties
    assert cv.order_.tolist() == cv.estimator_.order_.tolist()
    assert_controls_miss(d)
