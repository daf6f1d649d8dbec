"""Forward selection by orthogonal least squares (Chen, Billings & Luo 1989), the order in which greedy least
squares on the class indicators takes neurons. ``Linear`` uses it to order the head of its ranking: the
elastic-net probe proposes the candidates (the top of its weight-mass ordering), forward selection decides in
which order a small probe should take them, so that a neuron which only repeats what the ones before it carry
(a redundant copy) moves down and one that adds what they lack moves up (docs/rankers-real.md has the figures).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import chi2

from ..core.validation import split_indices
from ..probes import standardization

__all__ = ["forward_selection", "evenly_spaced"]


def evenly_spaced(rows: np.ndarray, max_rows: int) -> np.ndarray:
    """At most ``max_rows`` of ``rows``, evenly spaced (all of them when there are few enough)."""
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) <= max_rows:
        return rows
    return rows[np.linspace(0, len(rows) - 1, max_rows).round().astype(np.int64)]


def forward_selection(Z: np.ndarray, y: np.ndarray, k: int, n_classes: int, groups: "np.ndarray | None" = None,
                      validation: float = 0.2, seed: int = 0, alpha: float = 0.01,
                      tolerance: float = 1e-5, clip: "float | None" = None) -> np.ndarray:
    """The columns of ``Z`` in the order greedy least squares takes them, at most ``k``.

    ``Z [N, M]`` holds the candidate neurons' activations (any scale), ``y`` the class index of each
    row. The targets are the centered one-hot class indicators ``Y``. Each step takes the column whose part
    orthogonal to the columns already taken, ``z⊥``, removes the most residual variance,
    ``sum_c (r_c . z⊥)^2 / |z⊥|^2`` (the updates run on the columns' Gram matrix, in float64). A column with
    less than ``tolerance`` of its squared norm left (a copy of taken ones) is never taken.

    Two rules end the path early. (1) Chance: the step's gain over the residual variance of each class,
    ``sum_c (r_c . z⊥)^2 / (|z⊥|^2 |r_c|^2 / N)``, is about chi-squared with ``C - 1`` degrees of freedom for a
    column unrelated to the classes; it must beat that distribution's upper ``alpha / M`` quantile (Bonferroni
    over the ``M`` candidate columns), so a third noisy copy of a signal, which only averages noise away, is not
    preferred to chance. (2) Held-out accuracy: a seeded ``validation`` share of the rows (whole ``groups``,
    e.g. documents or sentences, when given) is kept out of the fit, and the path is cut after the first step
    at which the least-squares classifier (argmax of the fitted indicators) is most accurate on it: past that
    point the steps fit the shape of the indicators or the training documents' quirks (on a nearly separable
    attribute, e.g. a binary one at 99%), and the caller's own order is better there. Fewer than ``k`` may
    come back. Cost: one ``[M, N] x [N, M]`` product, then ``O(t M)`` per step; deterministic for a given seed
    (ties: lowest index).

    ``clip`` (e.g. 3) first standardizes each column on the fitted rows and clips it at ``clip`` standard
    deviations. Least squares pays for every unit a column overshoots the indicator, so a neuron that fires far
    beyond its usual range on a few words of its class (heavy-tailed, as many MLP neurons are) looks worse to it
    than to a logistic probe, which saturates there; clipped, such a column counts for what separates the
    classes (``Linear(refine_clip=3)``, its default: docs/rankers-real.md, session 6).
    """
    Z = np.asarray(Z, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    if len(y) != Z.shape[0]:
        raise ValueError(f"Z has {Z.shape[0]} rows but y has {len(y)}")
    if Z.shape[1] == 0 or k <= 0:
        return np.array([], dtype=np.int64)
    fit, held = np.arange(len(y)), np.array([], dtype=np.int64)
    if validation and validation > 0 and len(y) >= 10:
        if groups is not None and len(np.unique(np.asarray(groups))) < 2:
            groups = None  # one group (e.g. a single long sentence): hold out rows instead
        fit, held = split_indices(len(y), validation, groups=groups, y=y, seed=seed, min_train_per_class=1)
    Z_fit = torch.from_numpy(Z[fit])  # a copy, centered (and clipped) in place; the gains are scale-free
    transform = _Centering(Z_fit, clip)
    if len(held):  # the held-out rows, transformed like the fitted ones; without them the fitted rows score
        Z_score, y_score = transform(torch.from_numpy(Z[held])), y[held]
    else:
        Z_score, y_score = Z_fit, y[fit]
    path = _Path(Z_fit, torch.from_numpy(y[fit]), Z_score, torch.from_numpy(y_score), n_classes, min(k, Z.shape[1]))
    usable = (path.norms > 1e-12 * path.norms.max().clamp_min(1e-300)).numpy()
    alive = torch.from_numpy(usable).clone()
    threshold = chi2.isf(alpha / max(int(usable.sum()), 1), max(n_classes - 1, 1))  # Bonferroni over all columns
    for _ in range(min(k, Z.shape[1])):
        j = path.best(alive, tolerance)
        if j < 0 or not path.beats_chance(j, threshold):
            break
        path.take(j)
        alive[j] = False
    cut = int(np.argmax(path.accuracy)) + 1 if path.accuracy else 0
    return np.asarray(path.taken[:cut], dtype=np.int64)


class _Centering:
    """Centers the fitted rows' columns in place; with ``clip``, first standardizes them and clips at ``clip``
    standard deviations, then centers the clipped values again (the path needs centered columns). Calling it
    transforms other rows (the held-out ones) the same way."""

    def __init__(self, Z_fit: torch.Tensor, clip: "float | None"):
        if clip is not None and not clip > 0:
            raise ValueError(f"clip must be > 0 or None, got {clip!r}")
        self.clip = clip
        if clip is None:
            self.mean, self.scale = Z_fit.mean(0, dtype=torch.float64).float(), None
            Z_fit -= self.mean
            return
        self.mean, self.scale, _ = standardization(Z_fit)
        total = torch.zeros(Z_fit.shape[1], dtype=torch.float64)
        for i in range(0, len(Z_fit), 4096):  # one pass in row blocks, in place: no second copy of the rows
            block = Z_fit[i:i + 4096].sub_(self.mean).div_(self.scale).clamp_(-clip, clip)
            total += block.sum(0, dtype=torch.float64)
        self.after = (total / max(len(Z_fit), 1)).float()
        Z_fit -= self.after

    def __call__(self, Z: torch.Tensor) -> torch.Tensor:
        """``Z`` transformed in place (and returned)."""
        Z -= self.mean
        if self.clip is not None:
            Z.div_(self.scale).clamp_(-self.clip, self.clip).sub_(self.after)
        return Z


class _Path:
    """One forward-selection path, kept in the columns' space: their Gram matrix, each class's residual against
    each column (``B``), the squared norm of each column's part orthogonal to the taken ones, and the
    projections ``U`` of every column on the orthonormal basis so far (``U[s, j] = q_s . z_j``). One step then
    costs ``O(t M)``, not a pass over the rows; only the scoring rows (the held-out ones, or the fitted rows
    without a held-out share) are carried along to measure accuracy."""

    def __init__(self, Z: torch.Tensor, y: torch.Tensor, Z_score: torch.Tensor,
                 y_score: torch.Tensor, n_classes: int, k: int):
        Y = torch.nn.functional.one_hot(y, n_classes).float()
        prior = Y.mean(0)
        Y -= prior
        self.n = len(y)
        self.G = (Z.T @ Z).double()  # Gram matrix of the centered columns: one product instead of a pass per step
        self.B = (Y.T @ Z).double()  # [C, M]: each class's residual against each column
        self.norms = torch.diagonal(self.G).clone()  # squared norm of each column's part orthogonal to the taken
        self.floor = self.norms.clone()
        self.residual = (Y * Y).sum(0).double()  # |r_c|^2
        self.U = torch.zeros(k, Z.shape[1], dtype=torch.float64)
        self.Z_score, self.y_score = Z_score, y_score  # centered float32 scoring rows (held-out, else the fitted)
        self.Q_score = torch.zeros(k, len(y_score), dtype=torch.float64)  # the basis on the scoring rows
        self.fitted = prior.double().expand(len(y_score), n_classes).clone()
        self.taken: list[int] = []
        self.accuracy: list[float] = []  # on the scoring rows, after each step

    def best(self, alive: torch.Tensor, tolerance: float) -> int:
        gain = (self.B * self.B).sum(0) / self.norms.clamp_min(1e-300)
        gain[~alive | (self.norms <= tolerance * self.floor)] = -1.0
        j = int(torch.argmax(gain))
        return j if gain[j] >= 0 else -1

    def beats_chance(self, j: int, threshold: float) -> bool:
        per_class = self.B[:, j] ** 2 / self.norms[j] / (self.residual / self.n).clamp_min(1e-300)
        return float(per_class[self.residual > 1e-12 * self.n].sum()) > threshold

    def take(self, j: int) -> None:
        t = len(self.taken)
        norm = float(self.norms[j]) ** 0.5
        c = self.U[:t, j]  # column j's projections on the basis so far
        u = (self.G[j] - c @ self.U[:t]) / norm  # every column's projection on the new basis vector
        qy = self.B[:, j] / norm
        self.B -= torch.outer(qy, u)
        self.norms -= u * u
        self.residual -= qy * qy
        self.U[t] = u
        q = (self.Z_score[:, j].double() - c @ self.Q_score[:t]) / norm
        self.Q_score[t] = q
        self.fitted += torch.outer(q, qy)
        self.taken.append(j)
        self.accuracy.append(float((self.fitted.argmax(1) == self.y_score).double().mean()))
