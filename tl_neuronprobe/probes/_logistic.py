"""Fresh logistic probes on many neuron subsets at once (the encoded evaluation's probe), not a ranker."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from ..core.validation import check_groups, resolve_device, split_indices, to_numpy
from ._checks import checked_X, checked_y
from ._softmax import softmax_fit, softmax_logits, standardization

__all__ = ["LogisticProbes"]


def _bucket_subsets(subsets: list[np.ndarray]) -> list[list[int]]:
    """Group subsets whose union stays small (nested prefixes share one bucket)."""
    order = sorted(range(len(subsets)), key=lambda i: len(subsets[i]))
    buckets: list[list[int]] = []
    unions: list[set] = []
    sumk: list[int] = []
    for i in order:
        s = set(subsets[i].tolist())
        placed = False
        for bi in range(len(buckets)):
            u = unions[bi] | s
            p = len(buckets[bi]) + 1
            # cost of the shared masked product vs separate products, with some slack
            if len(u) * p <= 2 * (sumk[bi] + len(s)) + 256 and p <= 64:
                buckets[bi].append(i)
                unions[bi] = u
                sumk[bi] += len(s)
                placed = True
                break
        if not placed:
            buckets.append([i])
            unions.append(s)
            sumk.append(len(s))
    return buckets


def _check_subsets(subsets: Sequence[Any] | None, D: int) -> list[np.ndarray]:
    if subsets is None:  # one probe on every neuron
        return [np.arange(D)]
    subs = []
    for p, s in enumerate(subsets):
        s = np.asarray(to_numpy(s), dtype=np.int64).reshape(-1)
        if len(s) == 0:
            raise ValueError(f"subset {p} is empty")
        if s.min() < 0 or s.max() >= D:
            raise ValueError(f"subset {p} has neuron indices outside [0, {D})")
        subs.append(s)
    return subs


class LogisticProbes(ClassifierMixin, BaseEstimator):
    """Fresh softmax probes on many neuron subsets, trained together.

    ``fit(X, y, subsets)`` trains probe p on the columns ``subsets[p]`` only (``subsets=None``:
    one probe on every neuron); ``subset_scores`` returns one held-out accuracy per subset.
    Inputs are standardized with training statistics; a small squared-L2 penalty (``l2``)
    keeps separable problems bounded.  Subsets that share neurons (e.g. the top-k of one
    ranking for every k) are trained in one masked matrix product.  Seeded by ``seed``; early
    stopping on a dev split (by group if given).

    ``predict``, ``predict_proba``, ``decision_function`` and ``score`` are scikit-learn's, for
    a single probe; with several subsets use the ``subset_*`` methods (they raise otherwise).

    Parameters: ``l2`` (squared-L2 penalty), ``lr``, ``batch_size``, ``max_steps`` (epochs), ``patience``
    (epochs without dev improvement), ``dev_size``, ``standardize``, ``device``, ``seed``, ``progress``.
    """

    def __init__(
        self,
        l2: float = 1e-4,
        lr: float = 3e-3,
        batch_size: int = 256,
        max_steps: int = 40,
        patience: int = 3,
        dev_size: float = 0.1,
        standardize: bool = True,
        device: str | torch.device = "cpu",
        seed: int = 0,
        progress: bool = False,
    ):
        params = dict(locals())  # every argument kept untouched under its own name (scikit-learn's rule)
        del params["self"]
        vars(self).update(params)

    def fit(self, X: Any, y: Any, subsets: Sequence[Any] | None = None, groups: Any = None) -> "LogisticProbes":
        """Train one probe per subset of neurons (columns of X)."""
        Xn = checked_X(self, X, reset=True)
        y_enc, self.classes_ = checked_y(self, y, Xn.shape[0], min_count=1, classifier=True)
        groups = check_groups(groups, Xn.shape[0])
        self.seed_ = int(self.seed)
        progress = self.progress
        self.subsets_ = _check_subsets(subsets, Xn.shape[1])
        if self.dev_size and self.dev_size > 0:
            tr, dv = split_indices(Xn.shape[0], self.dev_size, groups=groups, seed=self.seed_)
        else:
            tr, dv = np.arange(Xn.shape[0]), np.array([], dtype=np.int64)
        Xt, yt = torch.from_numpy(Xn), torch.from_numpy(y_enc)
        buckets = _bucket_subsets(self.subsets_)
        self.buckets_ = [self._fit_bucket(Xt, yt, members, tr, dv, bi)
                         for bi, members in enumerate(tqdm(buckets, desc="probes", disable=not progress))]
        return self

    def _fit_bucket(self, Xt, yt, members: list[int], tr, dv, bi: int) -> dict:
        """Train the probes of one bucket: one masked product over the union of their neurons."""
        cols = np.unique(np.concatenate([self.subsets_[i] for i in members]))
        pos = {c: j for j, c in enumerate(cols.tolist())}
        mask = torch.zeros(len(members), len(cols), dtype=torch.bool)
        for r, i in enumerate(members):
            mask[r, [pos[c] for c in self.subsets_[i].tolist()]] = True
        Xb = Xt[:, torch.from_numpy(cols)]
        Xtr, ytr = Xb[torch.from_numpy(tr)], yt[torch.from_numpy(tr)]
        mean, scale = standardization(Xtr)[:2] if self.standardize else (None, None)
        has_dev = len(dv) > 0
        W, b, _ = softmax_fit(
            Xtr.to(resolve_device(self.device)), ytr, len(self.classes_), n_probes=len(members), mask=mask,
            mean=mean, scale=scale, l2_squared=self.l2,
            X_dev=Xb[torch.from_numpy(dv)] if has_dev else None, y_dev=yt[torch.from_numpy(dv)] if has_dev else None,
            epochs=self.max_steps, batch_size=self.batch_size, lr=self.lr, patience=self.patience,
            seed=self.seed_ + bi, device=resolve_device(self.device),
        )
        return {"members": members, "cols": cols, "W": W, "b": b, "mean": mean, "scale": scale}

    # -- one result per subset -----------------------------------------------------------------
    def subset_decision_function(self, X: Any) -> np.ndarray:
        """Logits of every probe, ``[n_subsets, N, n_classes]``."""
        check_is_fitted(self, "buckets_")
        Xt = torch.from_numpy(checked_X(self, X, reset=False))
        out = np.zeros((len(self.subsets_), Xt.shape[0], len(self.classes_)), dtype=np.float32)
        for bk in self.buckets_:
            W = bk["W"]
            Xb = Xt[:, torch.from_numpy(bk["cols"])].to(W.device)
            mean = bk["mean"].to(W.device) if bk["mean"] is not None else None
            scale = bk["scale"].to(W.device) if bk["scale"] is not None else None
            with torch.no_grad():
                logit = softmax_logits(Xb, W, bk["b"], mean, scale)
            out[bk["members"]] = logit.permute(1, 0, 2).cpu().numpy()
        return out

    def subset_predict(self, X: Any) -> np.ndarray:
        """Predicted labels of every probe, ``[n_subsets, N]``."""
        logits = self.subset_decision_function(X)
        return self.classes_[logits.argmax(-1)]

    def subset_scores(self, X: Any, y: Any) -> np.ndarray:
        """Accuracy of every probe, ``[n_subsets]``."""
        y = to_numpy(y).reshape(-1)
        return (self.subset_predict(X) == y[None, :]).mean(1)

    # -- scikit-learn's interface: one probe -----------------------------------------------------
    def _single(self, per_subset: np.ndarray, method: str):
        if len(per_subset) == 1:
            return per_subset[0]
        raise ValueError(f"LogisticProbes.{method} needs a probe fitted on one subset, this one has "
                         f"{len(per_subset)}; use subset_{method}")

    def decision_function(self, X: Any) -> np.ndarray:
        """Logits ``[N, n_classes]`` of the probe (one subset); with two classes scikit-learn's
        ``[N]``, the second class's logit minus the first's."""
        logits = self._single(self.subset_decision_function(X), "decision_function")
        if len(self.classes_) == 2 and len(self.subsets_) == 1:
            return logits[:, 1] - logits[:, 0]
        return logits

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``[N, n_classes]`` of the probe (one subset)."""
        logits = self._single(self.subset_decision_function(X), "predict_proba")
        return torch.from_numpy(np.asarray(logits)).softmax(-1).numpy()

    def predict(self, X: Any) -> np.ndarray:
        """Predicted labels ``[N]`` of the probe (one subset)."""
        return self._single(self.subset_predict(X), "predict")

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Accuracy of the probe (one subset), a float."""
        if len(getattr(self, "subsets_", ())) > 1:
            return self._single(self.subset_scores(X, y), "scores")
        return float(ClassifierMixin.score(self, X, y, sample_weight))
