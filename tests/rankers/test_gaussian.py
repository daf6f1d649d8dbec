"""The Gaussian ranker and probe against direct computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

import tl_neuronprobe.rankers as R
from tl_neuronprobe.probes import GaussianProbe
from tl_neuronprobe.data.extraction import ExtractConfig


def _niw(X, y, C, estimate="published"):
    """Sigma*_z straight from the formula of methods.md (float64, numpy); ``"mean"``: the posterior mean."""
    D = X.shape[1]
    means, covs, pri = [], [], []
    for z in range(C):
        Xz = X[y == z].astype(np.float64)
        mu = Xz.mean(0)
        S = (Xz - mu).T @ (Xz - mu)
        lam0 = np.diag(Xz.var(0, ddof=1))
        den = (D + 2) + len(Xz) + D + 2 if estimate == "published" else (D + 2) + len(Xz) - D - 1
        covs.append((lam0 + S) / den)
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


@pytest.mark.parametrize("seed,block", [(0, 32), (1, 32), (2, 32), (0, 4), (1, 5)])
def test_greedy_equals_brute_force(seed, block):
    """Also with candidate blocks that do not divide the 14 neurons (padded last block)."""
    rng = np.random.default_rng(seed)
    n, D, C = 500, 14, 3
    y = rng.integers(0, C, n)
    X = rng.standard_normal((n, D))
    X[:, :6] += rng.standard_normal((C, 6))[y] * 0.8  # informative, correlated neurons
    X[:, 7] = 0.6 * X[:, 0] + 0.4 * X[:, 8]
    X = X.astype(np.float32)
    scan = R.GaussianScan(candidates_per_block=block)
    g = R.Gaussian.from_preset("published", max_k=6, seed=seed, scan=scan).fit(X, y)
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
    p = GaussianProbe(estimate="published").fit(X, y)
    means, covs, pri = _niw(X, y, C)
    S = [7, 2, 5]
    np.testing.assert_allclose(p.covariance(S).numpy(), covs[:, S][:, :, S], rtol=1e-10)
    mean_covs = _niw(X, y, C, estimate="mean")[1]
    np.testing.assert_allclose(GaussianProbe().fit(X, y).covariance(S).numpy(), mean_covs[:, S][:, :, S], rtol=1e-10)
    np.testing.assert_allclose(p.means_.numpy(), means, rtol=1e-10)
    # a probe fit on the columns S alone, told the full D, predicts the same as the slice
    q = GaussianProbe(estimate="published").fit(X[:, S], y, n_dims_total=D)
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
    g = R.Gaussian(max_k=5).fit(X, y)
    assert set(g.selected_[:2]) == {4, 9}
    assert g.score(X, y) > 0.8
    assert g.predict_proba(X[:3]).shape == (3, 3)
    assert g.score(X, y, neurons=[0]) < 0.6  # a noise neuron alone is near chance
    g2 = R.Gaussian(max_k=5, k=2).fit(X, y)
    assert set(g2.order_[:2]) == {4, 9}
    assert g2.transform(X).shape == (600, 2)
    assert len(g.mi_) == 5 and g.mi_[1] > g.mi_[0] > 0


def test_gaussian_without_stored_conditional_means_matches():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 400)
    X = (rng.standard_normal((400, 16)) + rng.standard_normal((3, 16))[y] * 0.5).astype(np.float32)
    a = R.Gaussian(max_k=6).fit(X, y)
    b = R.Gaussian(max_k=6, scan=R.GaussianScan(max_memory_gb=0.0, candidates_per_block=5)).fit(X, y)  # recompute path
    assert a.selected_.tolist() == b.selected_.tolist()
    np.testing.assert_allclose(a.mi_, b.mi_, rtol=1e-9)


def test_single_neuron_scores_are_dev_mutual_information():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 500)
    X = (rng.standard_normal((500, 6)) + rng.standard_normal((3, 6))[y] * 0.6).astype(np.float32)
    g = R.Gaussian.from_preset("published", max_k=2).fit(X, y)
    tr, dv = g.train_index_, g.dev_index_
    _, curve = _brute_force_greedy(X[tr], y[tr], X[dv], y[dv], 3, 1)
    # the first greedy step's MI is the best single-neuron score (scores_ in nats of log-lik, mi_ in bits)
    pri = np.bincount(y[tr]) / len(tr)
    H = -(pri * np.log(pri)).sum()
    np.testing.assert_allclose((H + g.scores_.max()) / np.log(2), curve[0], rtol=1e-5)


# -- issue 21: the Gaussian ranker on real data ------------------------------------------------------------------
def _planted_wide(seed: int = 0, n: int = 300, D: int = 400, neuron: int = 123, shift: float = 2.0):
    """Two classes of ~100 training words each in D = 400 dimensions (far fewer than 2D + 4), one planted neuron."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = rng.standard_normal((n, D))
    X[:, neuron] += shift * y
    return X.astype(np.float32), y


