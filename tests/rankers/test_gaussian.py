"""The Gaussian ranker and probe against direct computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

import tl_neuronprobe.rankers as R
from tl_neuronprobe.probes import GaussianProbe


def _niw(X, y, C):
    """Sigma*_z straight from the formula of methods.md (float64, numpy)."""
    D = X.shape[1]
    means, covs, pri = [], [], []
    for z in range(C):
        Xz = X[y == z].astype(np.float64)
        mu = Xz.mean(0)
        S = (Xz - mu).T @ (Xz - mu)
        lam0 = np.diag(Xz.var(0, ddof=1))
        covs.append((lam0 + S) / ((D + 2) + len(Xz) + D + 2))
        means.append(mu)
        pri.append(len(Xz) / len(y))
    return np.array(means), np.array(covs), np.array(pri)


def _brute_force_greedy(X_tr, y_tr, X_dev, y_dev, C, steps):
    means, covs, pri = _niw(X_tr, y_tr, C)
    D = X_tr.shape[1]
    selected, curve = [], []
    for _ in range(steps):
        best, best_j = -math.inf, None
        for j in range(D):
            if j in selected:
                continue
            S = selected + [j]
            ll = np.stack([multivariate_normal(means[z][S], covs[z][np.ix_(S, S)]).logpdf(X_dev[:, S]).reshape(-1)
                           for z in range(C)], 1) + np.log(pri)
            lse = np.logaddexp.reduce(ll, axis=1)
            obj = float(np.mean(ll[np.arange(len(y_dev)), y_dev] - lse))
            if obj > best:
                best, best_j = obj, j
        selected.append(best_j)
        H = -(pri * np.log(pri)).sum()
        curve.append((H + best) / math.log(2))
    return selected, curve


@pytest.mark.parametrize("seed,chunk_size", [(0, 32), (1, 32), (2, 32), (0, 4), (1, 5)])
def test_greedy_equals_brute_force(seed, chunk_size):
    """Also with candidate blocks that do not divide the 14 neurons (padded last block)."""
    rng = np.random.default_rng(seed)
    n, D, C = 500, 14, 3
    y = rng.integers(0, C, n)
    X = rng.standard_normal((n, D))
    X[:, :6] += rng.standard_normal((C, 6))[y] * 0.8  # informative, correlated neurons
    X[:, 7] = 0.6 * X[:, 0] + 0.4 * X[:, 8]
    X = X.astype(np.float32)
    g = R.Gaussian(max_features=6, seed=seed, chunk_size=chunk_size).fit(X, y)
    tr, dv = g.train_index_, g.dev_index_
    ref, curve = _brute_force_greedy(X[tr], y[tr], X[dv], y[dv], C, 6)
    assert g.selected_.tolist() == ref
    np.testing.assert_allclose(g.mi_, curve, rtol=1e-6, atol=1e-8)
    assert np.isfinite(g.mi_).all()


def test_probe_is_a_slice_of_the_full_fit():
    rng = np.random.default_rng(3)
    n, D, C = 300, 10, 3
    y = rng.integers(0, C, n)
    X = (rng.standard_normal((n, D)) + rng.standard_normal((C, D))[y]).astype(np.float32)
    p = GaussianProbe().fit(X, y)
    means, covs, pri = _niw(X, y, C)
    S = [7, 2, 5]
    np.testing.assert_allclose(p.covariance(S).numpy(), covs[:, S][:, :, S], rtol=1e-10)
    np.testing.assert_allclose(p.means_.numpy(), means, rtol=1e-10)
    # a probe fit on the columns S alone, told the full D, predicts the same as the slice
    q = GaussianProbe().fit(X[:, S], y, n_dims_total=D)
    np.testing.assert_allclose(q.predict_proba(X[:, S]), p.predict_proba(X, S), rtol=1e-8)
    # log-likelihood equals scipy's on the slice
    ll = p.log_likelihood(X[:20], S).numpy()
    ref = np.stack([multivariate_normal(means[z][S], covs[z][np.ix_(S, S)]).logpdf(X[:20][:, S]) for z in range(C)], 1)
    np.testing.assert_allclose(ll, ref, rtol=1e-8)


def test_prefix_scores_equal_separate_scores():
    rng = np.random.default_rng(4)
    n, D, C = 400, 12, 4
    y = rng.integers(0, C, n)
    X = (rng.standard_normal((n, D)) + 0.7 * rng.standard_normal((C, D))[y]).astype(np.float32)
    p = GaussianProbe().fit(X[:300], y[:300])
    order = rng.permutation(D)
    ks = [1, 3, 7, 12]
    acc = p.prefix_scores(X[300:], y[300:], order, ks)
    for k, a in zip(ks, acc):
        assert a == pytest.approx(p.score(X[300:], y[300:], order[:k]))


def test_indefinite_slice_is_fixed():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3)).astype(np.float32)
    y = np.repeat([0, 1], 20)
    p = GaussianProbe().fit(X, y)
    p.lambda0_[0] = -60.0  # damage class 0 so that its slice is indefinite
    bad = p.covariance([0, 1, 2])
    lam = torch.linalg.eigvalsh(bad[0]).min()
    assert lam < 0
    L = p.cholesky([0, 1, 2])
    expected = bad[0] - 10 * lam * torch.eye(3, dtype=bad.dtype)  # the published fix
    torch.testing.assert_close(L[0] @ L[0].T, expected)
    torch.testing.assert_close(L[1] @ L[1].T, bad[1])  # untouched class


def test_gaussian_ranker_probe_interface():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 600)
    X = rng.standard_normal((600, 20)).astype(np.float32)
    X[:, 4] += 2.5 * (y == 1)
    X[:, 9] += 2.5 * (y == 2)
    g = R.Gaussian(max_features=5).fit(X, y)
    assert set(g.selected_[:2]) == {4, 9}
    assert g.score(X, y) > 0.8
    assert g.predict_proba(X[:3]).shape == (3, 3)
    assert g.score(X, y, neurons=[0]) < 0.6  # a noise neuron alone is near chance
    g2 = R.Gaussian(max_features=5, k=2).fit(X, y)
    assert set(g2.order_[:2]) == {4, 9}
    assert g2.transform(X).shape == (600, 2)
    assert len(g.mi_) == 5 and g.mi_[1] > g.mi_[0] > 0


def test_gaussian_without_stored_conditional_means_matches():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 400)
    X = (rng.standard_normal((400, 16)) + rng.standard_normal((3, 16))[y] * 0.5).astype(np.float32)
    a = R.Gaussian(max_features=6).fit(X, y)
    b = R.Gaussian(max_features=6, max_memory_gb=0.0, chunk_size=5).fit(X, y)  # recompute path
    assert a.selected_.tolist() == b.selected_.tolist()
    np.testing.assert_allclose(a.mi_, b.mi_, rtol=1e-9)


def test_single_neuron_scores_are_dev_mutual_information():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 500)
    X = (rng.standard_normal((500, 6)) + rng.standard_normal((3, 6))[y] * 0.6).astype(np.float32)
    g = R.Gaussian(max_features=2).fit(X, y)
    tr, dv = g.train_index_, g.dev_index_
    _, curve = _brute_force_greedy(X[tr], y[tr], X[dv], y[dv], 3, 1)
    # the first greedy step's MI is the best single-neuron score (scores_ in nats of log-lik, mi_ in bits)
    pri = np.bincount(y[tr]) / len(tr)
    H = -(pri * np.log(pri)).sum()
    np.testing.assert_allclose((H + g.scores_.max()) / np.log(2), curve[0], rtol=1e-5)
