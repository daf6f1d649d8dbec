"""Batched softmax training: many probes in one weight matrix (not the estimators built on it).

:func:`softmax_fit` trains P probes at once: their weights live in one ``[P * n_classes,
n_inputs]`` matrix, so a batch costs one matrix product whatever P is.  Each probe may see its
own subset of the inputs (a mask) and its own penalties.  Inputs are standardized on the fly
(train statistics) without copying X.  Used by ``LogisticProbes`` and by ``rankers.Linear``, whose training
knobs are one :class:`SoftmaxTrainer` config.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..core.config import Config
from ..core.validation import few_threads, resolve_device, split_indices

__all__ = ["SoftmaxTrainer", "softmax_logits", "standardization", "StandardizationSums"]


def _as_param_vector(v: Any, n: int, device: torch.device) -> torch.Tensor:
    t = torch.as_tensor(v, dtype=torch.float32, device=device).reshape(-1)
    if t.numel() == 1:
        t = t.expand(n).clone()
    if t.numel() != n:
        raise ValueError(f"expected 1 or {n} values, got {t.numel()}")
    return t


def _fold_standardization(W: torch.Tensor, b: torch.Tensor, mean: torch.Tensor, inv_scale: torch.Tensor):
    """Weights ``[K, U]`` and bias ``[K]`` on inputs ``(x - mean) * inv_scale`` -> the same map on x."""
    Wr = W * inv_scale[None, :]
    return Wr, b - Wr @ mean


def softmax_logits(
    X: torch.Tensor,
    W: torch.Tensor,
    b: torch.Tensor,
    mean: torch.Tensor | None = None,
    scale: torch.Tensor | None = None,
    chunk_rows: int = 8192,
) -> torch.Tensor:
    """Logits ``[N, P, C]`` of P probes with weights ``W [P, C, U]`` on inputs ``X [N, U]``."""
    P, C, U = W.shape
    Wm = W.reshape(P * C, U)
    bm = b.reshape(P * C)
    if mean is not None:  # ((x - m) / s) W^T + b = x (W / s)^T + (b - W (m / s)): X is never copied
        Wm, bm = _fold_standardization(Wm, bm, mean.to(W.device), scale.to(W.device).reciprocal())
    out = []
    for s in range(0, X.shape[0], chunk_rows):
        xb = X[s : s + chunk_rows].to(W.device, torch.float32)
        out.append(torch.nn.functional.linear(xb, Wm, bm).view(-1, P, C))
    return torch.cat(out) if out else torch.empty(0, P, C, device=W.device)


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

    sums = StandardizationSums()
    for i in range(0, N, StandardizationSums.BLOCK):
        sums.update(chunk(i, min(N, i + StandardizationSums.BLOCK)), head=(lambda: chunk(0, min(N, 512))))
    return sums.result()


class StandardizationSums:
    """The sums behind :func:`standardization`, fed rows in order (chunk by chunk, out of core).

    Chunked sums around a provisional mean (of the first 512 rows): one cache-friendly pass, no
    catastrophic cancellation (torch.var_mean over dim 0 is several times slower on tall
    matrices).  Fed chunks whose lengths are multiples of ``BLOCK`` rows (the last one aside),
    it adds exactly the blocks :func:`standardization` adds, so the result is bit-identical.
    """

    BLOCK = 256

    def __init__(self) -> None:
        self.shift: torch.Tensor | None = None
        self.n = 0

    def update(self, X: torch.Tensor, head: Any = None) -> None:
        """Add rows ``X``; the first call takes the shift from ``head()`` (default its own first 512 rows)."""
        X = torch.as_tensor(X)
        if self.shift is None:
            self.shift = (head() if head is not None else X[:512].float()).mean(0)
            self.s1 = torch.zeros(X.shape[1], dtype=torch.float64, device=X.device)
            self.s2 = torch.zeros_like(self.s1)
        for i in range(0, X.shape[0], self.BLOCK):
            c = X[i: i + self.BLOCK].float() - self.shift
            self.s1 += c.sum(0)
            self.s2 += c.square_().sum(0)
        self.n += X.shape[0]

    def result(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(mean, scale, constant)`` as :func:`standardization` returns them."""
        if self.n == 0:
            raise ValueError("no rows to standardize")
        m1 = self.s1 / self.n
        var = (self.s2 / self.n - m1.square()).clamp_min_(0.0).float()
        mean = (self.shift + m1).float()
        std = var.sqrt()
        constant = std <= 1e-6 * (1.0 + mean.abs())
        scale = torch.where(constant, torch.ones_like(std), std)
        return mean, scale, constant


