"""Bad input: clear errors or documented handling, for every ranker."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tl_neuronprobe.rankers as R

NAMES = list(R.RANKERS)
PARAMS = {"gaussian": dict(max_k=3)}


def _r(name, **kw):
    return R.make_ranker(name, **(PARAMS.get(name, {}) | kw))


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 8)).astype(np.float32)
    y = np.repeat(["NOUN", "VERB", "ADJ"], 20)
    return X, y


@pytest.mark.parametrize("name", NAMES)
def test_one_class(name, data):
    X, _ = data
    with pytest.raises(ValueError, match="at least 2 classes.*'NOUN'"):
        _r(name).fit(X, np.array(["NOUN"] * len(X)))


@pytest.mark.parametrize("name", NAMES)
def test_class_with_single_example_is_named(name, data):
    X, y = data
    y = y.copy()
    y[0] = "INTJ"
    with pytest.raises(ValueError, match="'INTJ' \\(1 example\\)"):
        _r(name).fit(X, y)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_inf_names_rows_and_columns(name, bad, data):
    X, y = data
    X = X.copy()
    X[7, 3] = bad
    X[11, 5] = bad
    with pytest.raises(ValueError, match=r"NaN or inf in 2 rows \[7, 11\] and 2 columns \(neurons\) \[3, 5\]"):
        _r(name).fit(X, y)


def test_huge_finite_values_are_not_mistaken_for_inf():
    """The finiteness check first sums X (a finite sum means every entry is finite); a sum that overflows must
    fall back to the entry-wise check, not report an inf that is not there; mixed +inf and -inf (sum NaN) and a
    lone NaN among huge values are still named."""
    from tl_neuronprobe.core.validation import check_X

    X = np.full((4, 3), 3e38, dtype=np.float32)  # finite, but their float32 sum overflows
    assert check_X(X) is X
    X[1, 2], X[3, 0] = np.inf, -np.inf
    with pytest.raises(ValueError, match=r"NaN or inf in 2 rows \[1, 3\] and 2 columns \(neurons\) \[0, 2\]"):
        check_X(X)
    X = np.full((4, 3), 3e38, dtype=np.float32)
    X[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"NaN or inf in 1 rows \[2\]"):
        check_X(X)


@pytest.mark.parametrize("name", NAMES)
def test_length_mismatch(name, data):
    X, y = data
    with pytest.raises(ValueError, match="X has 60 rows but y has 59 labels"):
        _r(name).fit(X, y[:-1])


@pytest.mark.parametrize("name", NAMES)
def test_k_larger_than_neurons(name, data):
    X, y = data
    with pytest.raises(ValueError, match="k=9 is larger than the number of neurons \\(8\\)"):
        _r(name, k=9).fit(X, y)
    r = _r(name).fit(X, y)
    with pytest.raises(ValueError, match="k=20 is larger than the number of neurons \\(8\\)"):
        r.top(20)


@pytest.mark.parametrize("name", NAMES)
def test_constant_and_duplicate_neurons(name, data):
    X, y = data
    X = X.copy()
    X[:, 2] = 1.5  # constant
    X[:, 6] = X[:, 1]  # duplicate
    r = _r(name).fit(X, y)
    assert r.order_[-1] == 2
    assert r.constant_[2] and r.constant_.sum() == 1
    assert np.isneginf(r.scores_[2])
    assert sorted(r.order_) == list(range(8))


@pytest.mark.parametrize("name", NAMES)
def test_torch_input_and_int_labels(name, data):
    X, y = data
    yi = np.unique(y, return_inverse=True)[1]
    a = _r(name).fit(torch.from_numpy(X), torch.from_numpy(yi))
    b = _r(name).fit(X, yi)
    np.testing.assert_array_equal(a.order_, b.order_)


def test_other_shapes_and_missing_labels(data):
    X, y = data
    with pytest.raises(ValueError, match="2-D"):
        R.Probeless().fit(X[:, 0], y)
    yy = y.astype(object)
    yy[4] = None
    with pytest.raises(ValueError, match="missing labels"):
        R.Probeless().fit(X, yy)
    with pytest.raises(ValueError, match="at least 1"):
        R.Probeless(k=0).fit(X, y)
    with pytest.raises(ValueError, match="unknown ranker"):
        R.make_ranker("nope")


def test_unfitted_raises(data):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        R.Probeless().top(3)
    with pytest.raises(NotFittedError):
        R.Linear().predict(data[0])
