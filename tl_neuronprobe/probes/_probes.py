"""Probes that evaluate a neuron ranking.

* :func:`train_softmax` -- one torch routine that trains *many* softmax probes at once:
  the weights of P probes live in one ``[n_inputs, P * n_classes]`` matrix, so a batch costs
  one matrix product whatever P is.  Each probe may see its own subset of the inputs
  (a mask), and its own penalties.  Inputs are standardized on the fly (train statistics)
  without copying X.  Used by :class:`LogisticProbes` and by ``rankers.Linear``.
* :class:`LogisticProbes` -- fresh logistic probes on many neuron subsets (top-k for every k,
  bottom-k, random-k), seeded, early stopping on a dev split, CPU or CUDA.
* :class:`GaussianProbe` -- one Gaussian per class under the Normal-inverse-Wishart prior of
  Torroba Hennigen et al. (2020).  A probe on a subset of neurons is a slice of the fitted
  means and covariances, never a refit.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..core.validation import few_threads, check_X, check_groups, check_y, resolve_device, split_indices, to_numpy

__all__ = ["train_softmax", "softmax_logits", "LogisticProbes", "GaussianProbe"]


# ----------------------------------------------------------------------------------------
# batched softmax training
# ----------------------------------------------------------------------------------------


def _as_param_vector(v: Any, n: int, device: torch.device) -> torch.Tensor:
    t = torch.as_tensor(v, dtype=torch.float32, device=device).reshape(-1)
    if t.numel() == 1:
        t = t.expand(n).clone()
    if t.numel() != n:
        raise ValueError(f"expected 1 or {n} values, got {t.numel()}")
    return t


def softmax_logits(
    X: torch.Tensor,
    W: torch.Tensor,
    b: torch.Tensor,
    mean: torch.Tensor | None = None,
    scale: torch.Tensor | None = None,
    chunk: int = 8192,
) -> torch.Tensor:
    """Logits ``[N, P, C]`` of P probes with weights ``W [P, C, U]`` on inputs ``X [N, U]``."""
    P, C, U = W.shape
    Wm = W.reshape(P * C, U)
    bm = b.reshape(P * C)
    if mean is not None:  # ((x - m) / s) W^T + b = x (W / s)^T + (b - W (m / s)): X is never copied
        Wm, bm = _fold_standardization(Wm, bm, mean.to(W.device), scale.to(W.device).reciprocal())
    out = []
    for s in range(0, X.shape[0], chunk):
        xb = X[s : s + chunk].to(W.device, torch.float32)
        out.append(torch.nn.functional.linear(xb, Wm, bm).view(-1, P, C))
    return torch.cat(out) if out else torch.empty(0, P, C, device=W.device)


def _fold_standardization(W: torch.Tensor, b: torch.Tensor, mean: torch.Tensor, inv_scale: torch.Tensor):
    """Weights ``[K, U]`` and bias ``[K]`` on inputs ``(x - mean) * inv_scale`` -> the same map on x."""
    Wr = W * inv_scale[None, :]
    return Wr, b - Wr @ mean


def train_softmax(*args, **kwargs) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """See :func:`_train_softmax` (this wrapper picks the thread count for the problem size)."""
    X = args[0] if args else kwargs["X"]
    P = kwargs.get("n_probes", 1)
    bs = kwargs.get("batch_size", 256) if kwargs.get("solver", "adam") == "adam" else X.shape[0]
    with few_threads(float(bs) * X.shape[1] * P * 17, threshold=2e8):
        return _train_softmax(*args, **kwargs)


def _train_softmax(
    X: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    *,
    n_probes: int = 1,
    rows: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    mean: torch.Tensor | None = None,
    scale: torch.Tensor | None = None,
    l1: Any = 0.0,
    l2: Any = 0.0,
    l2_squared: Any = 0.0,
    class_weight: torch.Tensor | None = None,
    X_dev: torch.Tensor | None = None,
    y_dev: torch.Tensor | None = None,
    epochs: int = 10,
    batch_size: int = 256,
    lr: float = 1e-3,
    shuffle: bool = True,
    patience: int | None = 2,
    init: str = "zeros",
    solver: str = "adam",
    average: bool = False,
    max_iter: int = 100,
    l1_smoothing: float = 1e-3,
    seed: int = 0,
    device: str | torch.device = "cpu",
    verbose: bool = False,
    desc: str = "probe",
) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Train ``n_probes`` softmax probes together with Adam; returns ``W [P, C, U], b [P, C], info``.

    Loss of probe p: mean cross-entropy + ``l1[p] * sum|W_p|`` + ``l2[p] * ||W_p||_2`` (the
    unsquared norm, as in the published codes) + ``l2_squared[p] * ||W_p||^2``; biases are not
    penalized.  ``mask [P, U]`` restricts probe p to some inputs.  With a dev set, every epoch
    ends with a dev-accuracy check; each probe keeps its best epoch and training stops once
    no probe has improved for ``patience`` epochs.  ``mean``/``scale`` standardize the inputs
    per batch (weights are then on the standardized scale).

    ``average=True`` keeps an exponential moving average of the weights over about one epoch
    of steps (Polyak averaging; smooths Adam's noise) and uses it for the dev checks and the
    result.  ``solver="lbfgs"`` instead minimizes the same loss on the full batch with L-BFGS
    (``max_iter`` iterations, strong-Wolfe line search), |w| smoothed as
    sqrt(w^2 + s^2) - s with ``s = l1_smoothing``; no early stopping.  Good for small problems.
    """
    dev = resolve_device(device)
    N, U = X.shape
    if rows is not None:  # train on these rows of X (no copy of the training split)
        rows = torch.as_tensor(rows, dtype=torch.long)
        y = y[rows] if len(y) == N else y
        N = len(rows)
    P, C = int(n_probes), int(n_classes)
    gen = torch.Generator().manual_seed(int(seed))
    torch_gen_state = torch.random.get_rng_state()
    torch.manual_seed(int(seed))
    try:
        # W is [P * C, U] (nn.Linear's layout): its gradient g^T x is a wide, fast matrix product,
        # where the [U, P * C] layout's x^T g is several times slower for few classes
        if init == "zeros":
            W = torch.zeros(P * C, U, device=dev)
            b = torch.zeros(P * C, device=dev)
        elif init == "torch":  # nn.Linear's default: U(-1/sqrt(U), 1/sqrt(U))
            bound = 1.0 / math.sqrt(U)
            W = (torch.rand(P * C, U, generator=gen) * 2 - 1).mul_(bound).to(dev)
            b = (torch.rand(P * C, generator=gen) * 2 - 1).mul_(bound).to(dev)
        else:
            raise ValueError(f"init must be 'zeros' or 'torch', got {init!r}")
    finally:
        torch.random.set_rng_state(torch_gen_state)
    W.requires_grad_(True)
    b.requires_grad_(True)
    maskW = None
    if mask is not None:
        maskW = mask.to(dev, torch.float32).unsqueeze(1).expand(P, C, U).reshape(P * C, U)
        with torch.no_grad():
            W.mul_(maskW)
    l1v = _as_param_vector(l1, P, dev)
    l2v = _as_param_vector(l2, P, dev)
    l2sv = _as_param_vector(l2_squared, P, dev)
    use_l1, use_l2, use_l2s = bool((l1v > 0).any()), bool((l2v > 0).any()), bool((l2sv > 0).any())
    cw = class_weight.to(dev, torch.float32) if class_weight is not None else None
    if solver == "lbfgs":
        if rows is not None:
            X = X[rows]
        return _train_lbfgs(X, y, P, C, W, b, maskW, mean, scale, l1v, l2v, l2sv, cw, max_iter, l1_smoothing, dev)
    if solver != "adam":
        raise ValueError(f"solver must be 'adam' or 'lbfgs', got {solver!r}")
    try:  # the fused kernel saves per-step overhead where this torch has it
        opt = torch.optim.Adam([W, b], lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        opt = torch.optim.Adam([W, b], lr=lr)
    Xd = X if X.device == dev else X.to(dev)
    yd = y.to(dev)
    rows_d = rows.to(dev) if rows is not None else None
    meand = mean.to(dev) if mean is not None else None
    scaled = scale.to(dev) if scale is not None else None
    has_dev = X_dev is not None and y_dev is not None and len(y_dev) > 0
    if has_dev:
        Xv = X_dev.to(dev)
        yv = y_dev.to(dev)
        best_acc = torch.full((P,), -1.0, device=dev)
        best_W = W.detach().clone()
        best_b = b.detach().clone()
        since = torch.zeros(P, dtype=torch.long, device=dev)
    inv_scale = scaled.reciprocal() if scaled is not None else None
    l1_rows = l1v.repeat_interleave(C)[:, None] if use_l1 else None
    l2_pair = (l2v, l2sv) if (use_l2 or use_l2s) else (None, None)
    epochs_run = 0
    xbuf = torch.empty(min(batch_size, N), U, dtype=Xd.dtype, device=dev)
    steps_per_epoch = max(1, -(-N // batch_size))
    decay = 1.0 - 1.0 / steps_per_epoch
    W_avg = W.detach().clone() if average else None
    b_avg = b.detach().clone() if average else None
    n_steps = 0
    for epoch in tqdm(range(int(epochs)), desc=desc, disable=not verbose, leave=False):
        order = torch.randperm(N, generator=gen).to(dev) if shuffle else None
        for s in range(0, N, batch_size):
            if order is None and rows_d is None:
                xb, yb = Xd[s : s + batch_size], yd[s : s + batch_size]
            else:
                pos = order[s : s + batch_size] if order is not None else torch.arange(s, min(N, s + batch_size))
                yb = yd[pos]
                idx = rows_d[pos] if rows_d is not None else pos
                # one reused buffer: a fresh multi-MB batch per step costs page faults every step
                xb = torch.index_select(Xd, 0, idx, out=xbuf[: len(idx)])
            W.grad, b.grad = _softmax_grads(xb, yb, W.detach(), b.detach(), P, C, maskW, meand, inv_scale,
                                            l1_rows, l2_pair[0], l2_pair[1], cw)
            opt.step()
            if average:
                n_steps += 1
                d = min(decay, 1.0 - 1.0 / n_steps)  # plain mean over the first steps
                with torch.no_grad():
                    W_avg.mul_(d).add_(W.detach(), alpha=1 - d)
                    b_avg.mul_(d).add_(b.detach(), alpha=1 - d)
        epochs_run = epoch + 1
        if has_dev:
            with torch.no_grad():
                Wsrc, bsrc = (W_avg, b_avg) if average else (W.detach(), b.detach())
                Wc = Wsrc * maskW if maskW is not None else Wsrc
                logit = softmax_logits(Xv, Wc.view(P, C, U), bsrc.view(P, C), meand, scaled)
                acc = (logit.argmax(-1) == yv[:, None]).float().mean(0)  # [P]
                better = acc > best_acc
                # ties keep the later (more trained) epoch, without resetting patience
                keep = acc >= best_acc
                cols = keep.repeat_interleave(C)
                best_W[cols] = Wc[cols]
                best_b[cols] = bsrc[cols]
                best_acc = torch.maximum(best_acc, acc)
                since = torch.where(better, torch.zeros_like(since), since + 1)
                if patience is not None and bool((since >= patience).all()):
                    break
    with torch.no_grad():
        if has_dev:
            Wf, bf = best_W, best_b
        else:
            Wsrc, bsrc = (W_avg, b_avg) if average else (W.detach(), b.detach())
            Wf = Wsrc * maskW if maskW is not None else Wsrc
            bf = bsrc
        W_out = Wf.view(P, C, U).clone()
        b_out = bf.view(P, C).clone()
    info = {"epochs": epochs_run}
    if has_dev:
        info["dev_accuracy"] = best_acc.cpu().numpy()
    return W_out, b_out, info


@torch.no_grad()
def _softmax_grads(
    xb: torch.Tensor,
    yb: torch.Tensor,
    W: torch.Tensor,
    b: torch.Tensor,
    P: int,
    C: int,
    maskW: torch.Tensor | None,
    mean: torch.Tensor | None,
    inv_scale: torch.Tensor | None,
    l1_rows: torch.Tensor | None,
    l2v: torch.Tensor | None,
    l2sv: torch.Tensor | None,
    cw: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients wrt ``W [P*C, U]`` and ``b [P*C]`` of every probe's loss, mean cross-entropy +
    ``l1 |W|_1 + l2 ||W||_2 + l2_squared ||W||^2``, in closed form: no autograd graph, so a
    step costs a few large operations instead of dozens of small ones.  Standardization
    ``(x - mean) * inv_scale`` is folded into the weights (no pass over the batch).  ``l1_rows
    [P*C, 1]`` is each row's L1 weight; None (no L1) and ``l2v = l2sv = None`` (no L2) skip
    those terms without a device sync."""
    Weff = W * maskW if maskW is not None else W
    Wx, bx = _fold_standardization(Weff, b, mean, inv_scale) if mean is not None else (Weff, b)
    G = torch.nn.functional.linear(xb, Wx, bx).view(-1, P, C).softmax(-1)  # p
    G.scatter_add_(2, yb.view(-1, 1, 1).expand(-1, P, 1), torch.full((len(yb), P, 1), -1.0, device=G.device))
    if cw is not None:  # class-weighted mean
        wb = cw[yb]
        G.mul_((wb / wb.sum())[:, None, None])
    else:
        G.div_(len(yb))
    G = G.view(-1, P * C)
    gb = G.sum(0)
    gW = G.t() @ xb
    if mean is not None:  # through Wx = W * inv_scale and bx = b - Wx @ mean
        gW.sub_(gb[:, None] * mean[None, :]).mul_(inv_scale)
    if l1_rows is not None:
        gW.add_(torch.sign(Weff) * l1_rows)
    if l2v is not None:
        sq = Weff.view(P, -1).square().sum(1)
        coef = l2v / torch.sqrt(sq + 1e-12) + 2.0 * l2sv  # d/dW of l2 ||W|| + l2s ||W||^2, per probe
        gW.add_(Weff * coef.repeat_interleave(C)[:, None])
    if maskW is not None:
        gW.mul_(maskW)
    return gW, gb


def _train_lbfgs(X, y, P, C, W, b, maskW, mean, scale, l1v, l2v, l2sv, cw, max_iter, smooth, dev):
    Z = X.to(dev, torch.float32)
    if mean is not None:
        Z = (Z - mean.to(dev)) / scale.to(dev)
    yd = y.to(dev)
    U = Z.shape[1]
    opt = torch.optim.LBFGS([W, b], lr=1.0, max_iter=int(max_iter), history_size=20,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-6, tolerance_change=1e-8)
    wts = cw[yd] if cw is not None else None
    n_eval = [0]

    def closure():
        opt.zero_grad(set_to_none=True)
        Weff = W * maskW if maskW is not None else W
        lp = torch.nn.functional.linear(Z, Weff, b).view(-1, P, C).log_softmax(-1)
        nll = -lp.gather(2, yd.view(-1, 1, 1).expand(-1, P, 1)).squeeze(2)
        loss = (nll * wts[:, None]).sum() / wts.sum() if wts is not None else nll.mean(0).sum()
        W3 = Weff.view(P, C, U)
        sq = W3.square().sum((1, 2))
        loss = loss + (l1v * (torch.sqrt(W3.square() + smooth**2) - smooth).sum((1, 2))).sum()
        loss = loss + (l2v * torch.sqrt(sq + 1e-12)).sum() + (l2sv * sq).sum()
        loss.backward()
        n_eval[0] += 1
        return loss

    opt.step(closure)
    with torch.no_grad():
        Wf = (W * maskW if maskW is not None else W).detach()
        W_out = Wf.view(P, C, U).clone()
        b_out = b.detach().view(P, C).clone()
    return W_out, b_out, {"epochs": 0, "evaluations": n_eval[0]}


def standardization(
    X: torch.Tensor, rows: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Column mean, scale (std; 1 for constant columns) and the constant-column mask, over
    ``rows`` of X (default all)."""
    N = X.shape[0] if rows is None else len(rows)
    if N == 0:
        raise ValueError("no rows to standardize")

    def chunk(i: int, j: int) -> torch.Tensor:
        c = X[i:j] if rows is None else torch.index_select(X, 0, rows[i:j].to(X.device))
        return c.float()

    # chunked sums around a provisional mean: one cache-friendly pass, no catastrophic cancellation
    # (torch.var_mean over dim 0 is several times slower on tall matrices)
    shift = chunk(0, min(N, 512)).mean(0)
    s1 = torch.zeros(X.shape[1], dtype=torch.float64, device=X.device)
    s2 = torch.zeros_like(s1)
    for i in range(0, N, 256):
        c = chunk(i, min(N, i + 256)) - shift
        s1 += c.sum(0)
        s2 += c.square_().sum(0)
    m1 = s1 / N
    var = (s2 / N - m1.square()).clamp_min_(0.0).float()
    mean = (shift + m1).float()
    std = var.sqrt()
    constant = std <= 1e-6 * (1.0 + mean.abs())
    scale = torch.where(constant, torch.ones_like(std), std)
    return mean, scale, constant


# ----------------------------------------------------------------------------------------
# logistic probes on many subsets
# ----------------------------------------------------------------------------------------


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


class LogisticProbes:
    """Fresh softmax probes on many neuron subsets, trained together.

    ``fit(X, y, subsets)`` trains probe p on the columns ``subsets[p]`` only; ``score``
    returns one held-out accuracy per subset.  Inputs are standardized with training
    statistics; a small squared-L2 penalty (``l2``) keeps separable problems bounded.
    Subsets that share neurons (e.g. the top-k of one ranking for every k) are trained in
    one masked matrix product.  Seeded; early stopping on a dev split (by group if given).
    """

    def __init__(
        self,
        l2: float = 1e-4,
        lr: float = 3e-3,
        batch_size: int = 256,
        max_epochs: int = 40,
        patience: int = 3,
        dev_size: float = 0.1,
        standardize: bool = True,
        device: str | torch.device = "cpu",
        random_state: int = 0,
        verbose: bool = False,
    ):
        self.l2 = l2
        self.lr = lr
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.dev_size = dev_size
        self.standardize = standardize
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def fit(self, X: Any, y: Any, subsets: Sequence[Any], groups: Any = None) -> "LogisticProbes":
        Xn = check_X(X)
        y_enc, classes = check_y(y, Xn.shape[0], min_count=1)
        groups = check_groups(groups, Xn.shape[0])
        D = Xn.shape[1]
        subs = []
        for p, s in enumerate(subsets):
            s = np.asarray(to_numpy(s), dtype=np.int64).reshape(-1)
            if len(s) == 0:
                raise ValueError(f"subset {p} is empty")
            if s.min() < 0 or s.max() >= D:
                raise ValueError(f"subset {p} has neuron indices outside [0, {D})")
            subs.append(s)
        self.classes_ = classes
        self.subsets_ = subs
        self.n_features_in_ = D
        dev = resolve_device(self.device)
        if self.dev_size and self.dev_size > 0:
            tr, dv = split_indices(Xn.shape[0], self.dev_size, groups=groups, seed=self.random_state)
        else:
            tr, dv = np.arange(Xn.shape[0]), np.array([], dtype=np.int64)
        Xt = torch.from_numpy(Xn)
        yt = torch.from_numpy(y_enc)
        self.buckets_ = []
        buckets = _bucket_subsets(subs)
        for bi, members in enumerate(tqdm(buckets, desc="probes", disable=not self.verbose)):
            cols = np.unique(np.concatenate([subs[i] for i in members]))
            pos = {c: j for j, c in enumerate(cols.tolist())}
            mask = torch.zeros(len(members), len(cols), dtype=torch.bool)
            for r, i in enumerate(members):
                mask[r, [pos[c] for c in subs[i].tolist()]] = True
            Xb = Xt[:, torch.from_numpy(cols)]
            Xtr, ytr = Xb[torch.from_numpy(tr)], yt[torch.from_numpy(tr)]
            if self.standardize:
                mean, scale, _ = standardization(Xtr)
            else:
                mean = scale = None
            W, b, _ = train_softmax(
                Xtr.to(dev),
                ytr,
                len(classes),
                n_probes=len(members),
                mask=mask,
                mean=mean,
                scale=scale,
                l2_squared=self.l2,
                X_dev=Xb[torch.from_numpy(dv)] if len(dv) else None,
                y_dev=yt[torch.from_numpy(dv)] if len(dv) else None,
                epochs=self.max_epochs,
                batch_size=self.batch_size,
                lr=self.lr,
                patience=self.patience,
                seed=self.random_state + bi,
                device=dev,
            )
            self.buckets_.append(
                {"members": members, "cols": cols, "W": W, "b": b, "mean": mean, "scale": scale}
            )
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """Logits ``[n_subsets, N, n_classes]``."""
        Xn = check_X(X)
        if Xn.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {Xn.shape[1]} neurons, the probes were fit on {self.n_features_in_}")
        Xt = torch.from_numpy(Xn)
        out = np.zeros((len(self.subsets_), Xn.shape[0], len(self.classes_)), dtype=np.float32)
        for bk in self.buckets_:
            W = bk["W"]
            Xb = Xt[:, torch.from_numpy(bk["cols"])].to(W.device)
            mean = bk["mean"].to(W.device) if bk["mean"] is not None else None
            scale = bk["scale"].to(W.device) if bk["scale"] is not None else None
            with torch.no_grad():
                logit = softmax_logits(Xb, W, bk["b"], mean, scale)
            out[bk["members"]] = logit.permute(1, 0, 2).cpu().numpy()
        return out

    def predict(self, X: Any) -> np.ndarray:
        """Predicted labels ``[n_subsets, N]``."""
        return self.classes_[self.decision_function(X).argmax(-1)]

    def score(self, X: Any, y: Any) -> np.ndarray:
        """Accuracy of every probe, ``[n_subsets]``."""
        y = to_numpy(y).reshape(-1)
        return (self.predict(X) == y[None, :]).mean(1)


# ----------------------------------------------------------------------------------------
# Gaussian probe
# ----------------------------------------------------------------------------------------


class GaussianProbe:
    """p(z | h_S) ∝ p(z) N(h_S; mu_z[S], Sigma_z[S, S]) with the NIW posterior estimate.

    Prior (Torroba Hennigen et al. 2020): mu_0 = class mean, kappa_0 = 0.01, nu_0 = D + 2,
    Lambda_0 = diag(class covariance).  Then mu* = class mean and
    Sigma* = (Lambda_0 + S_z) / (nu_0 + N_z + D + 2), S_z the class scatter.  (kappa_0 drops
    out because mu_0 is the class mean; it is kept as a documented parameter.)  D is the size
    of the full representation (``n_dims_total``), so a probe on any subset is a slice of
    the one fitted model.  Class priors are the training frequencies.  Covariances are
    built lazily from the stored class-centred data, so D can be large.  If round-off makes
    a slice indefinite, ``-10 * lambda_min * I`` is added (as the published code does).
    Within-class variances are floored at ``var_floor`` times the neuron's overall variance (a
    neuron that is constant within a class, e.g. a GELU/ReLU neuron that is silent for it,
    would otherwise give a degenerate Gaussian).
    """

    def __init__(
        self,
        kappa0: float = 0.01,
        nu0: float | None = None,
        dtype: torch.dtype = torch.float64,
        device: str | torch.device = "cpu",
        var_floor: float = 1e-4,
    ):
        self.kappa0 = kappa0
        self.nu0 = nu0
        self.dtype = dtype
        self.device = device
        self.var_floor = var_floor

    def fit(self, X: Any, y: Any, n_dims_total: int | None = None) -> "GaussianProbe":
        Xn = check_X(X)
        y_enc, classes = check_y(y, Xn.shape[0], min_count=2)
        dev = resolve_device(self.device)
        N, D = Xn.shape
        Dt = int(n_dims_total) if n_dims_total is not None else D
        if Dt < D:
            raise ValueError(f"n_dims_total={Dt} is smaller than the number of columns ({D})")
        C = len(classes)
        order = np.argsort(y_enc, kind="stable")
        counts = np.bincount(y_enc, minlength=C)
        Xs = torch.from_numpy(Xn[order]).to(dev, self.dtype)
        offsets = np.concatenate([[0], np.cumsum(counts)])
        means = torch.stack([Xs[offsets[c] : offsets[c + 1]].mean(0) for c in range(C)])
        for c in range(C):
            Xs[offsets[c] : offsets[c + 1]] -= means[c]
        var = torch.stack(
            [Xs[offsets[c] : offsets[c + 1]].square().sum(0) / (counts[c] - 1) for c in range(C)]
        )
        pooled = torch.as_tensor(Xn, dtype=self.dtype).var(0)  # each neuron's overall variance
        floor = (self.var_floor * pooled).clamp_min(1e-12 * float(pooled.mean()) + 1e-30)[None, :]
        self.var_floored_ = (var < floor).cpu().numpy()
        var = torch.maximum(var, floor)
        nu0 = float(Dt + 2) if self.nu0 is None else float(self.nu0)
        self.classes_ = classes
        self.n_features_in_ = D
        self.n_dims_total_ = Dt
        self.counts_ = counts
        self.priors_ = counts / counts.sum()
        self.log_priors_ = torch.log(torch.as_tensor(self.priors_, dtype=self.dtype, device=dev))
        self.means_ = means
        self.lambda0_ = var  # diag of Lambda_0, per class
        self.denominator_ = torch.as_tensor(nu0 + counts + Dt + 2.0, dtype=self.dtype, device=dev)
        self._Xc = Xs
        self._offsets = offsets
        return self

    # -- covariance pieces (Sigma*) --------------------------------------------------------
    def variances(self) -> torch.Tensor:
        """diag Sigma*_z for every class, ``[C, D]``."""
        scatter_diag = torch.zeros_like(self.lambda0_)
        for c in range(len(self.classes_)):
            Xc = self._Xc[self._offsets[c] : self._offsets[c + 1]]
            scatter_diag[c] = Xc.square().sum(0)
        return (self.lambda0_ + scatter_diag) / self.denominator_[:, None]

    def cov_rows(self, rows: Any) -> torch.Tensor:
        """Sigma*_z[rows, :] for every class, ``[C, len(rows), D]``."""
        rows = torch.as_tensor(np.atleast_1d(to_numpy(rows)), dtype=torch.long)
        out = []
        for c in range(len(self.classes_)):
            Xc = self._Xc[self._offsets[c] : self._offsets[c + 1]]
            r = Xc[:, rows].t() @ Xc  # [m, D]
            r[torch.arange(len(rows)), rows] += self.lambda0_[c, rows]
            out.append(r / self.denominator_[c])
        return torch.stack(out)

    def covariance(self, neurons: Any) -> torch.Tensor:
        """Sigma*_z[S, S], ``[C, k, k]``."""
        S = torch.as_tensor(np.atleast_1d(to_numpy(neurons)), dtype=torch.long)
        out = []
        for c in range(len(self.classes_)):
            Xc = self._Xc[self._offsets[c] : self._offsets[c + 1], S]
            cov = Xc.t() @ Xc
            cov.diagonal().add_(self.lambda0_[c, S])
            out.append(cov / self.denominator_[c])
        return torch.stack(out)

    def cholesky(self, neurons: Any) -> torch.Tensor:
        """Cholesky factors of the slices, with the published ``-10 lambda_min I`` fix."""
        cov = self.covariance(neurons)
        L, info = torch.linalg.cholesky_ex(cov)
        for _ in range(5):
            bad = torch.nonzero(info > 0).flatten()
            if len(bad) == 0:
                return L
            for c in bad.tolist():
                lam = torch.linalg.eigvalsh(cov[c]).min()
                shift = -10.0 * lam if lam < 0 else 1e-10 * cov[c].diagonal().mean()
                cov[c].diagonal().add_(shift)
            L, info = torch.linalg.cholesky_ex(cov)
        if bool((info > 0).any()):
            raise np.linalg.LinAlgError("covariance slice is not positive definite")
        return L

    def _resolve(self, neurons: Any) -> np.ndarray:
        if neurons is None:
            return np.arange(self.n_features_in_)
        S = np.atleast_1d(to_numpy(neurons)).astype(np.int64)
        if len(S) == 0:
            raise ValueError("need at least one neuron")
        if S.min() < 0 or S.max() >= self.n_features_in_:
            raise ValueError(f"neuron indices must be in [0, {self.n_features_in_})")
        return S

    def log_likelihood(self, X: Any, neurons: Any = None, chunk: int = 4096) -> torch.Tensor:
        """log N(h_S; mu_z[S], Sigma_z[S,S]) for every row and class, ``[N, C]``."""
        S = self._resolve(neurons)
        Xn = check_X(X)
        if Xn.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {Xn.shape[1]} neurons, the probe was fit on {self.n_features_in_}")
        L = self.cholesky(S)
        St = torch.from_numpy(S)
        mu = self.means_[:, St]  # [C, k]
        logdet = torch.log(torch.diagonal(L, dim1=1, dim2=2)).sum(1)  # [C]
        k = len(S)
        outs = []
        for s in range(0, Xn.shape[0], chunk):
            h = torch.from_numpy(Xn[s : s + chunk][:, S]).to(mu.device, self.dtype)
            r = (h[None] - mu[:, None]).transpose(1, 2)  # [C, k, n]
            a = torch.linalg.solve_triangular(L, r, upper=False)
            ll = -0.5 * a.square().sum(1) - logdet[:, None] - 0.5 * k * math.log(2 * math.pi)
            outs.append(ll.t())
        return torch.cat(outs)

    def predict_log_proba(self, X: Any, neurons: Any = None) -> np.ndarray:
        joint = self.log_likelihood(X, neurons) + self.log_priors_
        return (joint - torch.logsumexp(joint, 1, keepdim=True)).cpu().numpy()

    def predict_proba(self, X: Any, neurons: Any = None) -> np.ndarray:
        return np.exp(self.predict_log_proba(X, neurons))

    def predict(self, X: Any, neurons: Any = None) -> np.ndarray:
        joint = self.log_likelihood(X, neurons) + self.log_priors_
        return self.classes_[joint.argmax(1).cpu().numpy()]

    def score(self, X: Any, y: Any, neurons: Any = None) -> float:
        """Accuracy on (X, y) using only ``neurons``."""
        return float((self.predict(X, neurons) == to_numpy(y).reshape(-1)).mean())

    def prefix_scores(self, X: Any, y: Any, order: Any, ks: Sequence[int], chunk: int = 2048) -> np.ndarray:
        """Accuracy of the probe on ``order[:k]`` for every k in ``ks`` from one Cholesky.

        The Cholesky factor of a leading block is the leading block of the factor, so the
        log-likelihood of every prefix is a cumulative sum of one triangular solve.
        """
        order = self._resolve(order)
        ks = [int(k) for k in ks]
        kmax = max(ks)
        if kmax > len(order) or min(ks) < 1:
            raise ValueError(f"ks must be in [1, {len(order)}]")
        S = order[:kmax]
        Xn = check_X(X)
        yv = to_numpy(y).reshape(-1)
        y_enc = np.searchsorted(self.classes_, yv).clip(0, len(self.classes_) - 1)
        y_enc = np.where(self.classes_[y_enc] == yv, y_enc, -1)  # unseen classes never count as correct
        L = self.cholesky(S)
        mu = self.means_[:, torch.from_numpy(S)]
        logdiag = torch.log(torch.diagonal(L, dim1=1, dim2=2)).cumsum(1)  # [C, kmax]
        kidx = torch.as_tensor([k - 1 for k in ks])
        const = -0.5 * torch.as_tensor(ks, dtype=self.dtype) * math.log(2 * math.pi)
        correct = np.zeros(len(ks))
        for s in range(0, Xn.shape[0], chunk):
            h = torch.from_numpy(Xn[s : s + chunk][:, S]).to(mu.device, self.dtype)
            r = (h[None] - mu[:, None]).transpose(1, 2)
            a2 = torch.linalg.solve_triangular(L, r, upper=False).square().cumsum(1)  # [C, kmax, n]
            ll = -0.5 * a2[:, kidx] - logdiag[:, kidx, None] + const.to(mu.device)[None, :, None]
            joint = ll + self.log_priors_[:, None, None]
            pred = joint.argmax(0).cpu().numpy()  # [len(ks), n]
            truth = y_enc[s : s + chunk]
            correct += (pred == truth[None]).sum(1)
        return correct / Xn.shape[0]
