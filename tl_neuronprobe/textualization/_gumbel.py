"""``Gumbel()``: free logits per position relaxed by Gumbel-softmax into mixtures of token embeddings
(Poerner et al. 2018), with the temperature schedules the package offers: the default anneal over the run
and the paper's two published ones, exactly."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from einops import einsum, rearrange

from ._problem import Problem, Rows
from ._steps import Best, pick_candidates
from ._vocab import TextualizeError


@dataclass(frozen=True)
class Schedule:
    """Temperature at step ``s`` (0-based): ``max(floor, start * decay ** max(0, s - warmup))``."""

    start: float
    decay: float
    floor: float
    warmup: int = 0

    def temperature(self, step: int) -> float:
        return max(self.floor, self.start * self.decay ** max(0, step - self.warmup))


#: the published settings (Poerner et al. 2018): temperature schedule, Gumbel samples per step, Adam learning
#: rate and steps (``poerner``: "up to" 200k steps; ``poerner-bert``: their BERT variant)
SCHEDULES: dict[str, dict[str, Any]] = {
    "poerner": dict(schedule=Schedule(2.0, 0.99995, 0.1), samples=64, lr=1e-3, steps=200_000),
    "poerner-bert": dict(schedule=Schedule(2.0, 0.9995, 0.1, warmup=200), samples=64, lr=0.1, steps=3000),
}


def resolve_schedule(schedule: str, temperature: tuple[float, float], steps: int) -> Schedule:
    """``"anneal"``: geometric from ``temperature[0]`` to ``temperature[1]`` over ``steps``; or a published
    schedule by name (:data:`SCHEDULES`)."""
    if schedule == "anneal":
        t0, t1 = (float(t) for t in temperature)
        if not 0 < t1 <= t0:
            raise TextualizeError(f"temperature must be (start, end) with start >= end > 0, got {temperature}")
        return Schedule(t0, (t1 / t0) ** (1.0 / max(steps - 1, 1)), t1)
    if schedule not in SCHEDULES:
        raise TextualizeError(f"unknown schedule {schedule!r}; choose 'anneal' or one of {', '.join(SCHEDULES)}")
    return SCHEDULES[schedule]["schedule"]


def gumbel(problem: Problem, rows: Rows, config, gen: torch.Generator, bar, eval_every: int = 10,
           eval_batch: int = 512, **_) -> Best:
    """Gumbel-softmax relaxation of free logits per position (``config``: a ``Gumbel``); the argmax n-gram and
    every sample's hard n-gram are scored exactly every ``eval_every`` steps and the best is kept."""
    steps, lr, samples = config.max_steps, config.lr, config.samples
    schedule = resolve_schedule(config.schedule, config.temperature, steps)
    R, n, V = len(rows), problem.n, problem.n_allowed
    theta = (0.01 * torch.randn(R, n, V, generator=gen, device=problem.device)).requires_grad_(True)
    opt = torch.optim.Adam([theta], lr=lr)
    srows = rows.repeat(samples)
    best = Best.empty(problem, R)
    for step in range(steps):
        u = torch.rand(R, samples, n, V, generator=gen, device=problem.device).clamp_(1e-9, 1 - 1e-9)
        noisy = theta[:, None] - torch.log(-torch.log(u))  # Gumbel noise
        mix = torch.softmax(noisy / schedule.temperature(step), dim=-1)
        with problem.autocast():
            embeds = einsum(mix.to(problem.E.dtype), problem.E, "r s n v, v d -> r s n d")
            act, _ = problem.forward(srows, embeds=rearrange(embeds, "r s n d -> (r s) n d"))
        loss = -rearrange(act, "(r s) -> r s", s=samples).mean(dim=1).sum()  # rows independent
        (theta.grad,) = torch.autograd.grad(loss, [theta])
        opt.step()
        if (step + 1) % eval_every == 0 or step == steps - 1:
            with torch.no_grad():
                cands = torch.cat([theta.argmax(-1)[:, None], noisy.argmax(-1)], dim=1)  # [R, 1 + S, n]
                best.update(*pick_candidates(problem, rows, cands, eval_batch))
        bar.update(1)
    return best


def steps_to_floor(schedule: Schedule) -> int:
    """The first step at which the temperature reaches its floor."""
    if schedule.decay >= 1:
        return 0 if schedule.start <= schedule.floor else math.inf
    return schedule.warmup + math.ceil(math.log(schedule.floor / schedule.start) / math.log(schedule.decay))
