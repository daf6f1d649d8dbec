"""Planted ground truth at array level for the ranker tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class PlantedData:
    X: np.ndarray  # [n, D] float32
    y: np.ndarray  # [n] int64
    planted: np.ndarray  # one informative neuron per class
    constant: int  # a constant neuron
    duplicate: tuple[int, int]  # (original noise neuron, its copy)
    groups: np.ndarray  # sentence ids


def make_planted(n: int = 1500, n_neurons: int = 60, n_classes: int = 4, shift: float = 2.5, seed: int = 0,
                 binary: bool = False) -> PlantedData:
    """Noise neurons of random scale; for each class one planted neuron whose mean moves by
    ``shift`` (in its own noise units) on that class; plus a constant neuron and a duplicate
    of a noise neuron.  Planted positions are random, so nothing depends on index order."""
    rng = np.random.default_rng(seed)
    C = 2 if binary else n_classes
    y = rng.integers(0, C, n)
    scales = np.exp(rng.normal(0, 0.5, n_neurons))
    X = rng.standard_normal((n, n_neurons)) * scales + rng.normal(0, 1, n_neurons)
    perm = rng.permutation(n_neurons)
    n_planted = 1 if binary else C
    planted = np.sort(perm[:n_planted])
    constant, dup_src, dup_dst = perm[n_planted], perm[n_planted + 1], perm[n_planted + 2]
    for c, p in enumerate(planted):
        target = 1 if binary else c
        X[:, p] += shift * scales[p] * (y == target)
    X[:, constant] = 3.0
    X[:, dup_dst] = X[:, dup_src]
    groups = np.arange(n) // 10
    return PlantedData(X.astype(np.float32), y.astype(np.int64), planted, int(constant), (int(dup_src), int(dup_dst)),
                       groups)


