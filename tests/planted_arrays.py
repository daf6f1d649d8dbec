"""Planted ground truth at array level: data where a ranker that ignores the labels fails.

:func:`make_planted` hides the class information in neurons that a label-free ordering
(variance, |skewness|, maximum activation: :func:`label_free_orders`) ranks low:

* the planted neurons have a small scale (0.6 against noise neurons of median scale 1);
* decoys: high-variance, heavy-tailed, skewed neurons (rare large bursts, like sparse real
  neurons) and skewed (gamma) noise neurons, none carrying label information;
* redundant copies: class 1 is carried by a group of three strongly correlated neurons
  (noisy copies of one signal), which LCA's elastic net should keep together;
* spread information: class 2 shifts three neurons by 1.4 of their noise each, so no single
  neuron separates it, while the three together do (d' = 2.4);
* classes 0 and 3: one small neuron each; plus a constant neuron and an exact duplicate of a
  noise neuron.

:func:`make_one_per_class` is the earlier, easy design (one neuron per class, nothing else),
kept for the tests of plumbing (probes on subsets, the encoded table, the CLI): a label-free
ordering does find its planted set, so no ranker test uses it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import skew


@dataclass
class PlantedData:
    X: np.ndarray  # [n, D] float32
    y: np.ndarray  # [n] int64
    planted: np.ndarray  # every neuron that carries class information, sorted
    constant: int  # a constant neuron
    duplicate: tuple[int, int]  # (original noise neuron, its exact copy)
    groups: np.ndarray  # sentence ids
    copies: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.int64))  # the correlated group
    spread: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.int64))  # jointly informative
    decoys: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.int64))  # heavy-tailed, no info
    singles: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.int64))  # classes 0 and 3

    @property
    def signals(self) -> list[np.ndarray]:
        """The neurons of each class's signal: class 0, the copies, the spread trio, class 3."""
        return [self.singles[:1], self.copies, self.spread, self.singles[1:]]


def _noise(rng, n: int, n_neurons: int) -> np.ndarray:
    """Noise neurons of random scale and offset; every second one gamma-skewed (skewness 1)."""
    scales = np.exp(rng.normal(0, 0.5, n_neurons))
    Z = rng.standard_normal((n, n_neurons))
    skewed = np.arange(n_neurons) % 2 == 1
    Z[:, skewed] = (rng.gamma(4.0, 0.5, (n, int(skewed.sum()))) - 2.0) * rng.choice([-1, 1], int(skewed.sum()))
    return Z * scales + rng.normal(0, 1, n_neurons)


def _decoys(rng, n: int, n_decoys: int) -> np.ndarray:
    """Sparse bursts: about 3% of the words fire with an exponential size of mean 8."""
    fire = rng.random((n, n_decoys)) < 0.03
    return fire * rng.exponential(8.0, (n, n_decoys)) + 0.3 * rng.standard_normal((n, n_decoys))


