"""Input checks that the probes and the rankers share: the
scikit-learn side of validation (messages its estimator checks expect, feature counts and
names) in front of ``core.validation``'s own checks; no numerics."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse
from sklearn.utils import check_array
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import column_or_1d, validate_data

from ..core.validation import check_X, check_y, to_numpy

__all__ = ["checked_X", "checked_y"]


def checked_X(estimator: Any, X: Any, *, reset: bool) -> np.ndarray:
    """``X`` as a finite float32 array ``[n_words, n_neurons]``.

    ``reset`` (in ``fit``) records ``n_features_in_`` (and column names) and needs two rows;
    otherwise a different number of columns raises, worded as scikit-learn words it.
    """
    if scipy.sparse.issparse(X):
        raise TypeError(f"{type(estimator).__name__} needs dense activations; sparse input is not supported")
    raw = X if hasattr(X, "columns") else to_numpy(X)
    if raw.ndim == 1:
        raise ValueError(f"X must be 2-D [n_words, n_neurons], got shape {raw.shape}; Reshape your data "
                         "with X.reshape(-1, 1) for one neuron or X.reshape(1, -1) for one word")
    arr = check_array(raw, dtype="numeric", ensure_all_finite=False, ensure_min_samples=2 if reset else 1,
                      input_name="X")
    arr = check_X(arr)  # NaN/inf named by row and column, float32
    validate_data(estimator, raw if hasattr(raw, "columns") else arr, reset=reset, skip_check_array=True)
    return arr


def checked_y(estimator: Any, y: Any, n_rows: int, *, min_count: int = 2, classifier: bool = False):
    """Labels encoded as ``0..C-1`` and the classes (``core.validation.check_y``), after the checks
    scikit-learn expects: y given, a column vector flattened with a warning, and for a classifier
    no continuous target."""
    if y is None:
        raise ValueError(f"{type(estimator).__name__} requires y to be passed, but the target y is None")
    y = to_numpy(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = column_or_1d(y, warn=True)
    if classifier:
        check_classification_targets(y)
    if y.ndim == 1 and len(y) == n_rows and not (y.dtype == object and any(v is None for v in y)) \
            and len(np.unique(y)) == 1:
        raise ValueError(f"need at least 2 classes to rank neurons or fit a probe, got 1 class (only {y[0].item()!r})")
    return check_y(y, n_rows, min_count=min_count)
