"""Linear's contribution mass (the default) against the published weight mass."""

import numpy as np

from tl_neuronprobe.rankers import Linear, SoftmaxTrainer, weight_mass_order


def _data(seed=0, n=1200):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = rng.normal(size=(n, 12)).astype(np.float32)
    X[:, 0] += 2.0 * (y == 0)            # broadly informative for class 0
    X[:, 1] += 2.0 * (y == 1)            # broadly informative for class 1
    rare = rng.random(n) < 0.02           # fires on 2% of the words, hugely, only in class 2
    X[:, 2] = np.where(rare & (y == 2), 60.0, 0.0) + 0.01 * rng.normal(size=n)
    X[:, 3] += 1.5 * (y == 2)            # the broad class-2 neuron
    return X, y


def test_weight_mass_is_the_published_order_of_abs_coef():
    X, y = _data()
    lin = Linear(mass="weight", seed=0).fit(X, y)
    assert lin.contribution_scale_ is None
    order, *_ = weight_mass_order(np.abs(lin.ranking_coef_), 100)
    assert lin.order_mass_[:4].tolist() == order[:4].tolist()


def test_ranking_probe_is_trained_jointly_and_leaves_the_reported_probe_alone():
    """Adam path (``SoftmaxTrainer(lbfgs_below=0)``): the sparser ranking probe shares the mini-batches, so the reported
    probe is the one a single-probe fit gives, and the ranking probe is the one an ``l1=3e-3`` fit gives."""
    X, y = _data(seed=1, n=3000)
    joint = Linear(seed=0, trainer=SoftmaxTrainer(lbfgs_below=0)).fit(X, y)
    alone = Linear(seed=0, trainer=SoftmaxTrainer(lbfgs_below=0), ranking_l1=1e-3).fit(X, y)
    sparse = Linear(seed=0, trainer=SoftmaxTrainer(lbfgs_below=0), l1=3e-3, ranking_l1=3e-3).fit(X, y)
    assert joint.ranking_l1_ == 3e-3 and alone.ranking_l1_ == 1e-3
    np.testing.assert_allclose(joint.coef_, alone.coef_, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(joint.ranking_coef_, sparse.coef_, rtol=1e-4, atol=1e-6)
    noise = lambda W: np.abs(W[:, 4:]).sum()  # noqa: E731  (columns 4.. carry nothing; measured ratio 0.86)
    assert noise(joint.ranking_coef_) < 0.92 * noise(joint.coef_), (noise(joint.ranking_coef_), noise(joint.coef_))
    assert joint.score(X, y) == alone.score(X, y)
    assert alone.ranking_coef_ is alone.coef_
    assert Linear.from_preset("neurox").fit(X[:300], y[:300]).ranking_l1_ == 1e-3  # published presets: one probe


def test_contribution_mass_scales_weights_by_typical_deviation():
    X, y = _data()
    lin = Linear(seed=0).fit(X, y)
    assert lin.contribution_scale_ is not None and lin.contribution_scale_.shape == (X.shape[1],)
    # the rare-but-huge neuron has the smallest typical deviation of the informative ones
    assert lin.contribution_scale_[2] < min(lin.contribution_scale_[[0, 1, 3]])
    top3 = set(lin.order_[:3].tolist())
    assert top3 == {0, 1, 3}
    weight = Linear(mass="weight", seed=0).fit(X, y)
    rank_c, rank_w = lin.order_.tolist().index(2), weight.order_.tolist().index(2)
    assert rank_w == 3 and rank_c >= 5  # control: the published mass ranks the rare neuron right after the broad ones


def test_bad_mass_is_an_error():
    import pytest

    with pytest.raises(ValueError, match="mass must be"):
        Linear(mass="volume").fit(*_data())
