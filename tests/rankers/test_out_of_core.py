"""Out-of-core fitting gives the in-memory result: every ranker on the planted data saved to disk.

The attribute leaves every seventh word unlabelled, so the reader skips rows; chunk sizes of 100 rows
(not a multiple of anything), 256 rows and one chunk for everything.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal

from planted_arrays import recovered
from tl_neuronprobe.core.neurons import Neuron
from tl_neuronprobe.data.activations import Activations
from tl_neuronprobe.data.chunks import ActivationChunks
from tl_neuronprobe.rankers import L1, Linear, MutualInformation, SoftmaxTrainer, fit_out_of_core, make_ranker


@pytest.fixture(scope="module")
def saved(planted_data, tmp_path_factory):
    d = planted_data
    names = np.array(["ADJ", "NOUN", "PRON", "VERB"])
    labels = [str(names[v]) if i % 7 else None for i, v in enumerate(d.y)]
    acts = Activations(torch.from_numpy(d.X), [Neuron(0, i) for i in range(d.X.shape[1])], ["w"] * len(d.y),
                       d.groups, {"pos": labels})
    path = acts.save(tmp_path_factory.mktemp("ooc") / "acts")
    X, y, classes, idx = acts.dataset("pos", return_index=True)
    return SimpleNamespace(path=path, X=X.numpy(), y=np.asarray(classes)[y.numpy()], groups=acts.sentence_ids[idx],
                           planted=d.planted, acts=acts)


def in_memory(saved, ranker):
    return ranker.fit(saved.X, saved.y, groups=saved.groups)


EXACT = ["probeless", "mean_difference", "f_statistic", "random", "mutual_information", "average_precision"]


@pytest.mark.parametrize("chunk_rows", [None, 100, 256])
@pytest.mark.parametrize("name", EXACT)
def test_univariate_rankers_equal_in_memory(saved, name, chunk_rows):
    a = in_memory(saved, make_ranker(name))
    b = fit_out_of_core(make_ranker(name), saved.path, "pos", chunk_rows=chunk_rows)
    assert_array_equal(a.classes_, b.classes_)
    assert_array_equal(a.constant_, b.constant_)
    assert_array_equal(a.order_, b.order_)
    assert_allclose(a.scores_, b.scores_, rtol=1e-12, atol=1e-14)  # float64 sums in another order
    if hasattr(a, "per_class_"):
        assert_allclose(a.per_class_, b.per_class_, rtol=1e-12, atol=1e-14)
    assert b.n_features_in_ == saved.X.shape[1]


def test_mean_difference_standardized_and_from_activations(saved):
    a = in_memory(saved, make_ranker("mean_difference", standardize=True))
    b = fit_out_of_core(make_ranker("mean_difference", standardize=True), saved.acts, "pos", chunk_rows=128)
    assert_array_equal(a.order_, b.order_)
    assert_allclose(a.scores_, b.scores_, rtol=1e-12)


def test_one_pass_approximations_are_close(saved):
    """exact=False: MI from quantile edges of an evenly spaced sample (here 256 of 1,286 rows), AP from
    256-bin histograms. Measured: |MI difference| <= 0.013 bits (top score 0.54), |AP difference| <= 0.007."""
    for name, tol in [("mutual_information", 0.02), ("average_precision", 0.01)]:
        a = in_memory(saved, make_ranker(name))
        b = fit_out_of_core(make_ranker(name), saved.path, "pos", chunk_rows=256, exact=False)
        keep = ~a.constant_
        assert np.abs(a.scores_[keep] - b.scores_[keep]).max() <= tol
        assert recovered(b.order_, saved.planted) == recovered(a.order_, saved.planted)
        assert b.n_passes_ == 3
    b = fit_out_of_core(MutualInformation(), saved.path, "pos", exact=False)  # the sample is every row
    assert_allclose(b.scores_, in_memory(saved, MutualInformation()).scores_, rtol=1e-12)


@pytest.mark.parametrize("make", [
    lambda: Linear(seed=3, trainer=SoftmaxTrainer(solver="adam")),
    lambda: Linear.from_preset("neurox", seed=3),
    lambda: Linear(seed=3, ordering="mean_abs", trainer=SoftmaxTrainer(solver="adam", standardize=False))])
def test_linear_one_chunk_is_bit_identical(saved, make):
    """With every training row in one chunk the mini-batches are the in-memory ones: same weights, bit for bit."""
    a = in_memory(saved, make())
    b = make().fit_chunks(ActivationChunks(saved.path, "pos"))  # the estimator's own chunked fit
    assert_array_equal(a.coef_, b.coef_)
    assert_array_equal(a.order_, b.order_)
    assert_array_equal(a.scores_, b.scores_)


def test_linear_small_problem_and_l1_one_chunk(saved):
    """solver="auto" picks L-BFGS for this size: the rows (<= lbfgs_below values) are read into memory."""
    a, b = in_memory(saved, Linear()), fit_out_of_core(Linear(), saved.path, "pos", chunk_rows=100)
    assert_array_equal(a.coef_, b.coef_)
    a, b = in_memory(saved, L1()), fit_out_of_core(L1(), saved.path, "pos")
    assert_array_equal(a.coef_, b.coef_)
    assert_array_equal(a.order_, b.order_)


def test_linear_and_l1_across_chunks_agree(saved):
    """Several chunks: batches never mix chunks, so the run differs; the ranking must agree as well as two seeds
    of the in-memory fit do (measured on this data: top-10 overlap 9 for Linear, 10 for L1 between seeds 0 and
    1; out of core with 5 chunks: 8-9 and 8-9)."""
    for ranker, kw in [(Linear, dict(trainer=SoftmaxTrainer(solver="adam"))), (L1, {})]:
        a = in_memory(saved, ranker(**kw))
        b = fit_out_of_core(ranker(**kw), saved.path, "pos", chunk_rows=256)
        assert recovered(b.order_, saved.planted)
        assert len(set(a.order_[:10]) & set(b.order_[:10])) >= 8
        assert b.score(saved.X, saved.y) >= a.score(saved.X, saved.y) - 0.02


@pytest.mark.parametrize("chunk_rows", [None, 100])
def test_gaussian_equals_in_memory(saved, chunk_rows):
    """Per-class means and scatter in float64 (merged chunk by chunk) give the same greedy picks; the scan's
    float32 single-neuron scores agree to float32 precision."""
    a = in_memory(saved, make_ranker("gaussian", max_k=10))
    b = fit_out_of_core(make_ranker("gaussian", max_k=10), saved.path, "pos", chunk_rows=chunk_rows)
    assert_array_equal(a.selected_, b.selected_)
    assert_allclose(a.mi_, b.mi_, rtol=1e-9)
    assert_allclose(a.scores_, b.scores_, rtol=1e-5, atol=1e-6)
    assert_array_equal(a.order_, b.order_)
    assert a.score(saved.X, saved.y) == b.score(saved.X, saved.y)


def test_bad_input(saved, tmp_path):
    with pytest.raises(ValueError, match="needs X in memory"):
        fit_out_of_core(L1(backend="sklearn"), saved.path, "pos")
    with pytest.raises(ValueError, match="needs X in memory"):
        fit_out_of_core(MutualInformation(estimator="sklearn"), saved.path, "pos")
    with pytest.raises(ValueError, match="needs an attribute"):
        fit_out_of_core(make_ranker("probeless"), saved.path)
    with pytest.raises(KeyError, match="nope"):
        fit_out_of_core(make_ranker("probeless"), saved.path, "nope")
    with pytest.raises(FileNotFoundError):
        fit_out_of_core(make_ranker("probeless"), tmp_path / "missing", "pos")
    with pytest.raises(ValueError, match="k=1000"):
        fit_out_of_core(make_ranker("probeless", k=1000), saved.path, "pos")
    X = saved.acts.X.clone()
    X[40, 3] = float("nan")
    bad = Activations(X, saved.acts.neurons, saved.acts.words, saved.acts.sentence_ids, saved.acts.attributes)
    with pytest.raises(ValueError, match=r"rows \(words\) \[40\] and columns \(neurons\) \[3\]"):
        fit_out_of_core(make_ranker("probeless"), bad.save(tmp_path / "nan"), "pos", chunk_rows=16)


def test_f_statistic_is_f_classif_in_float64(planted_data):
    """FStatistic computes from float64 moments: scikit-learn's F on float64 inputs to 1e-9 (its float32 path
    sums squares in float32 and differs by up to 5e-4 relative on this data)."""
    import warnings

    from sklearn.feature_selection import f_classif

    d = planted_data
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore")
        F, p = f_classif(d.X.astype(np.float64), d.y)
    r = make_ranker("f_statistic").fit(d.X, d.y)
    ok = np.isfinite(F)
    assert_allclose(r.scores_[ok], F[ok], rtol=1e-9)
    assert_allclose(r.pvalues_[ok], p[ok], rtol=1e-6, atol=1e-300)
    assert np.isneginf(r.scores_[~ok]).all()
