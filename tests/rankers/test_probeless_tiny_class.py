"""Probeless on a tiny class (issue 21, finding 5): a class of 30 words must not own the ranking.

GUM's 33-word Number=Ptan class made a clothing neuron the #2 Number neuron under the published, uniformly
weighted sum over class pairs. Here the same shape is planted: five neurons carry Sing vs Plur over 3,000 words
(shifts of 0.6-1.0 noise units), one neuron fires hugely (8 noise units) on the 30 Ptan words only.
"""

from __future__ import annotations

import numpy as np
import pytest

from tl_neuronprobe import rankers as R

REAL = np.arange(5)
TINY = 5


def _tiny_class_data(seed: int = 0, n_big: int = 1500, n_tiny: int = 30, n_noise: int = 40):
    rng = np.random.default_rng(seed)
    y = np.asarray(["Sing"] * n_big + ["Plur"] * n_big + ["Ptan"] * n_tiny)
    X = rng.standard_normal((len(y), len(REAL) + 1 + n_noise))
    shifts = np.linspace(0.6, 1.0, len(REAL))
    X[y == "Sing", : len(REAL)] += shifts / 2
    X[y != "Sing", : len(REAL)] -= shifts / 2  # plurale tantum words look plural to the real neurons
    X[y == "Ptan", TINY] += 8.0
    perm = rng.permutation(len(y))
    return X[perm].astype(np.float32), y[perm]


def test_uniform_weights_let_the_tiny_class_lead():
    """The published estimator (kept as ``pair_weight="uniform"``) shows the bug: the Ptan neuron is first."""
    X, y = _tiny_class_data()
    r = R.Probeless(pair_weight="uniform").fit(X, y)
    assert r.order_[0] == TINY
    assert r.driver_class_[TINY] == "Ptan" and r.driver_share_[TINY] > 0.95


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_default_ranks_the_big_classes_signal_first(seed):
    X, y = _tiny_class_data(seed)
    r = R.Probeless().fit(X, y)
    assert set(r.order_[:5]) == set(REAL), r.order_[:8]
    # the tiny class's neuron still ranks above noise, and the fitted ranker says which class drove it
    assert r.ranks_[TINY] == 5
    assert r.driver_class_[TINY] == "Ptan" and r.driver_share_[TINY] > 0.9
    assert set(r.driver_class_[REAL]) <= {"Sing", "Plur"}


def test_controls_miss_the_big_classes_signal():
    """Label-free (variance) and shuffled-label orderings do not find the real neurons: the test can fail."""
    X, y = _tiny_class_data()
    by_variance = np.argsort(-X.var(0), kind="stable")
    assert by_variance[0] == TINY and set(by_variance[:5]) != set(REAL)
    shuffled = R.Probeless().fit(X, np.random.default_rng(0).permutation(y))
    assert len(set(shuffled.order_[:5]) & set(REAL)) <= 1


def test_frequency_weights_equal_the_formula():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(400, 12)).astype(np.float32)
    y = rng.choice(5, 400, p=[0.4, 0.3, 0.15, 0.1, 0.05])
    r = R.Probeless().fit(X, y)
    q = np.stack([X[y == z].mean(0) for z in range(5)]).astype(np.float64)
    p = np.bincount(y) / len(y)
    direct = sum(p[a] * p[b] * np.abs(q[a] - q[b]) for a in range(5) for b in range(a + 1, 5))
    np.testing.assert_allclose(r.scores_, direct, rtol=1e-5)
    per = np.stack([sum(p[a] * p[b] * np.abs(q[a] - q[b]) for b in range(5) if b != a) for a in range(5)])
    np.testing.assert_allclose(r.per_class_, per, rtol=1e-5)
    np.testing.assert_array_equal(r.driver_class_, r.classes_[per.argmax(0)])
    np.testing.assert_allclose(r.driver_share_, per.max(0) / direct, rtol=1e-5)


def test_two_classes_same_order_either_weight():
    X, y = _tiny_class_data()
    keep = y != "Ptan"
    a = R.Probeless().fit(X[keep], y[keep])
    b = R.Probeless(pair_weight="uniform").fit(X[keep], y[keep])
    np.testing.assert_array_equal(a.order_, b.order_)


def test_unknown_pair_weight_is_named():
    X, y = _tiny_class_data()
    with pytest.raises(ValueError, match="pair_weight must be 'frequency' or 'uniform', got 'size'"):
        R.Probeless(pair_weight="size").fit(X, y)


def test_rank_table_names_the_driving_class(tmp_path):
    """``tl-neuronprobe rank`` writes each neuron's driving class beside its Probeless score."""
    import pandas as pd

    import tl_neuronprobe as tnp
    from tl_neuronprobe.cli import main as run

    X, y = _tiny_class_data()
    neurons = [tnp.Neuron(0, j) for j in range(X.shape[1])]
    acts = tnp.Activations(X, neurons, [f"w{i % 97}" for i in range(len(y))], np.arange(len(y)) // 10,
                           {"Number": list(y)})
    acts.save(tmp_path / "acts")
    assert run(["rank", str(tmp_path / "acts"), "--attribute", "Number", "--rankers", "probeless", "--k", "6",
                "--out", str(tmp_path / "out")]) == 0
    table = pd.read_csv(tmp_path / "out" / "rank_probeless.csv").set_index("neuron")
    assert table.loc[str(neurons[TINY]), "driver_class"] == "Ptan"
    assert table.loc[str(neurons[TINY]), "rank"] == 6 and table.loc[str(neurons[TINY]), "driver_share"] > 0.9
    assert set(table.loc[[str(neurons[j]) for j in REAL], "driver_class"]) <= {"Sing", "Plur"}