def _bits(g, j):
    """Single-neuron dev MI (bits) of neuron j from the ranker's ``scores_``."""
    pri = g.probe_.priors_
    return float((-(pri * np.log(pri)).sum() + g.scores_[j]) / np.log(2))


def test_posterior_mean_recovers_the_planted_neuron_where_the_published_estimate_collapses():
    X, y = _planted_wide()
    old = R.Gaussian.from_preset("published", max_k=3, dev_size=0.3).fit(X, y)
    new = R.Gaussian(max_k=3, dev_size=0.3).fit(X, y)
    # the published estimate shrinks every variance by N_z / (N_z + 2D + 4) (~ 1/8 here): negative held-out MI,
    # even for the planted neuron, and the first pick is noise
    assert _bits(old, 123) < 0 and old.mi_[0] < 0.02 and old.selected_[0] != 123, (_bits(old, 123), old.mi_)
    assert new.selected_[0] == 123 and new.mi_[0] > 0.3, (new.selected_, new.mi_)
    assert np.all(np.diff(new.mi_) > 0)
    # control: permuted labels; the same ranker finds nothing of the kind (what it picks is dev-set luck)
    ctrl = R.Gaussian(max_k=3, dev_size=0.3).fit(X, np.random.default_rng(9).permutation(y))
    assert ctrl.selected_[0] != 123 and ctrl.mi_[0] < 0.15, (ctrl.selected_, ctrl.mi_)


def test_posterior_mean_does_not_depend_on_the_full_dimension():
    X, y = _planted_wide(D=40, neuron=23)
    S = [3, 17, 23]
    wide = GaussianProbe().fit(X, y, n_dims_total=4000).covariance(S)
    torch.testing.assert_close(wide, GaussianProbe().fit(X, y).covariance(S))
    with pytest.raises(ValueError, match="nu0"):
        GaussianProbe(nu0=-150.0).fit(X, y)  # nu0 + N_z <= D + 1: no posterior mean
    with pytest.raises(ValueError, match="estimate='median'"):
        GaussianProbe(estimate="median").fit(X, y)


def test_greedy_stops_when_nothing_is_gained_and_orders_the_rest_by_single_neuron_mi():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    X = rng.standard_normal((400, 20)).astype(np.float32)
    X[:, 11] += 60.0 * y  # separates the classes perfectly: after it, no neuron can raise the dev MI
    g = R.Gaussian(max_k=5).fit(X, y)
    assert g.selected_.tolist() == [11] and g.n_selected_ == 1 and len(g.mi_) == 1
    assert g.mi_[0] > 0.9
    rest = g.order_[1:]
    assert sorted(rest.tolist()) == [j for j in range(20) if j != 11]
    np.testing.assert_array_equal(rest, [j for j in np.lexsort((np.arange(20), -g.scores_)) if j != 11])
    assert not np.all(np.diff(rest[:4]) > 0), "the order past the stop is index order"
    assert np.all(np.diff(g.scores_[rest]) <= 0)
    assert R.Gaussian(max_k=5, min_gain=None).fit(X, y).n_selected_ == 5  # never stops
    # the published loop (the old behaviour) takes four more picks that add nothing: exact ties, broken by
    # float32 round-off in the scan and then by index
    old = R.Gaussian.from_preset("published", max_k=5).fit(X, y)
    assert len(old.selected_) == 5 and np.all(np.abs(np.diff(old.mi_)) < 1e-12), old.mi_


def test_near_constant_neuron_scores_near_chance_not_below():
    """A neuron with std 1e-4 against 1 elsewhere, exactly constant on the rare class and on 95% of the common
    one (float32 round-off at an activation floor): without a floor at the data scale the rare class's Gaussian
    is a needle on the common value and takes those words."""
    rng = np.random.default_rng(0)
    n = 2000
    y = (rng.random(n) < 0.25).astype(int)
    X = rng.standard_normal((n, 4))
    X[:, 1] += 3.0 * y  # a real signal, which the floor must leave alone
    X[:, 2] = np.where((y == 1) | (rng.random(n) < 0.95), 0.0, 1e-4 * rng.standard_normal(n))
    X = X.astype(np.float32)
    tr, te = np.arange(n) < 1500, np.arange(n) >= 1500
    chance = 1 - y[te].mean()
    p = GaussianProbe().fit(X[tr], y[tr])
    assert p.score(X[te], y[te], [2]) >= chance - 0.02
    assert p.var_floored_[:, 2].all()
    assert p.score(X[te], y[te], [1]) > 0.9 and not p.var_floored_[:, 1].any()
    # control: the old floor (relative to the neuron alone) scores that neuron far below chance
    assert GaussianProbe(scale_floor=1e-12).fit(X[tr], y[tr]).score(X[te], y[te], [2]) < chance - 0.2


