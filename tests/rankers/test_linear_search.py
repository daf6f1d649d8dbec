"""Durrani et al.'s lambda search and minimal subset."""

from __future__ import annotations

import numpy as np

import tl_neuronprobe.rankers as R

from planted_arrays import make_planted


def test_minimal_subset_finds_the_planted_set():
    d = make_planted(n=3000, shift=3.0, seed=0)
    res = R.Linear().minimal_subset(d.X, d.y, delta=0.01, groups=d.groups)
    assert sorted(res.neurons.tolist()) == sorted(d.planted.tolist())
    assert res.k == 4 and res.share == 4 / d.X.shape[1]
    assert res.accuracy >= res.oracle_accuracy - 0.01
    curve = res.curve.set_index("k").accuracy
    assert curve[3] < res.oracle_accuracy - 0.01  # one planted neuron fewer is not enough


def test_search_lambdas_keeps_accuracy_and_prefers_regularization():
    d = make_planted(n=1500, seed=1)
    lin = R.Linear()
    grid = [(0.0, 0.0), (1e-3, 0.0), (1e-2, 1e-2), (1.0, 1.0)]
    table = lin.search_lambdas(d.X, d.y, grid=grid, tolerance=0.02, groups=d.groups)
    assert table.chosen.sum() == 1
    base = table.loc[(table.l1 == 0) & (table.l2 == 0), "accuracy"].iloc[0]
    chosen = table[table.chosen].iloc[0]
    assert chosen.accuracy >= base - 0.02
    # the huge penalty kills the probe, so it cannot be chosen; the next most regularized is
    huge = table[(table.l1 == 1.0)].iloc[0]
    assert huge.accuracy < base - 0.02
    assert (chosen.l1, chosen.l2) == (1e-2, 1e-2)
    assert (lin.l1, lin.l2) == (1e-2, 1e-2)
    assert set(lin.order_[:4]) == set(d.planted)  # refit with the chosen penalties
