"""Control tasks (Hewitt & Liang 2019) and selectivity.

A control task gives every word *type* one fixed random label, so a probe can only solve
it by memorizing word identity.  Selectivity = task accuracy - control accuracy: a probe
(or a set of neurons) that is accurate on the task but not on the control reflects the
attribute rather than the probe's own capacity.
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

import numpy as np

from ..core.validation import to_numpy

__all__ = ["control_labels", "selectivity"]


def _type_uniform(word: str, seed: int) -> float:
    """A uniform number in [0, 1) fixed by (seed, word type), independent of the corpus."""
    h = hashlib.blake2b(f"{seed}\x1f{word}".encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(h, "little") / 2.0**64


def control_labels(
    words: Sequence[str],
    labels: Any = None,
    *,
    classes: Sequence[Any] | None = None,
    distribution: str = "empirical",
    lowercase: bool = False,
    seed: int = 0,
) -> np.ndarray:
    """One fixed random label per word type, for every word in ``words``.

    ``distribution="empirical"`` draws a type's label from the label frequencies of
    ``labels`` (Hewitt & Liang); ``"uniform"`` draws uniformly over the classes (as Antverg &
    Belinkov did).  The classes are those of ``labels`` (or ``classes``).  The label of a type
    depends only on (seed, type), not on which other words are present, so train and test
    words of one type always agree and two calls with one seed give the same labels.
    """
    if distribution not in ("empirical", "uniform"):
        raise ValueError(f"distribution must be 'empirical' or 'uniform', got {distribution!r}")
    words = [w.lower() if lowercase else w for w in words]
    if labels is not None:
        lab = to_numpy(labels).reshape(-1)
        if len(lab) != len(words):
            raise ValueError(f"{len(words)} words but {len(lab)} labels")
        cls, counts = np.unique(lab, return_counts=True)
    elif classes is not None:
        cls, counts = np.asarray(list(classes)), np.ones(len(classes))
        if distribution == "empirical":
            raise ValueError("the empirical distribution needs labels")
    else:
        raise ValueError("give labels (or classes with distribution='uniform')")
    if classes is not None and labels is not None:
        cls = np.asarray(list(classes))
        counts = np.array([(lab == c).sum() for c in cls], dtype=np.float64)
    if len(cls) < 2:
        raise ValueError("a control task needs at least 2 classes")
    p = counts / counts.sum() if distribution == "empirical" else np.full(len(cls), 1.0 / len(cls))
    cdf = np.cumsum(p)
    cdf[-1] = 1.0
    types = {w: None for w in words}
    for w in types:
        types[w] = cls[min(int(np.searchsorted(cdf, _type_uniform(w, seed), side="right")), len(cls) - 1)]
    return np.asarray([types[w] for w in words], dtype=cls.dtype)


def selectivity(task_accuracy: Any, control_accuracy: Any) -> Any:
    """Task accuracy minus control accuracy (elementwise)."""
    return np.asarray(task_accuracy) - np.asarray(control_accuracy)
