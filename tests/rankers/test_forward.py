"""Forward selection (``rankers.forward_selection``) and Linear's refined head (``refine_k``) on planted columns."""

from __future__ import annotations

import numpy as np
import pytest

import tl_neuronprobe.rankers as R
from tl_neuronprobe.rankers import forward_selection

from planted_arrays import make_planted, recovered


def complementary(n: int = 3000, seed: int = 0):
    """Four classes. Column 0 separates {0, 1} from {2, 3}; column 1 is a noisy copy of it; column 2 separates
    {0, 2} from {1, 3} (what column 0 lacks); 3-9 are noise, 10 a heavy-tailed decoy. Column 1 correlates with
    the classes as strongly as column 2 does, so a univariate score cannot tell which to take second."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    a = np.where(y < 2, 1.0, -1.0) + 0.6 * rng.standard_normal(n)
    b = np.where(y % 2 == 0, 1.0, -1.0) + 0.9 * rng.standard_normal(n)
    Z = rng.standard_normal((n, 11)).astype(np.float32)
    Z[:, 0] = a
    Z[:, 1] = a + 0.3 * rng.standard_normal(n)
    Z[:, 2] = b
    Z[:, 10] = rng.standard_t(1.5, n)
    return Z, y


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_takes_what_the_taken_columns_lack_before_a_copy(seed):
    Z, y = complementary(seed=seed)
    taken = forward_selection(Z, y, 5, 4, seed=seed)
    assert taken[:2].tolist() == [0, 2], taken
    assert 10 not in taken[:3] and not set(range(3, 10)) & set(taken[:2].tolist())
    # control: a univariate score (class-mean spread, what a mass of single-neuron weights rewards) ranks the
    # copy second, ahead of the complementary column
    spread = np.array([np.ptp([Z[y == c, j].mean() for c in range(4)]) / Z[:, j].std() for j in range(Z.shape[1])])
    assert np.argsort(-spread)[:2].tolist() in ([0, 1], [1, 0]), np.argsort(-spread)[:3]


def test_an_exact_copy_is_never_taken_and_the_result_is_deterministic():
    Z, y = complementary(seed=4)
    Z = np.concatenate([Z, Z[:, :1]], axis=1)  # column 11 = column 0
    a = forward_selection(Z, y, 12, 4, seed=0)
    assert not ({0, 11} <= set(a.tolist())), a
    np.testing.assert_array_equal(a, forward_selection(Z, y, 12, 4, seed=0))


def test_columns_unrelated_to_the_classes_are_not_taken():
    """Chance rule: pure noise against the labels stops the path at once (seeded: no false alarm here), while
    the label-free control, the variance order, would happily rank them."""
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((2000, 50)).astype(np.float32) * rng.uniform(0.5, 3, 50).astype(np.float32)
    y = rng.integers(0, 3, 2000)
    assert len(forward_selection(Z, y, 20, 3)) <= 1


def test_a_separating_column_ends_the_path():
    """Held-out rule: once one column separates two classes, later columns only fit the shape of the indicators;
    the path is cut where held-out accuracy peaks (the first column), however many steps beat chance."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    Z = rng.standard_normal((2000, 8)).astype(np.float32)
    Z[:, 3] = np.where(y == 1, 2.0, -2.0) + 0.2 * rng.standard_normal(2000) + 0.5 * Z[:, 0]  # separates, skewed
    taken = forward_selection(Z, y, 8, 2, groups=np.arange(2000) // 20)
    assert taken.tolist() == [3], taken


def test_small_or_single_group_data_still_ranks():
    """One group (a single sentence) holds out rows instead; fewer than 10 rows use no held-out share; a class
    with one example stays on the fitted side."""
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((200, 20)).astype(np.float32)
    y = (Z[:, 3] > 0).astype(np.int64)
    assert forward_selection(Z, y, 5, 2, groups=np.zeros(200, dtype=np.int64))[0] == 3
    assert forward_selection(Z[:8], y[:8], 5, 2)[0] == 3
    y3 = y.copy()
    y3[0] = 2
    assert forward_selection(Z, y3, 5, 3, groups=np.arange(200) // 10)[0] == 3
    assert R.Linear().fit(Z, y, groups=np.zeros(200, dtype=np.int64)).order_[0] == 3


def test_bad_input_is_an_error():
    with pytest.raises(ValueError, match="rows"):
        forward_selection(np.zeros((10, 3)), np.zeros(9, dtype=int), 2, 2)
    Z, y = complementary(n=300)
    with pytest.raises(ValueError, match="refine_k"):
        R.Linear(refine_k=-1).fit(Z, y)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_linear_refined_head_recovers_the_planted_set(seed):
    """The default (refined) ranking still has the planted set on top, copies included, and the label-free
    controls still miss it (``make_planted`` checks them); without refinement (``refine_k=0``) the ranking
    is LCA's weight-mass order."""
    d = make_planted(seed=seed)
    r = R.Linear(seed=seed).fit(d.X, d.y, groups=d.groups)
    assert 0 < len(r.forward_) and np.array_equal(r.order_[:len(r.forward_)], r.forward_)
    assert recovered(r.order_, d.planted), (r.order_[:10], d.planted)
    plain = R.Linear(seed=seed, refine_k=0).fit(d.X, d.y, groups=d.groups)
    assert len(plain.forward_) == 0 and np.array_equal(plain.order_, plain.order_mass_)
    np.testing.assert_array_equal(plain.order_mass_, r.order_mass_)  # refinement only reorders


def test_out_of_core_refinement_stays_within_its_share_of_the_budget():
    from tl_neuronprobe.rankers._out_of_core_probes import refine_limits

    budget = 16 * 2**20
    m, rows = refine_limits(budget, n_neurons=2048, candidates=1000, k=100)
    assert 12 * m * m <= budget // 8 and 8 * rows * (m + 100) <= budget // 8
    assert 0 < m < 1000 and rows > 0  # a small budget shrinks both, never to nothing
    assert refine_limits(2**34, 9216, 1000, 100)[0] == 1000  # a large one keeps every candidate