def make_planted(n: int = 1500, n_neurons: int = 60, seed: int = 0, scale: float = 0.6, shift: float = 2.5,
                 spread_shift: float = 1.4, n_decoys: int = 8) -> PlantedData:
    """Four classes; the planted neurons sit at random positions (nothing depends on index order)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    X = _noise(rng, n, n_neurons)
    perm = rng.permutation(n_neurons)
    single0, copies, spread, single3 = perm[0], perm[1:4], perm[4:7], perm[7]
    constant, dup_src, dup_dst = perm[8], perm[9], perm[10]
    decoys = perm[11 : 11 + n_decoys]
    X[:, single0] = scale * (rng.standard_normal(n) + shift * (y == 0))
    X[:, single3] = scale * (rng.standard_normal(n) + shift * (y == 3))
    signal = rng.standard_normal(n) + shift * (y == 1)
    X[:, copies] = scale * (signal[:, None] + 0.3 * rng.standard_normal((n, 3)))
    X[:, spread] = scale * (rng.standard_normal((n, 3)) + spread_shift * (y == 2)[:, None])
    X[:, decoys] = _decoys(rng, n, n_decoys)
    X[:, constant] = 3.0
    X[:, dup_dst] = X[:, dup_src]
    planted = np.sort(np.concatenate([[single0], copies, spread, [single3]]))
    return PlantedData(X.astype(np.float32), y.astype(np.int64), planted, int(constant), (int(dup_src), int(dup_dst)),
                       np.arange(n) // 10, np.sort(copies), np.sort(spread), np.sort(decoys),
                       np.array([single0, single3]))


def make_one_per_class(n: int = 1500, n_neurons: int = 60, n_classes: int = 4, shift: float = 2.5, seed: int = 0,
                       binary: bool = False) -> PlantedData:
    """The easy design: noise neurons of random scale; for each class one planted neuron whose
    mean moves by ``shift`` (in its own noise units) on that class; a constant neuron and a
    duplicate of a noise neuron."""
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
        X[:, p] += shift * scales[p] * (y == (1 if binary else c))
    X[:, constant] = 3.0
    X[:, dup_dst] = X[:, dup_src]
    return PlantedData(X.astype(np.float32), y.astype(np.int64), planted, int(constant), (int(dup_src), int(dup_dst)),
                       np.arange(n) // 10)


def label_free_orders(X: np.ndarray) -> dict[str, np.ndarray]:
    """Orders that never look at the labels: by variance, by |skewness|, by maximum activation."""
    X = np.asarray(X, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the constant neuron has no skewness
        s = np.nan_to_num(np.abs(skew(X, axis=0)), nan=-1.0)
    scores = {"variance": X.var(0), "abs_skewness": s, "max_activation": X.max(0)}
    return {name: np.argsort(-v, kind="stable") for name, v in scores.items()}


def recovered(order: np.ndarray, planted: np.ndarray) -> bool:
    """The top ``len(planted)`` of the order are exactly the planted set."""
    return set(np.asarray(order)[: len(planted)].tolist()) == set(np.asarray(planted).tolist())


def covers(order: np.ndarray, signals: list[np.ndarray], k: int) -> bool:
    """Every signal has at least one of its neurons in the top ``k`` of the order."""
    top = set(np.asarray(order)[:k].tolist())
    return all(top & set(np.asarray(s).tolist()) for s in signals)


def overlap(order: np.ndarray, planted: np.ndarray) -> int:
    """How many planted neurons are in the top ``len(planted)`` of the order."""
    return len(set(np.asarray(order)[: len(planted)].tolist()) & set(np.asarray(planted).tolist()))


def assert_controls_miss(d: PlantedData) -> None:
    """The label-free controls (variance, |skewness|, max activation) miss the planted set:
    not the set, at most a quarter of its neurons, and not one neuron of every signal in their top 5."""
    for control, order in label_free_orders(d.X).items():
        assert not recovered(order, d.planted), control
        assert overlap(order, d.planted) <= len(d.planted) // 4, (control, overlap(order, d.planted))
        assert not covers(order, d.signals, 5), control


def planted_activations(seed=0, n=1600):
    """``Activations`` over one-per-class planted data (upos C0..C3, Number on three classes) and the data."""
    import torch

    import tl_neuronprobe as tnp

    d = make_one_per_class(n=n, n_neurons=40, seed=seed)
    D = d.X.shape[1]
    neurons = [tnp.Neuron(j // 20, j % 20, "mlp.post") for j in range(D)]
    rng = np.random.default_rng(seed)
    words = [f"w{int(i)}" for i in rng.integers(0, 300, n)]
    labels = [f"C{c}" for c in d.y]
    number = [("Sing" if c % 2 else "Plur") if c < 3 else None for c in d.y]
    acts = tnp.Activations(torch.from_numpy(d.X), neurons, words, d.groups, {"upos": labels, "Number": number})
    return acts, d
