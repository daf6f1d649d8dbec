"""Logistic probes on many subsets at once, and the control task."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tl_neuronprobe.evaluation.controls import control_labels, selectivity
from tl_neuronprobe.probes import LogisticProbes
from tl_neuronprobe.probes import softmax_fit as train_softmax




def test_subset_probes_see_only_their_neurons(planted_data):
    d = planted_data
    noise = [j for j in range(d.X.shape[1]) if j not in d.planted and j != d.constant][:10]
    subsets = [d.planted, d.planted[:2], np.array(noise), np.array([d.constant])]
    lp = LogisticProbes(seed=0).fit(d.X[:1000], d.y[:1000], subsets, groups=d.groups[:1000])
    acc = lp.subset_scores(d.X[1000:], d.y[1000:])
    chance = np.bincount(d.y[1000:]).max() / 500
    assert acc[0] > 0.85
    assert chance + 0.1 < acc[1] < acc[0] - 0.1  # two of four planted neurons: in between
    assert acc[2] < chance + 0.08  # noise only: chance (the mask really hides the planted neurons)
    assert acc[3] < chance + 0.05
    # same as training each subset alone
    alone = LogisticProbes(seed=0).fit(d.X[:1000], d.y[:1000], [subsets[1]], groups=d.groups[:1000])
    assert abs(alone.score(d.X[1000:], d.y[1000:]) - acc[1]) < 0.03


def test_probes_deterministic(planted_data):
    d = planted_data
    subs = [d.planted, np.arange(10), np.arange(30)]
    a = LogisticProbes(seed=3).fit(d.X, d.y, subs).subset_decision_function(d.X[:50])
    b = LogisticProbes(seed=3).fit(d.X, d.y, subs).subset_decision_function(d.X[:50])
    np.testing.assert_array_equal(a, b)


def test_probe_input_errors(planted_data):
    d = planted_data
    with pytest.raises(ValueError, match="outside"):
        LogisticProbes().fit(d.X, d.y, [np.array([0, 999])])
    with pytest.raises(ValueError, match="empty"):
        LogisticProbes().fit(d.X, d.y, [np.array([], dtype=int)])


def test_batched_training_equals_separate():
    """Probes trained together in one weight matrix equal probes trained one by one."""
    rng = np.random.default_rng(0)
    X = torch.from_numpy(rng.normal(size=(300, 8)).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, 3, 300))
    mask = torch.tensor([[1, 1, 1, 0, 0, 0, 0, 0], [0, 0, 0, 1, 1, 1, 1, 1]], dtype=torch.bool)
    W, b, _ = train_softmax(X, y, 3, n_probes=2, mask=mask, l1=[0.0, 1e-3], l2=[1e-3, 0.0], epochs=3, lr=1e-2,
                            patience=None, seed=1)
    for p in range(2):
        Wp, bp, _ = train_softmax(X[:, mask[p]], y, 3, l1=[0.0, 1e-3][p], l2=[1e-3, 0.0][p], epochs=3, lr=1e-2,
                                  patience=None, seed=1)
        torch.testing.assert_close(W[p][:, mask[p]], Wp[0], rtol=1e-4, atol=1e-5)
        assert (W[p][:, ~mask[p]] == 0).all()
        torch.testing.assert_close(b[p], bp[0], rtol=1e-4, atol=1e-5)


def test_control_labels_fixed_per_type():
    words = ["the", "dog", "The", "dog", "runs", "the", "cat"] * 30
    labels = np.array(["DET", "NOUN", "DET", "NOUN", "VERB", "DET", "NOUN"] * 30)
    c1 = control_labels(words, labels, seed=0)
    c2 = control_labels(list(reversed(words)), labels[::-1], seed=0)[::-1]
    np.testing.assert_array_equal(c1, c2)  # depends on the type, not the position
    for w in set(words):
        vals = {c for c, ww in zip(c1, words) if ww == w}
        assert len(vals) == 1
    assert set(c1) <= set(labels)
    low = control_labels(words, labels, seed=0, lowercase=True)
    assert low[0] == low[2]
    assert not np.array_equal(control_labels(words, labels, seed=1), c1) or len(set(words)) < 3


def test_control_distribution():
    words = [f"w{i}" for i in range(4000)]
    labels = np.array(["A"] * 3000 + ["B"] * 1000)
    emp = control_labels(words, labels, seed=0)
    assert abs((emp == "A").mean() - 0.75) < 0.03
    uni = control_labels(words, labels, seed=0, distribution="uniform")
    assert abs((uni == "A").mean() - 0.5) < 0.03
    np.testing.assert_allclose(selectivity([0.9, 0.8], [0.5, 0.7]), [0.4, 0.1])
    with pytest.raises(ValueError):
        control_labels(words, labels[:10])


def test_standardization_over_rows_matches_numpy():
    from tl_neuronprobe.probes import standardization

    rng = np.random.default_rng(0)
    X = (rng.standard_normal((1300, 7)) * [1, 10, 0.01, 1, 1, 1, 1] + [0, 1e3, 5, 0, 0, 0, 0]).astype(np.float32)
    X[:, 3] = 2.5  # constant
    rows = rng.permutation(1300)[:900]
    mean, scale, const = standardization(torch.from_numpy(X), torch.from_numpy(rows))
    ref_std = X[rows].astype(np.float64).std(0)
    assert np.all(np.abs(mean.numpy() - X[rows].astype(np.float64).mean(0)) <= 1e-5 * ref_std + 1e-6 * np.abs(mean.numpy()))
    np.testing.assert_allclose(scale.numpy()[~const.numpy()], ref_std[ref_std > 0], rtol=1e-4)
    assert const.numpy().tolist() == [False, False, False, True, False, False, False]


def test_training_on_rows_equals_training_on_the_copied_rows():
    """``rows=`` trains on a subset of X without copying it, with the same result."""
    from tl_neuronprobe.probes import standardization

    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 600)
    X = torch.from_numpy((rng.standard_normal((600, 12)) + rng.standard_normal((3, 12))[y]).astype(np.float32))
    yt = torch.from_numpy(y)
    rows = torch.from_numpy(rng.permutation(600)[:400])
    mean, scale, _ = standardization(X[rows])
    kw = dict(epochs=3, batch_size=32, lr=1e-2, l1=1e-3, l2=1e-3, mean=mean, scale=scale, patience=None, seed=3)
    W1, b1, _ = train_softmax(X, yt, 3, rows=rows, **kw)
    W2, b2, _ = train_softmax(X[rows], yt[rows], 3, **kw)
    torch.testing.assert_close(W1, W2)
    torch.testing.assert_close(b1, b2)
    W3, _, _ = train_softmax(X, yt, 3, rows=rows, shuffle=False, **kw)
    W4, _, _ = train_softmax(X[rows], yt[rows], 3, shuffle=False, **kw)
    torch.testing.assert_close(W3, W4)


@pytest.mark.parametrize("standardize,masked,weighted", [(True, True, False), (False, False, True), (True, False, True)])
def test_closed_form_gradients_equal_autograd(standardize, masked, weighted):
    """The training step's hand-written gradients equal autograd on the written-out loss."""
    from tl_neuronprobe.probes._softmax import _softmax_grads

    g = torch.Generator().manual_seed(0)
    B, U, P, C = 20, 7, 2, 3
    xb = torch.randn(B, U, generator=g) * 3 + 1
    yb = torch.randint(0, C, (B,), generator=g)
    W = torch.randn(P * C, U, generator=g)
    W[0, 0] = 0.0  # |w| at 0: subgradient 0 in both
    b = torch.randn(P * C, generator=g)
    mean, inv = (xb.mean(0), 1 / xb.std(0)) if standardize else (None, None)
    maskW = (torch.rand(P, U, generator=g) > 0.3).float().repeat_interleave(C, 0) if masked else None
    cw = torch.tensor([0.5, 2.0, 1.0]) if weighted else None
    l1v, l2v, l2sv = torch.tensor([1e-2, 0.0]), torch.tensor([0.0, 3e-2]), torch.tensor([1e-3, 1e-3])
    gW, gb = _softmax_grads(xb, yb, W, b, P, C, maskW, mean, inv, l1v.repeat_interleave(C)[:, None], l2v, l2sv, cw)

    Wa, ba = W.clone().requires_grad_(True), b.clone().requires_grad_(True)
    Weff = Wa * maskW if masked else Wa
    z = (xb - mean) * inv if standardize else xb
    lp = (z @ Weff.t() + ba).view(B, P, C).log_softmax(-1)
    nll = -lp.gather(2, yb.view(-1, 1, 1).expand(-1, P, 1)).squeeze(2)
    w = cw[yb] if weighted else torch.ones(B)
    loss = ((nll * w[:, None]).sum(0) / w.sum()).sum()
    W3 = Weff.view(P, -1)
    sq = W3.square().sum(1)
    loss = loss + (l1v * W3.abs().sum(1)).sum() + (l2v * torch.sqrt(sq + 1e-12)).sum() + (l2sv * sq).sum()
    loss.backward()
    torch.testing.assert_close(gW, Wa.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gb, ba.grad, rtol=1e-5, atol=1e-6)
