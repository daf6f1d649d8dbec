"""Input checks and renamed-parameter handling that the probes and the rankers share (not the
numerical checks themselves, which live in ``core.validation``)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.sparse
from sklearn.utils.validation import validate_data

from ..core.validation import check_X

__all__ = ["checked_X", "renamed_param"]


def checked_X(estimator: Any, X: Any, *, reset: bool) -> np.ndarray:
    """``X`` as a finite float32 array; ``reset`` records ``n_features_in_`` (and column names),
    otherwise a different number of columns raises, as scikit-learn words it."""
    if scipy.sparse.issparse(X):
        raise TypeError(f"{type(estimator).__name__} needs dense activations; sparse input is not supported")
    arr = check_X(X)
    validate_data(estimator, X if hasattr(X, "columns") else arr, reset=reset, skip_check_array=True)
    return arr


def renamed_param(estimator: Any, new: str, old: str) -> Any:
    """The value of parameter ``new``, or of its deprecated spelling ``old`` when that was set
    (with a ``DeprecationWarning`` naming the new one)."""
    value = getattr(estimator, old)
    if value is None:
        return getattr(estimator, new)
    warnings.warn(f"{type(estimator).__name__}({old}=...) is deprecated and will be removed; use {new}=...",
                  DeprecationWarning, stacklevel=3)
    return value
