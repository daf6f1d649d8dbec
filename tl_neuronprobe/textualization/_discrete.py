"""``Discrete()``: gradient-guided single-token swaps scored exactly (GCG), run as a population per
neuron with fluency weights and restarts (evolutionary prompt optimization, Thompson et al. 2024)."""

from __future__ import annotations

import numpy as np
import torch
from einops import einsum, rearrange, repeat

from ._problem import Problem, Rows
from ._steps import Best
from ._vocab import TextualizeError

SELECTIONS = ("auto", "member", "population")


def uses_fluency(fluency) -> bool:
    return isinstance(fluency, (tuple, list)) or float(fluency) > 0


def fluency_weights(fluency, restarts: int, device) -> torch.Tensor:
    """Per-member fluency weights: one value for all, or (low, high) log-spaced over the population."""
    if isinstance(fluency, (tuple, list)):
        lo, hi = float(fluency[0]), float(fluency[1])
        if lo <= 0 or hi < lo:
            raise TextualizeError(f"fluency range must be 0 < low <= high, got {fluency}")
        w = np.geomspace(lo, hi, restarts) if restarts > 1 else np.asarray([lo])
    else:
        if float(fluency) < 0:
            raise TextualizeError(f"fluency must be >= 0, got {fluency}")
        w = np.full(restarts, float(fluency))
    return torch.as_tensor(w, dtype=torch.float32, device=device)


def resolve_selection(selection: str, fluency) -> str:
    """``auto``: across the population when the members have different fluency weights (Thompson et al.),
    otherwise each member among its own children (GCG)."""
    if selection not in SELECTIONS:
        raise TextualizeError(f"selection must be one of {', '.join(SELECTIONS)}, got {selection!r}")
    if selection == "auto":
        return "population" if isinstance(fluency, (tuple, list)) else "member"
    return selection


def _proposals(problem: Problem, rows: Rows, cur: torch.Tensor, lam: torch.Tensor, use_ce: bool, k: int,
               gen: torch.Generator) -> torch.Tensor:
    """Top-``k`` tokens per position [R, n, k] by the gradient of the objective w.r.t. a one-hot encoding."""
    n, first = problem.n, 0 if problem.lo > 0 else 1
    embeds = problem.E[cur].detach().requires_grad_(True)
    with problem.autocast():
        act, logits = problem.forward(rows, embeds=embeds, logits=use_ce)
        obj = act - lam * problem.self_ce(logits, problem.allowed[cur]) if use_ce else act
    (g,) = torch.autograd.grad(obj.sum(), [embeds])
    grad = einsum(g.float(), problem.E.float(), "r n d, v d -> r n v")
    if use_ce and n > first:  # the cross-entropy's direct dependence on the swapped token (target term)
        logp = torch.log_softmax(logits.detach()[:, problem.lo - 1 + first: problem.lo + n - 1].float(), -1)
        grad[:, first:] += lam[:, None, None] * logp[..., problem.allowed] / (n - first)
    # ties (a flat activation gives no gradient) are broken at random, so proposals still explore
    scale = grad.abs().amax(dim=-1, keepdim=True) * 1e-6 + 1e-30
    grad = grad + scale * torch.rand(grad.shape, generator=gen, device=grad.device)
    return grad.topk(k, dim=-1).indices


def _children(cur: torch.Tensor, top: torch.Tensor, candidates: int, gen: torch.Generator) -> torch.Tensor:
    """``candidates`` children per row [R, C, n]: one random position swapped for one of its top-k tokens."""
    R, n, k = top.shape
    where = torch.randint(n, (R, candidates), generator=gen, device=cur.device)
    pick = torch.randint(k, (R, candidates), generator=gen, device=cur.device)
    kids = repeat(cur, "r n -> r c n", c=candidates).clone()
    ar = torch.arange(R, device=cur.device)
    kids.scatter_(2, where[..., None], top[ar[:, None], where, pick][..., None])
    return kids


def _select(kids: torch.Tensor, act: torch.Tensor, ce: torch.Tensor, lam: torch.Tensor, use_ce: bool,
            restarts: int, population: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Each member's choice among the children and its objective: among its own children (``member``), or,
    per fluency weight, among the children of the whole population of its neuron (``population``)."""
    R, C, n = kids.shape
    act = rearrange(act, "(r c) -> r c", c=C)
    ce = rearrange(ce, "(r c) -> r c", c=C) if use_ce else torch.zeros_like(act)  # finite: Problem.score checks
    if population:  # every member of a neuron sees the children of all members of that neuron
        pool = lambda t: repeat(rearrange(t, "(m p) c ... -> m (p c) ...", p=restarts),  # noqa: E731
                                "m pc ... -> (m p) pc ...", p=restarts)
        kids, act, ce = pool(kids), pool(act), pool(ce)
    obj, which = (act - lam[:, None] * ce).max(dim=1)
    return kids[torch.arange(R, device=kids.device), which], obj


def discrete(problem: Problem, rows: Rows, config, gen: torch.Generator, bar, eval_batch: int = 512,
             init: torch.Tensor | None = None, **_) -> Best:
    """Iterate (``config``: a ``Discrete``): gradient proposals, children, exact scores, selection; members
    without improvement for ``restart_every`` iterations start again from random tokens."""
    steps, restarts, fluency, selection = config.max_steps, config.restarts, config.fluency, config.selection
    candidates, topk, restart_every = config.candidates, config.top_tokens, config.restart_every
    R, n, V, dev = len(rows), problem.n, problem.n_allowed, problem.device
    use_ce = uses_fluency(fluency)
    population = resolve_selection(selection, fluency) == "population"
    lam = fluency_weights(fluency, restarts, dev).repeat(R // restarts)  # [R]; rows are neuron-major
    weights = lam if use_ce else None
    cur = torch.randint(V, (R, n), generator=gen, device=dev) if init is None else init.clone()
    cur_obj, _, _ = problem.score(rows, problem.allowed[cur], weights, batch=eval_batch)
    best, stale = Best(cur.clone(), cur_obj.clone()), torch.zeros(R, dtype=torch.long, device=dev)
    kid_rows = rows.repeat(candidates)
    kid_weights = lam.repeat_interleave(candidates) if use_ce else None
    for step in range(steps):
        kids = _children(cur, _proposals(problem, rows, cur, lam, use_ce, min(topk, V), gen), candidates, gen)
        _, kid_act, kid_ce = problem.score(kid_rows, problem.allowed[rearrange(kids, "r c n -> (r c) n")],
                                           kid_weights, batch=eval_batch, step=step)
        child, child_obj = _select(kids, kid_act, kid_ce, lam, use_ce, restarts, population)
        improved = child_obj > cur_obj
        cur = torch.where(improved[:, None], child, cur)
        cur_obj = torch.where(improved, child_obj, cur_obj)
        stale = torch.where(improved, torch.zeros_like(stale), stale + 1)
        best.update(cur, cur_obj)
        if restart_every and (step + 1) % restart_every == 0 and step + 1 < steps:
            fresh = torch.randint(V, (R, n), generator=gen, device=dev)
            fresh_obj, _, _ = problem.score(rows, problem.allowed[fresh], weights, batch=eval_batch, step=step)
            reset = stale >= restart_every  # no improvement for a whole period: start afresh
            cur = torch.where(reset[:, None], fresh, cur)
            cur_obj = torch.where(reset, fresh_obj, cur_obj)
            stale = torch.where(reset, torch.zeros_like(stale), stale)
        bar.update(1)
    return best