# ----------------------------------------------------------------------------------------
# the pieces of one training run
# ----------------------------------------------------------------------------------------


@dataclass
class _Problem:
    """What every step needs: sizes, the mask, the folded standardization, the penalties."""

    P: int
    C: int
    U: int
    dev: torch.device
    maskW: torch.Tensor | None
    mean: torch.Tensor | None
    scale: torch.Tensor | None
    l1v: torch.Tensor
    l2v: torch.Tensor
    l2sv: torch.Tensor
    cw: torch.Tensor | None

    def masked(self, W: torch.Tensor) -> torch.Tensor:
        return W * self.maskW if self.maskW is not None else W

    def __post_init__(self) -> None:
        # decided once, so that the steps skip the zero penalty terms without a device sync
        self.l1_rows = self.l1v.repeat_interleave(self.C)[:, None] if bool((self.l1v > 0).any()) else None
        use_l2 = bool((self.l2v > 0).any()) or bool((self.l2sv > 0).any())
        self.l2_pair = (self.l2v, self.l2sv) if use_l2 else (None, None)
        self.inv_scale = self.scale.reciprocal() if self.scale is not None else None

    def grads(self, xb: torch.Tensor, yb: torch.Tensor, W: torch.Tensor, b: torch.Tensor):
        """One step's closed-form gradients."""
        return _softmax_grads(xb, yb, W, b, self.P, self.C, self.maskW, self.mean, self.inv_scale, self.l1_rows,
                              self.l2_pair[0], self.l2_pair[1], self.cw)

    def output(self, W: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``W [P, C, U]``, ``b [P, C]``, masked and detached."""
        with torch.no_grad():
            return self.masked(W.detach()).view(self.P, self.C, self.U).clone(), b.detach().view(self.P, self.C).clone()


def _make_problem(U, n_probes, n_classes, dev, mask, mean, scale, l1, l2, l2_squared, class_weight) -> _Problem:
    P, C = int(n_probes), int(n_classes)
    maskW = None
    if mask is not None:
        maskW = mask.to(dev, torch.float32).unsqueeze(1).expand(P, C, U).reshape(P * C, U)
    return _Problem(
        P, C, U, dev, maskW,
        mean.to(dev) if mean is not None else None,
        scale.to(dev) if scale is not None else None,
        _as_param_vector(l1, P, dev), _as_param_vector(l2, P, dev), _as_param_vector(l2_squared, P, dev),
        class_weight.to(dev, torch.float32) if class_weight is not None else None,
    )


def _init_weights(prob: _Problem, init: str, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``W [P * C, U]`` (nn.Linear's layout: its gradient g^T x is a wide, fast matrix product,
    where the ``[U, P * C]`` layout's x^T g is several times slower for few classes) and ``b``."""
    K, U = prob.P * prob.C, prob.U
    if init == "zeros":
        W = torch.zeros(K, U, device=prob.dev)
        b = torch.zeros(K, device=prob.dev)
    elif init == "torch":  # nn.Linear's default: U(-1/sqrt(U), 1/sqrt(U))
        bound = 1.0 / math.sqrt(U)
        W = (torch.rand(K, U, generator=gen) * 2 - 1).mul_(bound).to(prob.dev)
        b = (torch.rand(K, generator=gen) * 2 - 1).mul_(bound).to(prob.dev)
    else:
        raise ValueError(f"init must be 'zeros' or 'torch', got {init!r}")
    if prob.maskW is not None:
        W.mul_(prob.maskW)
    return W.requires_grad_(True), b.requires_grad_(True)


class _Batches:
    """Mini-batches of the training rows, shuffled by ``gen`` each epoch, read into one buffer."""

    def __init__(self, X, y, rows, batch_size, shuffle, gen, dev):
        self.X = X if X.device == dev else X.to(dev)
        self.y = y.to(dev)
        self.rows = rows.to(dev) if rows is not None else None
        self.N = len(y)
        self.batch_size, self.shuffle, self.gen, self.dev = batch_size, shuffle, gen, dev
        # one reused buffer: a fresh multi-MB batch per step costs page faults every step
        self.buf = torch.empty(min(batch_size, self.N), X.shape[1], dtype=self.X.dtype, device=dev)
        self.steps_per_epoch = max(1, -(-self.N // batch_size))

    def epoch(self):
        order = torch.randperm(self.N, generator=self.gen).to(self.dev) if self.shuffle else None
        for s in range(0, self.N, self.batch_size):
            if order is None and self.rows is None:
                yield self.X[s : s + self.batch_size], self.y[s : s + self.batch_size]
                continue
            pos = order[s : s + self.batch_size] if order is not None else torch.arange(s, min(self.N, s + self.batch_size))
            idx = self.rows[pos] if self.rows is not None else pos
            yield torch.index_select(self.X, 0, idx, out=self.buf[: len(idx)]), self.y[pos]


class _Polyak:
    """Exponential moving average of the weights over about one epoch of steps."""

    def __init__(self, W: torch.Tensor, b: torch.Tensor, steps_per_epoch: int):
        self.W, self.b = W.detach().clone(), b.detach().clone()
        self.decay = 1.0 - 1.0 / steps_per_epoch
        self.n = 0

    @torch.no_grad()
    def update(self, W: torch.Tensor, b: torch.Tensor) -> None:
        self.n += 1
        d = min(self.decay, 1.0 - 1.0 / self.n)  # plain mean over the first steps
        self.W.lerp_(W.detach(), 1 - d)  # d * average + (1 - d) * W, one pass
        self.b.lerp_(b.detach(), 1 - d)


class _BestEpoch:
    """Per-probe early stopping on dev accuracy: keeps each probe's best epoch."""

    def __init__(self, prob: _Problem, X_dev, y_dev, W, b, patience):
        self.prob, self.patience = prob, patience
        self.X, self.y = X_dev.to(prob.dev), y_dev.to(prob.dev)
        self.acc = torch.full((prob.P,), -1.0, device=prob.dev)
        self.W, self.b = W.detach().clone(), b.detach().clone()
        self.since = torch.zeros(prob.P, dtype=torch.long, device=prob.dev)

    @torch.no_grad()
    def update(self, W: torch.Tensor, b: torch.Tensor) -> bool:
        """Score this epoch's weights; True when every probe has run out of patience."""
        p = self.prob
        Wc = p.masked(W)
        logit = softmax_logits(self.X, Wc.view(p.P, p.C, p.U), b.view(p.P, p.C), p.mean, p.scale)
        acc = (logit.argmax(-1) == self.y[:, None]).float().mean(0)  # [P]
        better = acc > self.acc
        cols = (acc >= self.acc).repeat_interleave(p.C)  # ties keep the later epoch, patience runs on
        self.W[cols] = Wc[cols]
        self.b[cols] = b[cols]
        self.acc = torch.maximum(self.acc, acc)
        self.since = torch.where(better, torch.zeros_like(self.since), self.since + 1)
        return self.patience is not None and bool((self.since >= self.patience).all())


def _adam(params: list[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    try:  # the fused kernel saves per-step overhead where this torch has it
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr)


def _train_adam(prob, W, b, batches, *, epochs, lr, average, best, progress, desc):
    """The Adam loop; returns the final (or best-epoch, or averaged) weights and the epochs run."""
    opt = _adam([W, b], lr)
    avg = _Polyak(W, b, batches.steps_per_epoch) if average else None
    epochs_run = 0
    for epoch in tqdm(range(int(epochs)), desc=desc, disable=not progress, leave=False):
        for xb, yb in batches.epoch():
            W.grad, b.grad = prob.grads(xb, yb, W.detach(), b.detach())
            opt.step()
            if avg is not None:
                avg.update(W, b)
        epochs_run = epoch + 1
        current = (avg.W, avg.b) if avg is not None else (W.detach(), b.detach())
        if best is not None and best.update(*current):
            break
    if best is not None:
        return best.W, best.b, epochs_run
    return (avg.W, avg.b, epochs_run) if avg is not None else (W, b, epochs_run)


# ----------------------------------------------------------------------------------------
# the public routine
# ----------------------------------------------------------------------------------------


def softmax_fit(
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
    progress: bool = False,
    desc: str = "probe",
) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Train ``n_probes`` softmax probes together; returns ``W [P, C, U], b [P, C], info``.

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
    bs = batch_size if solver == "adam" else X.shape[0]
    with few_threads(float(bs) * X.shape[1] * n_probes * 17, threshold=2e8):  # threads for the problem size
        return _train_softmax_threaded(X, y, n_classes, n_probes=n_probes, rows=rows, mask=mask, mean=mean,
                                       scale=scale, l1=l1, l2=l2, l2_squared=l2_squared, class_weight=class_weight,
                                       X_dev=X_dev, y_dev=y_dev, epochs=epochs, batch_size=batch_size, lr=lr,
                                       shuffle=shuffle, patience=patience, init=init, solver=solver,
                                       average=average, max_iter=max_iter, l1_smoothing=l1_smoothing, seed=seed,
                                       device=device, progress=progress, desc=desc)


def _train_softmax_threaded(X, y, n_classes, *, n_probes, rows, mask, mean, scale, l1, l2, l2_squared, class_weight,
                            X_dev, y_dev, epochs, batch_size, lr, shuffle, patience, init, solver, average, max_iter,
                            l1_smoothing, seed, device, progress, desc):
    dev = resolve_device(device)
    if rows is not None:  # train on these rows of X (no copy of the training split)
        rows = torch.as_tensor(rows, dtype=torch.long)
        y = y[rows] if len(y) == X.shape[0] else y
    prob = _make_problem(X.shape[1], n_probes, n_classes, dev, mask, mean, scale, l1, l2, l2_squared, class_weight)
    gen = torch.Generator().manual_seed(int(seed))
    W, b = _init_weights(prob, init, gen)
    if solver == "lbfgs":
        return _train_lbfgs(X if rows is None else X[rows], y, prob, W, b, max_iter, l1_smoothing)
    if solver != "adam":
        raise ValueError(f"solver must be 'adam' or 'lbfgs', got {solver!r}")
    batches = _Batches(X, y, rows, batch_size, shuffle, gen, dev)
    has_dev = X_dev is not None and y_dev is not None and len(y_dev) > 0
    best = _BestEpoch(prob, X_dev, y_dev, W, b, patience) if has_dev else None
    Wf, bf, epochs_run = _train_adam(prob, W, b, batches, epochs=epochs, lr=lr, average=average, best=best,
                                     progress=progress, desc=desc)
    W_out, b_out = prob.output(Wf, bf)
    info = {"epochs": epochs_run}
    if has_dev:
        info["dev_accuracy"] = best.acc.cpu().numpy()
    return W_out, b_out, info


def softmax_fit_batches(
    make_batches: Any,
    n_inputs: int,
    n_classes: int,
    *,
    mean: torch.Tensor | None = None,
    scale: torch.Tensor | None = None,
    l1: Any = 0.0,
    l2: Any = 0.0,
    class_weight: torch.Tensor | None = None,
    epochs: int = 10,
    batch_size: int = 256,
    lr: float = 1e-3,
    init: str = "zeros",
    average: bool = False,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = False,
    desc: str = "probe",
) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Softmax probes (one per ``l1``/``l2`` value, one weight matrix) trained with Adam on mini-batches from
    elsewhere (e.g. chunks read from disk).

    ``make_batches(gen)`` returns an object with ``steps_per_epoch`` and ``epoch()`` yielding ``(xb, yb)``;
    ``gen`` is the generator :func:`softmax_fit` seeds with ``seed``, already past the weight
    initialization, so batches drawn from it in the same way give the same run.  Same loss, steps and
    Polyak averaging as :func:`softmax_fit`; no dev set.
    """
    dev = resolve_device(device)
    n_probes = max(torch.as_tensor(l1).numel(), torch.as_tensor(l2).numel())  # one probe per l1 (or l2) value
    prob = _make_problem(int(n_inputs), n_probes, n_classes, dev, None, mean, scale, l1, l2, 0.0, class_weight)
    gen = torch.Generator().manual_seed(int(seed))
    W, b = _init_weights(prob, init, gen)
    batches = make_batches(gen)
    with few_threads(float(batch_size) * n_inputs * 17, threshold=2e8):
        Wf, bf, epochs_run = _train_adam(prob, W, b, batches, epochs=epochs, lr=lr, average=average, best=None,
                                         progress=progress, desc=desc)
    W_out, b_out = prob.output(Wf, bf)
    return W_out, b_out, {"epochs": epochs_run}


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
    # in-place updates (addr_, addcmul_): no [K, U] temporaries beyond sign(W), a step's elementwise cost
    if mean is not None:  # through Wx = W * inv_scale and bx = b - Wx @ mean
        gW.addr_(gb, mean, alpha=-1.0).mul_(inv_scale)
    if l1_rows is not None:
        gW.addcmul_(torch.sign(Weff), l1_rows)
    if l2v is not None:
        sq = torch.linalg.vector_norm(Weff.view(P, -1), dim=1).square()
        coef = l2v / torch.sqrt(sq + 1e-12) + 2.0 * l2sv  # d/dW of l2 ||W|| + l2s ||W||^2, per probe
        gW.addcmul_(Weff, coef.repeat_interleave(C)[:, None])
    if maskW is not None:
        gW.mul_(maskW)
    return gW, gb


def _train_lbfgs(X, y, prob: _Problem, W, b, max_iter, smooth):
    """Full-batch L-BFGS on the same loss, |w| smoothed as sqrt(w^2 + smooth^2) - smooth."""
    P, C, U = prob.P, prob.C, prob.U
    Z = X.to(prob.dev, torch.float32)
    if prob.mean is not None:
        Z = (Z - prob.mean) / prob.scale
    yd = y.to(prob.dev)
    opt = torch.optim.LBFGS([W, b], lr=1.0, max_iter=int(max_iter), history_size=20,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-6, tolerance_change=1e-8)
    wts = prob.cw[yd] if prob.cw is not None else None
    n_eval = [0]

    def closure():
        opt.zero_grad(set_to_none=True)
        Weff = prob.masked(W)
        lp = torch.nn.functional.linear(Z, Weff, b).view(-1, P, C).log_softmax(-1)
        nll = -lp.gather(2, yd.view(-1, 1, 1).expand(-1, P, 1)).squeeze(2)
        loss = (nll * wts[:, None]).sum() / wts.sum() if wts is not None else nll.mean(0).sum()
        W3 = Weff.view(P, C, U)
        sq = W3.square().sum((1, 2))
        loss = loss + (prob.l1v * (torch.sqrt(W3.square() + smooth**2) - smooth).sum((1, 2))).sum()
        loss = loss + (prob.l2v * torch.sqrt(sq + 1e-12)).sum() + (prob.l2sv * sq).sum()
        loss.backward()
        n_eval[0] += 1
        return loss

    opt.step(closure)
    W_out, b_out = prob.output(W, b)
    return W_out, b_out, {"epochs": 0, "evaluations": n_eval[0]}


# ----------------------------------------------------------------------------------------
# the training knobs of rankers.Linear, as one config
# ----------------------------------------------------------------------------------------


#: L-BFGS iterations of a ``SoftmaxTrainer`` fit (``solver="lbfgs"``)
LBFGS_MAX_STEPS = 100


@dataclasses.dataclass(frozen=True)
class SoftmaxTrainer(Config):
    """How ``rankers.Linear`` trains its softmax probe (its ``trainer=``): solver, steps, batches, learning rate.

    The defaults are the ``"fast"`` preset's: standardized inputs, Adam on shuffled mini-batches for the full
    ``max_steps`` epochs (at least ``min_steps`` optimizer steps on small data), weights averaged over about one
    epoch of steps (Polyak), and full-batch L-BFGS instead when X has at most ``lbfgs_below`` values
    (``solver="auto"``). ``Linear.from_preset("neurox")`` / ``"antverg"`` set the published codes' trainers.

    Parameters
    ----------
    max_steps : int
        Adam: epochs (passes over the training rows).
    min_steps : int
        Adam: at least this many optimizer steps (more epochs, at most 200, on small data); 0 = off.
    batch_size : int or "auto"
        Rows per Adam step; ``"auto"``: about 1/80 of the training rows, 64 to 256.
    lr : float or "auto"
        Adam's learning rate; ``"auto"``: ``0.1 / sqrt(n_neurons)``.
    standardize : bool
        Train on standardized inputs (training-split statistics; weights on that scale).
    shuffle : bool
        Shuffle the rows every epoch.
    average : bool
        Polyak averaging of the weights over about one epoch of steps.
    init : {"zeros", "torch"}
        Initial weights: zeros, or ``nn.Linear``'s uniform draw.
    solver : {"auto", "adam", "lbfgs"}
        ``"auto"``: L-BFGS when the training rows hold at most ``lbfgs_below`` values, else Adam.
    lbfgs_below : int
        The size below which ``solver="auto"`` picks L-BFGS.
    dev_size : float
        The dev share for early stopping.
    patience : int or None
        Adam: None trains every epoch; an int stops early: keep the epoch with the best accuracy on a
        ``dev_size`` split (by group) and stop after ``patience`` epochs without improvement (2 was the
        old ``early_stopping=True``). L-BFGS (``LBFGS_MAX_STEPS`` iterations) never stops early.

    Examples
    --------
    >>> from tl_neuronprobe.rankers import Linear, SoftmaxTrainer
    >>> Linear(trainer=SoftmaxTrainer(solver="adam", max_steps=3)).trainer.max_steps
    3
    """

    max_steps: int = 10
    min_steps: int = 300
    batch_size: "int | str" = "auto"
    lr: "float | str" = "auto"
    standardize: bool = True
    shuffle: bool = True
    average: bool = True
    init: str = "zeros"
    solver: str = "auto"
    lbfgs_below: int = 2_000_000
    dev_size: float = 0.1
    patience: "int | None" = None

    def validate(self) -> None:
        if self.solver not in ("auto", "adam", "lbfgs"):
            raise ValueError(f"solver must be 'auto', 'adam' or 'lbfgs', got {self.solver!r}")
        if self.init not in ("zeros", "torch"):
            raise ValueError(f"init must be 'zeros' or 'torch', got {self.init!r}")
        if self.lr != "auto" and not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ValueError(f"lr must be > 0 or 'auto', got {self.lr!r}")
        if self.batch_size != "auto" and not (isinstance(self.batch_size, int) and self.batch_size >= 1):
            raise ValueError(f"batch_size must be an integer >= 1 or 'auto', got {self.batch_size!r}")
        if not (isinstance(self.max_steps, int) and self.max_steps >= 1):
            raise ValueError(f"max_steps must be an integer >= 1, got {self.max_steps!r}")
        if int(self.min_steps) < 0 or (self.patience is not None and int(self.patience) < 1):
            raise ValueError(f"min_steps must be >= 0 and patience >= 1 or None, got {self.min_steps!r}, "
                             f"{self.patience!r}")

    # -- what one fit uses -------------------------------------------------------------------
    def split(self, y: np.ndarray, n_inputs: int, groups: Any, seed: int) -> tuple[str, np.ndarray, np.ndarray]:
        """The solver, and the training and dev rows (a dev split only for early stopping with Adam)."""
        tr, dv = np.arange(len(y)), np.array([], dtype=np.int64)
        if self.patience is not None and self.dev_size and self.dev_size > 0:
            tr, dv = split_indices(len(y), self.dev_size, groups=groups, y=y, seed=seed, min_train_per_class=1)
        solver = self.solver
        if solver == "auto":
            solver = "lbfgs" if len(tr) * n_inputs <= self.lbfgs_below else "adam"
        if solver == "lbfgs":  # no early stopping: train on everything
            tr, dv = np.arange(len(y)), np.array([], dtype=np.int64)
        return solver, tr, dv

    def schedule(self, n_inputs: int, n_train: int) -> tuple[float, int, int]:
        """``(lr, batch_size, epochs)`` for a problem size, "auto" values filled in."""
        lr = 0.1 / np.sqrt(n_inputs) if self.lr == "auto" else self.lr  # logits move ~lr * sqrt(D) a step
        batch_size = int(np.clip(round(n_train / 80), 64, 256)) if self.batch_size == "auto" else self.batch_size
        steps_per_epoch = max(1, -(-n_train // batch_size))
        return lr, batch_size, max(self.max_steps, min(200, -(-self.min_steps // steps_per_epoch)))

    def fit(self, X: np.ndarray, y: np.ndarray, n_classes: int, l1s: list, l2s: list, *, groups: Any = None,
            seed: int = 0, device: str = "cpu", progress: bool = False, desc: str = "linear"):
        """Train one softmax probe per ``(l1s[p], l2s[p])`` on X (one weight matrix); returns
        ``W [P, C, D], b [P, C], mean, scale, info`` (mean/scale None without standardization)."""
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
        solver, tr, dv = self.split(y, Xt.shape[1], groups, seed)
        rows = None if len(tr) == len(y) else torch.from_numpy(tr)  # the training rows, not copied
        mean, scale = standardization(Xt, rows)[:2] if self.standardize else (None, None)
        lr, batch_size, epochs = self.schedule(Xt.shape[1], len(tr))
        dev_rows = torch.from_numpy(dv) if len(dv) else None
        W, b, info = softmax_fit(
            Xt.to(resolve_device(device)), yt, n_classes, n_probes=len(l1s), rows=rows, mean=mean, scale=scale,
            l1=l1s, l2=l2s, X_dev=Xt[dev_rows] if dev_rows is not None else None,
            y_dev=yt[dev_rows] if dev_rows is not None else None, epochs=epochs, batch_size=batch_size,
            lr=lr, shuffle=self.shuffle, patience=self.patience,
            init=self.init, solver=solver, average=self.average, max_iter=LBFGS_MAX_STEPS, seed=seed,
            device=resolve_device(device), progress=progress, desc=desc,
        )
        return W, b, mean, scale, info
