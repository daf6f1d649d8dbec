"""Input checks and splits shared by rankers, probes and the encoded evaluation."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def to_numpy(a: Any, dtype=None) -> np.ndarray:
    """A numpy view (or copy) of a tensor, array or list; torch tensors are detached to CPU."""
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu()
        if a.dtype == torch.bfloat16 or a.dtype == torch.float16:
            a = a.float()
        a = a.numpy()
    arr = np.asarray(a)
    if dtype is not None and arr.dtype != dtype:
        arr = arr.astype(dtype)
    return arr


def _first(idx: np.ndarray, n: int = 5) -> str:
    head = ", ".join(str(int(i)) for i in idx[:n])
    return f"[{head}{', ...' if len(idx) > n else ''}]"


def check_X(X: Any, *, name: str = "X", dtype=np.float32) -> np.ndarray:
    """Check a 2-D finite activation matrix; NaN/inf raise naming the rows and columns."""
    arr = to_numpy(X)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D [n_words, n_neurons], got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{name} must be real numbers, got dtype {arr.dtype}")
    arr = arr.astype(dtype, copy=False)
    with np.errstate(over="ignore", invalid="ignore"):  # a finite sum means every entry is finite (an inf or a
        total = arr.sum()  # NaN makes the sum inf or NaN): one reduction, no [N, D] mask; overflow rechecks
    if np.isfinite(total):
        return arr
    finite = np.isfinite(arr)
    if not finite.all():
        rows = np.flatnonzero(~finite.all(axis=1))
        cols = np.flatnonzero(~finite.all(axis=0))
        raise ValueError(
            f"{name} contains NaN or inf in {len(rows)} rows {_first(rows)} and "
            f"{len(cols)} columns (neurons) {_first(cols)}; drop or impute them first"
        )
    return arr


def check_y(y: Any, n_rows: int, *, min_count: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Encode labels as 0..C-1; returns ``(y_encoded int64, classes)``.

    Raises on a length mismatch with X, missing labels, fewer than two classes and
    (when ``min_count`` is 2) a class with a single example, naming the class.
    """
    arr = to_numpy(y)
    if arr.ndim != 1:
        arr = arr.reshape(-1) if arr.ndim == 2 and 1 in arr.shape else arr
    if arr.ndim != 1:
        raise ValueError(f"y must be 1-D, got shape {arr.shape}")
    if len(arr) != n_rows:
        raise ValueError(f"X has {n_rows} rows but y has {len(arr)} labels; they must match")
    if arr.dtype == object:
        missing = np.flatnonzero(np.array([v is None for v in arr]))
        if len(missing):
            raise ValueError(f"y has {len(missing)} missing labels (None) at rows {_first(missing)}")
    elif np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        bad = np.flatnonzero(~np.isfinite(arr))
        raise ValueError(f"y contains NaN or inf at rows {_first(bad)}")
    classes, y_enc, counts = np.unique(arr, return_inverse=True, return_counts=True)
    py = lambda c: c.item() if isinstance(c, np.generic) else c  # noqa: E731  (plain repr in messages)
    if len(classes) < 2:
        only = f" (only {py(classes[0])!r})" if len(classes) else ""
        raise ValueError(f"need at least 2 classes to rank neurons, got {len(classes)}{only}")
    if min_count > 1:
        small = [(c, n) for c, n in zip(classes, counts) if n < min_count]
        if small:
            desc = ", ".join(f"{py(c)!r} ({n} example{'s' if n != 1 else ''})" for c, n in small)
            raise ValueError(
                f"every class needs at least {min_count} examples; too few for {desc}. "
                "Drop or merge these classes first."
            )
    return y_enc.astype(np.int64), classes


def check_k(k: int | None, n_features: int, *, name: str = "k") -> int | None:
    """``None`` keeps all; otherwise 1 <= k <= n_features."""
    if k is None:
        return None
    if isinstance(k, bool) or int(k) != k:
        raise ValueError(f"{name} must be a positive integer or None, got {k!r}")
    k = int(k)
    if k < 1:
        raise ValueError(f"{name} must be at least 1, got {k}")
    if k > n_features:
        raise ValueError(f"{name}={k} is larger than the number of neurons ({n_features})")
    return k


def check_groups(groups: Any, n_rows: int) -> np.ndarray | None:
    if groups is None:
        return None
    g = to_numpy(groups).reshape(-1)
    if len(g) != n_rows:
        raise ValueError(f"groups has {len(g)} entries but X has {n_rows} rows")
    return g


def split_indices(
    n: int,
    test_size: float,
    *,
    groups: np.ndarray | None = None,
    y: np.ndarray | None = None,
    seed: int = 0,
    min_train_per_class: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/held-out split of ``range(n)``; whole groups (sentences) stay together.

    With ``min_train_per_class`` > 0, held-out rows of classes that would be left with
    fewer training examples are moved back to training (so every class can be fitted).
    """
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be in (0, 1), got {test_size}")
    rng = np.random.default_rng(seed)
    if groups is None:
        perm = rng.permutation(n)
        n_test = max(1, int(round(test_size * n)))
        test = np.sort(perm[:n_test])
    else:
        uniq = np.unique(groups)
        if len(uniq) < 2:
            raise ValueError("need at least 2 groups (sentences) to split by group")
        perm = rng.permutation(uniq)
        sizes = {}
        vals, counts = np.unique(groups, return_counts=True)
        sizes = dict(zip(vals.tolist(), counts.tolist()))
        target = test_size * n
        chosen, total = [], 0
        for g in perm:
            if total >= target:
                break
            chosen.append(g)
            total += sizes[g]
        if len(chosen) == len(uniq):
            chosen = chosen[:-1]
        test = np.flatnonzero(np.isin(groups, np.asarray(chosen)))
    is_test = np.zeros(n, dtype=bool)
    is_test[test] = True
    if y is not None and min_train_per_class > 0:
        for c in np.unique(y):
            rows = np.flatnonzero(y == c)
            n_train = int((~is_test[rows]).sum())
            if n_train < min_train_per_class:
                move = rows[is_test[rows]][: min_train_per_class - n_train]
                is_test[move] = False
    if is_test.all() or not is_test.any():
        raise ValueError("the split left one side empty; use more data or another test_size")
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class few_threads:
    """Run small tensor work on one thread: on a busy machine, OpenMP barriers make tiny
    multi-threaded ops much slower than single-threaded ones.  Big work keeps all threads."""

    def __init__(self, work: float, threshold: float = 2e7, n_threads: int | None = None):
        self.target = n_threads if n_threads is not None else (1 if work < threshold else None)
        self.prev = None

    def __enter__(self):
        if self.target is not None:
            self.prev = torch.get_num_threads()
            if self.prev != self.target:
                torch.set_num_threads(max(1, int(self.target)))
        return self

    def __exit__(self, *exc):
        if self.prev is not None and self.prev != torch.get_num_threads():
            torch.set_num_threads(self.prev)
        return False
