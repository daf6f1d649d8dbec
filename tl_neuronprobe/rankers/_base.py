"""The base ranker: input checks, ``scores_`` turned into ``order_``, ranks, top-k and the selector.

Every ranker is a scikit-learn estimator and feature selector::

    r = tnp.rankers.Probeless().fit(X, y)      # X [n_words, n_neurons], y labels
    r.order_        # every neuron, best first
    r.scores_       # one score per neuron (higher is better)
    r.per_class_    # [n_classes, n_neurons] per-class scores, where the method has them
    Pipeline([("select", tnp.rankers.Linear(k=50)), ("clf", LogisticRegression())])

``k=None`` keeps every neuron; ``k`` keeps ``order_[:k]``.  A ranker only implements
``_rank`` (its scores); this module is not where any scoring happens.

Input handling, shared by all rankers: NaN/inf raise (naming rows and columns); X and y
of different lengths raise; fewer than two classes, or a class with a single example,
raise (naming the class); ``k`` larger than the number of neurons raises.  Constant
neurons (no variance in the fitted data) get the worst score and go last, flagged in
``constant_``.  Duplicate neurons are ranked independently (equal scores, ties broken by
index).  Everything random is seeded by ``seed``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.feature_selection import SelectorMixin
from sklearn.utils.validation import check_is_fitted

from ..core.validation import check_groups, check_k
from ..probes import checked_X, checked_y

__all__ = ["NeuronRanker"]


def constant_columns(X: np.ndarray) -> np.ndarray:
    """Neurons with a single value over the rows of X."""
    return np.ptp(X, axis=0) == 0


def order_from_scores(scores: np.ndarray, constant: np.ndarray | None = None) -> np.ndarray:
    """Indices sorted by descending score, ties by index; constant/NaN scores last."""
    s = np.asarray(scores, dtype=np.float64).copy()
    s[~np.isfinite(s)] = -np.inf
    if constant is not None:
        s[constant] = -np.inf
    return np.lexsort((np.arange(len(s)), -s)).astype(np.int64)  # lexsort: the last key is primary


class NeuronRanker(SelectorMixin, BaseEstimator):
    """Base class: validation, ``order_``, ``scores_`` and the selector interface.

    Subclasses list ``k`` and ``seed`` among their parameters and implement ``_rank``, which sets
    ``scores_`` (and may set ``per_class_`` and ``order_``); ``fit`` resolves the seed into ``seed_``, and
    ``fit_chunks`` fits from row chunks through ``_fit_chunks`` where a ranker has one.
    """

    _min_class_count = 2

    def __init__(self, k: int | None = None, seed: int = 0):
        self._store(locals())

    def _store(self, params: dict[str, Any]) -> None:
        """Keep every constructor argument untouched, under its own name (scikit-learn's rule)."""
        for name, value in params.items():
            if name not in ("self", "__class__"):
                setattr(self, name, value)

    def _rank(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None) -> None:
        """Set ``scores_`` (and ``per_class_``); may set ``order_`` itself."""
        raise NotImplementedError

    def fit(self, X: Any, y: Any, groups: Any = None) -> "NeuronRanker":
        """Rank the neurons (columns) of ``X`` for labels ``y``.

        ``groups`` (e.g. sentence ids) keeps whole groups on one side of any internal
        train/dev split.
        """
        Xn = checked_X(self, X, reset=True)
        y_enc, self.classes_ = checked_y(self, y, Xn.shape[0], min_count=self._min_class_count)
        groups = check_groups(groups, Xn.shape[0])
        check_k(self.k, Xn.shape[1])
        self.seed_ = int(self.seed)
        self.constant_ = constant_columns(Xn)
        self.order_ = None
        self._rank(Xn, y_enc, groups)
        return self._finish()

    def fit_chunks(self, chunks: Any, *, exact: bool = True, bins: int = 256) -> "NeuronRanker":
        """Rank the neurons from row chunks (scikit-learn's ``partial_fit`` idea), never holding X.

        ``chunks``: a :class:`~tl_neuronprobe.data.chunks.ActivationChunks` (saved activations read chunk by
        chunk, the rows carrying its attribute); the fitted attributes are those ``fit(X, y, groups)`` gives
        on those rows (``classes_`` the attribute's values, ``groups`` the sentence ids). Every fit starts
        with one pass of per-class moments; each ranker then makes its own passes (``n_passes_`` counts them).
        ``exact``/``bins``: MutualInformation and AveragePrecision only (see
        :func:`~tl_neuronprobe.rankers.fit_out_of_core`).
        """
        from ._out_of_core import class_moments  # reads through data.chunks
        if chunks.y is None:
            raise ValueError("fit_chunks needs an attribute (chunks with labels): the words carrying it are the "
                             "rows ranked")
        if chunks.n_rows < 2:
            raise ValueError(f"need at least 2 words carrying {chunks.attribute!r}, got {chunks.n_rows}")
        labels = np.asarray(chunks.classes, dtype=object)[chunks.y].astype(str)
        y, self.classes_ = checked_y(self, labels, chunks.n_rows, min_count=self._min_class_count)
        check_k(self.k, chunks.n_neurons)
        self.n_features_in_ = chunks.n_neurons
        self.seed_ = int(self.seed)
        moments = class_moments(chunks, y, len(self.classes_))
        self.constant_ = moments.constant()
        self.order_ = None
        self.n_passes_ = 1  # the moments
        self._fit_chunks(chunks, y, moments, {"exact": bool(exact), "bins": int(bins)})
        self.chunk_rows_ = chunks.chunk_rows
        return self._finish()

    def _fit_chunks(self, chunks: Any, y: np.ndarray, moments: Any, opts: dict) -> None:
        """Set ``scores_`` (and ``per_class_``/``order_``) from ``chunks`` after the moments pass."""
        raise TypeError(f"{type(self).__name__} has no chunked fit; fit it in memory")

    def _finish(self) -> "NeuronRanker":
        """``order_`` from ``scores_`` (unless ``_rank`` set it); constant neurons score ``-inf``."""
        if self.order_ is None:
            self.order_ = order_from_scores(self.scores_, self.constant_)
        self.scores_ = np.asarray(self.scores_, dtype=np.float64)
        self.scores_[self.constant_] = -np.inf
        return self

    def top(self, k: int) -> np.ndarray:
        """Indices of the ``k`` best neurons."""
        check_is_fitted(self, "order_")
        k = check_k(k, self.n_features_in_)
        return self.order_[:k].copy()

    @property
    def ranks_(self) -> np.ndarray:
        """Rank of every neuron (0 = best)."""
        check_is_fitted(self, "order_")
        r = np.empty_like(self.order_)
        r[self.order_] = np.arange(len(self.order_))
        return r

    def _get_support_mask(self) -> np.ndarray:
        check_is_fitted(self, "order_")
        k = check_k(self.k, self.n_features_in_)
        mask = np.zeros(self.n_features_in_, dtype=bool)
        mask[self.order_ if k is None else self.order_[:k]] = True
        return mask

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags
