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


def spiky(n: int = 4000, seed: int = 0):
    """Two classes. Column 0 is 1 on every class-1 word and 0 on class 0 (plus a little noise), except that it
    fires at 50 on 1% of the class-1 words (a neuron far beyond its usual range now and then): a threshold
    separates the classes perfectly. Column 1 is a Gaussian shift of 1.2 SD (about 73% accurate alone);
    2-5 are noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    Z = rng.standard_normal((n, 6)).astype(np.float32)
    Z[:, 0] = np.where(y == 1, np.where(rng.random(n) < 0.01, 50.0, 1.0), 0.0) + 0.05 * rng.standard_normal(n)
    Z[:, 1] = 1.2 * y + rng.standard_normal(n)
    return Z, y


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_clipping_takes_the_separating_spiky_column_first(seed):
    """``clip=3``: the separating column's rare spikes no longer count against it, so it comes first; the
    control, plain least squares, takes the overlapping Gaussian column first (the spikes' squared overshoot
    outweighs the separation). The column taken first is also the better one for a logistic probe."""
    from sklearn.linear_model import LogisticRegression

    Z, y = spiky(seed=seed)
    clipped = forward_selection(Z, y, 3, 2, seed=seed, clip=3.0)
    plain = forward_selection(Z, y, 3, 2, seed=seed)
    assert clipped[0] == 0 and plain[0] == 1, (clipped, plain)
    acc = [LogisticRegression().fit(Z[:, [j]], y).score(Z[:, [j]], y) for j in (0, 1)]
    assert acc[0] > 0.99 > 0.8 > acc[1], acc


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_linear_default_takes_the_spiky_separating_neuron_first(seed):
    """``Linear()`` (``refine_clip=3``) puts the separating spiky neuron first; the controls, the unclipped
    refinement (``refine_clip=None``) and LCA's own mass order, put the overlapping Gaussian one first."""
    Z, y = spiky(seed=seed)
    lin = R.Linear(seed=seed).fit(Z, y)
    assert lin.order_[0] == 0 and lin.forward_[0] == 0, lin.order_
    assert R.Linear(seed=seed, refine_clip=None).fit(Z, y).order_[0] == 1
    assert lin.order_mass_[0] == 1, lin.order_mass_
    with pytest.raises(ValueError, match="refine_clip"):
        R.Linear(refine_clip=0).fit(Z, y)


def test_neuron_zero_is_a_candidate_and_constant_neurons_are_not():
    """Regression: ``constant_`` is a mask, and testing candidates' indices for membership in it dropped neuron 0
    (and neuron 1 whenever some neuron was constant) from forward selection."""
    Z, y = spiky(seed=0)
    Z[:, 1] = 2.0  # constant
    lin = R.Linear(seed=0).fit(Z, y)
    assert lin.forward_[0] == 0 and 1 not in lin.forward_.tolist(), lin.forward_
    assert lin.order_[-1] == 1  # constant neurons rank last


def test_clipping_keeps_the_other_rules():
    """With ``clip`` an exact copy is still never taken, noise still stops the path, the result is
    deterministic, and a non-positive clip is an error."""
    Z, y = complementary(seed=4)
    Z = np.concatenate([Z, Z[:, :1]], axis=1)
    a = forward_selection(Z, y, 12, 4, seed=0, clip=3.0)
    assert a[:2].tolist() in ([0, 2], [11, 2]) and not ({0, 11} <= set(a.tolist())), a
    np.testing.assert_array_equal(a, forward_selection(Z, y, 12, 4, seed=0, clip=3.0))
    rng = np.random.default_rng(1)
    noise = rng.standard_normal((2000, 50)).astype(np.float32) * rng.uniform(0.5, 3, 50).astype(np.float32)
    assert len(forward_selection(noise, rng.integers(0, 3, 2000), 20, 3, clip=3.0)) <= 1
    with pytest.raises(ValueError, match="clip"):
        forward_selection(Z, y, 2, 4, clip=0.0)


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
    m, rows = refine_limits(budget, width=2048, candidates=1000, k=100)
    assert 12 * m * m <= budget // 8 and 8 * rows * (m + 100) <= budget // 8
    assert 0 < m < 1000 and rows > 0  # a small budget shrinks both, never to nothing
    assert refine_limits(2**34, 9216, 1000, 100)[0] == 1000  # a large one keeps every candidate
