"""``Dense()``: free input vectors per position in the token-embedding space, pulled towards the token
manifold by a growing penalty and read out as their nearest tokens (Baeumel et al. 2023). The vectors
themselves are kept: they are the neuron's dense representation."""

from __future__ import annotations

import math

import torch
from torch.nn.functional import normalize

from ._problem import Problem, Rows
from ._steps import Best


def dense(problem: Problem, rows: Rows, config, gen: torch.Generator, bar, eval_every: int = 10,
          eval_batch: int = 512, **_) -> Best:
    """Optimize free vectors [R, n, D] (``config``: a ``Dense``); every ``eval_every`` steps their nearest tokens
    are scored exactly and the best tokens are kept; the vectors at the end of the run are the neuron's dense
    representation."""
    steps, lr, penalty = config.max_steps, config.lr, config.penalty
    R, n = len(rows), problem.n
    E = problem.E.float()
    D = E.shape[1]
    En = normalize(E, dim=-1)
    radius = E.norm(dim=-1).median()
    # start off the manifold (random directions at the typical token norm); the penalty then grows from 0 to
    # full weight over the run, so early steps explore freely and late steps settle near real tokens
    noise = torch.randn(R, n, D, generator=gen, device=problem.device)
    x = (E.mean(dim=0) + radius * normalize(noise, dim=-1)).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr * float(radius) / math.sqrt(D))  # lr in units of a typical coordinate
    best = Best.empty(problem, R, dense=True)
    for step in range(steps):
        lam = penalty * (step + 1) / steps
        with problem.autocast():
            act, _ = problem.forward(rows, embeds=x)
        near = (normalize(x, dim=-1) @ En.T).max(dim=-1).values  # [R, n]
        off = (1 - near).mean(dim=-1) + ((x.norm(dim=-1) - radius) / radius).pow(2).mean(dim=-1)
        loss = (-act + lam * off).sum()
        (x.grad,) = torch.autograd.grad(loss, [x])
        opt.step()
        if (step + 1) % eval_every == 0 or step == steps - 1:
            with torch.no_grad():
                near, idx = (normalize(x, dim=-1) @ En.T).max(dim=-1)
                _, val, _ = problem.score(rows, problem.allowed[idx], batch=eval_batch)
                best.update(idx, val, near.mean(dim=-1))
        bar.update(1)
    best.vectors = x.detach().float()
    return best
