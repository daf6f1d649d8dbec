"""The chunked association equals per-pair reference computations; the within-sentence null is exact."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from tl_neuronprobe.descriptions._associate import associate, benjamini_hochberg, within_sentence_shuffle
from tl_neuronprobe.descriptions._associate import (_null_moments, average_ranks, refine, sentence_design,
                                                shortlist)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    n, d, K = 1200, 9, 25
    sid = np.repeat(np.arange(120), 10)
    C = sp.csc_matrix(rng.random((n, K)) < rng.uniform(0.02, 0.3, K))
    X = rng.standard_normal((n, d)).astype(np.float32)
    X[:, 0] += 2 * C[:, 3].toarray().ravel()
    X[:, 1] = np.round(X[:, 1])  # ties
    return torch.from_numpy(X), C, sid


def test_statistics_match_per_pair_references(data):
    X, C, sid = data
    a = associate(X, C, sid, quantile=0.1, chunk_neurons=4)  # chunks that do not divide the neurons
    x = X.numpy()
    for j in range(X.shape[1]):
        top = x[:, j] >= np.sort(x[:, j])[len(x) - int(np.ceil(0.1 * len(x)))]
        for k in range(C.shape[1]):
            y = C[:, k].toarray().ravel()
            assert a.auroc[j, k] == pytest.approx(roc_auc_score(y, x[:, j]), abs=1e-5)
            inter = (top & y).sum()
            assert a.iou[j, k] == pytest.approx(inter / (top | y).sum(), abs=1e-6)
            assert a.precision[j, k] == pytest.approx(inter / top.sum(), abs=1e-6)
            diff = (x[y, j].mean() - x[~y, j].mean()) / x[:, j].std(ddof=1)
            assert a.mean_diff[j, k] == pytest.approx(diff, abs=1e-4)
    assert a.q[0, 3] < 1e-6 and a.z[0, 3] > 10  # the planted pair


@pytest.mark.parametrize("end", ["top", "bottom"])
def test_torch_route_equals_the_cpu_route(data, end):
    """``device=`` (the CUDA path) runs the same chunked statistics in torch; forced onto the CPU here (no GPU in
    CI) it matches the numpy route, ties included (column 1 is rounded)."""
    X, C, sid = data
    ref = associate(X, C, sid, quantile=0.1, chunk_neurons=4, end=end)
    dev = associate(X, C, sid, quantile=0.1, chunk_neurons=4, end=end, device="cpu")
    for field in ("iou", "precision", "recall", "auroc", "mean_diff", "z", "q", "quantile_threshold", "n_fire"):
        np.testing.assert_allclose(getattr(dev, field), getattr(ref, field), rtol=1e-5, atol=1e-5, err_msg=field)
    wrong = X.clone()
    wrong[:, 1] = torch.randn(len(X))  # the check can fail: other activations, other statistics
    assert not np.allclose(associate(wrong, C, sid, quantile=0.1, chunk_neurons=4, end=end, device="cpu").auroc, ref.auroc)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_route_equals_the_cpu_route(data):
    X, C, sid = data
    ref = associate(X, C, sid, quantile=0.1, chunk_neurons=4)
    dev = associate(X, C, sid, quantile=0.1, chunk_neurons=4, device="cuda")
    np.testing.assert_allclose(dev.auroc, ref.auroc, atol=1e-5)
    np.testing.assert_allclose(dev.iou, ref.iou, atol=1e-6)


def test_exact_ap_and_best_threshold_on_the_shortlist(data):
    X, C, sid = data
    a = associate(X, C, sid)
    r = refine(X, C, shortlist(a, 4), min_fraction=0, max_fraction=1)
    for j in range(X.shape[1]):
        for i, k in enumerate(r.candidates[j]):
            y = C[:, k].toarray().ravel()
            assert r.ap[j, i] == pytest.approx(average_precision_score(y, X[:, j].numpy()), abs=1e-5)
            fire = X[:, j].numpy() > r.threshold[j, i]
            assert r.best_iou[j, i] == pytest.approx((fire & y).sum() / (fire | y).sum(), abs=1e-5)


def test_null_moments_equal_monte_carlo_within_sentence_shuffles(data):
    X, C, sid = data
    ranks, _, _ = average_ranks(X[:, :3])
    mean, var = _null_moments(sentence_design(C, sid), ranks)
    rng = np.random.default_rng(1)
    sims = np.stack([C.T @ within_sentence_shuffle(ranks.numpy(), sid, rng) for _ in range(3000)])
    z_mean = (sims.mean(0) - mean.numpy()) / np.sqrt(var.numpy() / len(sims))
    assert np.abs(z_mean).max() < 4.5
    assert np.median(sims.var(0) / var.numpy()) == pytest.approx(1.0, abs=0.05)
    # control: a shuffle across sentences has a different variance for sentence-clustered concepts
    clustered = sp.csc_matrix(np.isin(sid, np.arange(0, 120, 3))[:, None])
    _, v_within = _null_moments(sentence_design(clustered, sid), ranks)
    assert float(v_within.abs().max()) == 0.0  # whole sentences: the within-sentence null cannot move them


def test_noise_neurons_are_rarely_significant():
    rng = np.random.default_rng(3)
    n, K = 2000, 60
    sid = np.repeat(np.arange(200), 10)
    C = sp.csc_matrix(rng.random((n, K)) < rng.uniform(0.01, 0.3, K))
    X = torch.from_numpy(rng.standard_normal((n, 200)).astype(np.float32))
    a = associate(X, C, sid)
    assert (a.q <= 0.01).any(1).mean() <= 0.05
    assert (a.p <= 0.01).any(1).mean() > 0.2  # control: without BH, most noise neurons would pass


def test_benjamini_hochberg_matches_the_definition():
    p = np.array([[0.01, 0.04, 0.03, 0.2, 0.005]])
    m = p.shape[1]
    order = np.argsort(p[0])
    expected = np.empty(m)
    running = 1.0
    for r in range(m - 1, -1, -1):
        running = min(running, p[0, order[r]] * m / (r + 1))
        expected[order[r]] = running
    np.testing.assert_allclose(benjamini_hochberg(p)[0], expected)


def test_errors_name_the_problem(data):
    X, C, sid = data
    with pytest.raises(ValueError, match="words"):
        associate(X[:10], C, sid)
    with pytest.raises(ValueError, match="quantile"):
        associate(X, C, sid, quantile=1.5)
    with pytest.raises(ValueError, match="end"):
        associate(X, C, sid, end="middle")


def test_ranks_from_packed_keys_equal_scipy_average_ranks():
    """Average ranks from one sort of packed (value key, word index) integers: negatives, -0.0 == 0.0, long runs
    of ties (ReLU-like zeros) and rows without ties, against scipy's rankdata."""
    from scipy.stats import rankdata

    from tl_neuronprobe.descriptions._ranks import rank_columns, rank_rows

    rng = np.random.default_rng(4)
    x = rng.standard_normal((40, 3000)).astype(np.float32)
    x[0] = np.maximum(x[0], 0)                       # half zeros
    x[1] = np.round(x[1] * 2)                        # a few values, long runs
    x[2, ::2] = -0.0
    x[2, 1::2] = 0.0                                 # signed zeros are one value
    x[3] = 7.0                                       # one run
    x[4] = -np.abs(x[4])
    ranks, vals, order = rank_rows(torch.from_numpy(x), threads=2)
    np.testing.assert_array_equal(ranks.numpy(), rankdata(x, axis=1).astype(np.float32))
    np.testing.assert_array_equal(vals.numpy(), np.sort(x, axis=1))
    np.testing.assert_array_equal(np.take_along_axis(x, order.numpy(), 1), np.sort(x, axis=1))
    cols = np.asfortranarray(x.T)                    # column statistics on a strided [n, w] view
    r, m = np.empty_like(cols), np.empty_like(cols)
    at = 3000 - 150
    st = rank_columns(cols, r, m, at=at, threads=2)
    np.testing.assert_array_equal(r, rankdata(x, axis=1).T.astype(np.float32))
    t = np.sort(x, axis=1)[:, at]
    np.testing.assert_array_equal(st.threshold, t)
    np.testing.assert_array_equal(st.n_fire, (x >= t[:, None]).sum(1))
    np.testing.assert_array_equal(m, (x >= t[:, None]).T.astype(np.float32))
    np.testing.assert_allclose(st.std, x.astype(np.float64).std(1, ddof=1), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(st.total, x.astype(np.float64).sum(1), rtol=1e-6, atol=1e-3)


def test_association_with_tied_activations_matches_references():
    """ReLU-like neurons (most words at exactly 0, the quantile cut inside a tie) keep exact AUROC and IoU."""
    rng = np.random.default_rng(5)
    n, K = 1500, 12
    sid = np.repeat(np.arange(150), 10)
    C = sp.csc_matrix(rng.random((n, K)) < rng.uniform(0.02, 0.3, K))
    X = np.maximum(rng.standard_normal((n, 6)), 0).astype(np.float32)
    X[:, 1] = (rng.random(n) < 0.03).astype(np.float32)  # 3% ones: the 5% cut falls among the zeros
    X[:, 2] += 2 * C[:, 0].toarray().ravel()
    a = associate(torch.from_numpy(X), C, sid, chunk_neurons=4)
    for j in range(X.shape[1]):
        t = np.sort(X[:, j])[n - int(np.ceil(0.05 * n))]
        top = X[:, j] >= t
        assert a.n_fire[j] == top.sum() and a.quantile_threshold[j] == t
        for k in range(K):
            y = C[:, k].toarray().ravel()
            assert a.auroc[j, k] == pytest.approx(roc_auc_score(y, X[:, j]), abs=1e-5)
            assert a.iou[j, k] == pytest.approx((top & y).sum() / (top | y).sum(), abs=1e-6)