def test_cross_fitted_single_neuron_scores_equal_fold_by_fold_probes():
    from tl_neuronprobe.rankers._crossfit import crossfit_folds

    rng = np.random.default_rng(6)
    n, D = 360, 5
    y = rng.integers(0, 3, n)
    X = (rng.standard_normal((n, D)) * [1, 2, 0.5, 1, 1] + 0.8 * rng.standard_normal((3, D))[y]).astype(np.float32)
    groups = np.repeat(np.arange(n // 6), 6)
    for estimate in ("mean", "published"):
        g = R.Gaussian(max_k=2, cv=4, estimate=estimate).fit(X, y, groups=groups)
        folds = crossfit_folds(n, 4, groups, 0)
        assert all(len(np.unique(folds[groups == s])) == 1 for s in np.unique(groups))  # whole sentences
        ref = np.zeros(D)
        for k in range(4):
            tr, dv = folds != k, folds == k
            p = GaussianProbe(estimate=estimate).fit(X[tr], y[tr])  # floors from every neuron, as the ranker's
            for j in range(D):
                post = p.predict_log_proba(X[dv], [j])[np.arange(dv.sum()), y[dv]]
                ref[j] += np.logaddexp(post + np.log(0.99), np.log(0.01 * p.priors_[y[dv]])).sum()
        np.testing.assert_allclose(g.scores_, ref / n, rtol=1e-9)
        assert g.selected_[0] == np.argmax(ref)


def _ewt_train_documents(n_sentences: int, skip: int):
    """Whole documents of EWT *train*, in a seeded document order, after the first ``skip`` sentences of that
    order (0-2,000 were used to tune the Gaussian ranker's defaults, so the test takes the next 1,000)."""
    from pathlib import Path

    import tl_neuronprobe as tnp

    path = Path(__file__).resolve().parents[3] / "shared/data/en_ewt-ud-train.conllu"
    if not path.exists():
        pytest.skip(f"{path} (UD English EWT train) is not here")
    corpus = tnp.Corpus.from_conllu(path)
    docs = np.array([s.id.rsplit("-", 1)[0] for s in corpus.sentences])
    names = np.unique(docs)
    picked, seen = [], 0
    for d in names[np.random.default_rng(0).permutation(len(names))]:
        idx = np.flatnonzero(docs == d).tolist()
        if seen >= skip + n_sentences:
            break
        if seen >= skip:
            picked += idx
        seen += len(idx)
    return corpus.subset(sorted(picked))


@pytest.mark.minilm
def test_minilm_layer0_first_pick_positive_and_the_same_with_sentence_groups(minilm):
    """Issue 21's done-when on held-out EWT-train documents: positive MI for the first pick on Number and Tense,
    and the same first pick with and without sentence groups: L0.N984 (plural "-es") and L0.N1477 (past tense).
    Control: the published estimate (the old code) picks differently with and without groups on both."""
    import tl_neuronprobe as tnp
    from tl_neuronprobe.core.validation import few_threads

    corpus = _ewt_train_documents(1000, skip=2000)
    with few_threads(0, n_threads=1):
        acts = tnp.extract(minilm, corpus, ExtractConfig(site="mlp.post", layers=[0], long_sentences="skip"),
                           progress=False)
        for attr in ("Number", "Tense"):
            X, y, _, idx = acts.dataset(attr, return_index=True)
            X, y = X.numpy(), y.numpy()
            sid = np.asarray(acts.sentence_ids)[idx]
            plain = R.Gaussian(max_k=2).fit(X, y)
            grouped = R.Gaussian(max_k=2).fit(X, y, groups=sid)
            a, b = int(plain.selected_[0]), int(grouped.selected_[0])
            assert plain.mi_[0] > 0.05 and grouped.mi_[0] > 0.05, (attr, plain.mi_, grouped.mi_)
            assert a == b == {"Number": 984, "Tense": 1477}[attr], (attr, a, b)
            old = [int(R.Gaussian.from_preset("published", max_k=1).fit(X, y, groups=g).selected_[0])
                   for g in (None, sid)]
            assert old[0] != old[1], (attr, old)
