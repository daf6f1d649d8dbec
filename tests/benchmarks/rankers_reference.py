"""Reference implementations that a user would otherwise run, written independently of the
package, for the speed/quality comparisons: the NeuroX-style torch probe and its
weight-mass ordering, scikit-learn's saga elastic net, and the published Gaussian greedy loop
(one full multivariate normal per candidate per class per step).
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import torch


def neurox_probe(X, y, n_classes, l1=1e-3, l2=1e-3, epochs=10, batch_size=32, lr=1e-3, seed=0):
    """The toolkit's recipe: nn.Linear, Adam, no shuffling, raw inputs, loss = CE + l1|W|_1 + l2||W||_2."""
    torch.manual_seed(seed)
    X = torch.as_tensor(X, dtype=torch.float32)
    y = torch.as_tensor(y, dtype=torch.long)
    model = torch.nn.Linear(X.shape[1], n_classes)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    ce = torch.nn.CrossEntropyLoss()
    for _ in range(epochs):
        for s in range(0, len(y), batch_size):
            out = model(X[s : s + batch_size])
            W = model.weight
            loss = ce(out, y[s : s + batch_size]) + l1 * torch.norm(W, 1) + l2 * torch.norm(W, 2)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.weight.detach().clone(), model.bias.detach().clone()


def neurox_predict(W, b, X):
    with torch.no_grad():
        return (torch.as_tensor(X, dtype=torch.float32) @ W.t() + b).argmax(1).numpy()


def neurox_mass_order(W, steps=100):
    """The toolkit's ordering: sweep p, per class take the smallest prefix of |W_c| reaching
    p of its mass (at least one), append the union's new neurons in set-iteration order."""
    A = np.abs(np.asarray(W, dtype=np.float64))
    order, seen = [], set()
    for s in range(steps + 1):
        p = s / steps
        new = set()
        for c in range(A.shape[0]):
            idx = np.argsort(-A[c], kind="stable")
            cum = np.cumsum(A[c][idx])
            total = cum[-1]
            n = int(np.searchsorted(cum, p * total - 1e-12) + 1)
            new.update(idx[: max(1, n)].tolist())
        for j in new:  # arbitrary (set) order within a step, as in the toolkit
            if j not in seen:
                seen.add(j)
                order.append(j)
    rest = [j for j in range(A.shape[1]) if j not in seen]
    return np.asarray(order + rest, dtype=np.int64)


def sklearn_saga(X, y, l1=1e-3, l2=1e-3, max_iter=10, seed=0):
    """scikit-learn elastic net (saga) on standardized inputs, our (l1, l2) mapped to (C, l1_ratio).

    sklearn minimizes sum CE + (1/C) (r |W|_1 + (1 - r)/2 |W|^2); divided by N this is
    mean CE + r/(C N) |W|_1 + ...; we take r = 0.5 and C = r / (l1 N).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    Z = StandardScaler().fit(X)
    r = 0.5
    C = r / (max(l1, 1e-12) * len(y))
    clf = LogisticRegression(C=C, l1_ratio=r, solver="saga", max_iter=max_iter, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(Z.transform(X), y)
    return Z, clf


def niw_covariances(X, y, n_classes, dtype=torch.float64):
    """Full Sigma*_z = (diag(class var) + S_z) / (2D + 4 + N_z) and class means, directly."""
    X = torch.as_tensor(X, dtype=dtype)
    y = torch.as_tensor(y)
    D = X.shape[1]
    means, covs, counts = [], [], []
    for c in range(n_classes):
        Xc = X[y == c]
        mu = Xc.mean(0)
        R = Xc - mu
        S = R.t() @ R
        var = R.square().sum(0) / (len(Xc) - 1)
        means.append(mu)
        covs.append((torch.diag(var) + S) / ((D + 2) + len(Xc) + D + 2))
        counts.append(len(Xc))
    counts = np.asarray(counts, dtype=np.float64)
    return torch.stack(means), torch.stack(covs), counts / counts.sum()


def published_gaussian_greedy(means, covs, priors, Xdev, ydev, steps, exclude=(), time_steps=False):
    """Greedy selection the published way: a MultivariateNormal per candidate per class per step."""
    from torch.distributions import MultivariateNormal

    C, D = means.shape
    Xdev = torch.as_tensor(Xdev, dtype=means.dtype)
    ydev = torch.as_tensor(ydev)
    logpi = torch.log(torch.as_tensor(priors, dtype=means.dtype))
    selected, times = [], []
    for _ in range(steps):
        t0 = time.perf_counter()
        best, best_j = -math.inf, -1
        for j in range(D):
            if j in selected or j in exclude:
                continue
            S = selected + [j]
            lps = []
            for c in range(C):
                mvn = MultivariateNormal(means[c, S], covariance_matrix=covs[c][S][:, S], validate_args=False)
                lps.append(mvn.log_prob(Xdev[:, S]))
            joint = torch.stack(lps, 1) + logpi
            obj = float((joint.gather(1, ydev[:, None])[:, 0] - torch.logsumexp(joint, 1)).mean())
            if obj > best:
                best, best_j = obj, j
        selected.append(best_j)
        times.append(time.perf_counter() - t0)
    return (selected, times) if time_steps else selected
