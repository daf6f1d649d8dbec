"""Pieces every optimizer's step loop shares: the best-so-far state kept on the device, exact scoring of
candidate token sets, and seeded device generators. Not an optimizer itself."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from einops import rearrange

from ._problem import Problem, Rows


@dataclass
class Best:
    """Best-so-far of one optimization batch: tokens (allowed-index space) and their objective per row, and
    for ``dense`` the mean cosine to those tokens and the optimized free vectors (at the end of the run)."""

    tokens: torch.Tensor  # [R, n] indices into problem.allowed
    value: torch.Tensor  # [R] objective used to pick
    similarity: torch.Tensor | None = None  # [R]
    vectors: torch.Tensor | None = None  # [R, n, D]

    @classmethod
    def empty(cls, problem: Problem, rows: int, dense: bool = False) -> "Best":
        dev = problem.device
        best = cls(torch.zeros(rows, problem.n, dtype=torch.long, device=dev), torch.full((rows,), -math.inf,
                                                                                           device=dev))
        if dense:
            best.similarity = torch.zeros(rows, device=dev)
        return best

    def update(self, tokens: torch.Tensor, value: torch.Tensor, sim: torch.Tensor | None = None) -> None:
        """Keep, per row, the better of the stored and new candidates (on the device, no synchronization)."""
        better = value > self.value
        self.tokens = torch.where(better[:, None], tokens, self.tokens)
        self.value = torch.where(better, value, self.value)
        if sim is not None:
            self.similarity = torch.where(better, sim, self.similarity)


def pick_candidates(problem: Problem, rows: Rows, cands: torch.Tensor, eval_batch: int
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact activation of C candidates per row [R, C, n] (allowed-index space); the best candidate per row
    and its activation."""
    R, C, _ = cands.shape
    _, act, _ = problem.score(rows.repeat(C), problem.allowed[rearrange(cands, "r c n -> (r c) n")],
                              batch=eval_batch)
    best, which = rearrange(act, "(r c) -> r c", c=C).max(dim=1)
    return cands[torch.arange(R, device=cands.device), which], best


def generator(seed: int, device: torch.device) -> torch.Generator:
    """A device generator seeded with ``seed`` (every random draw of a run comes from one)."""
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


def chunk_generator(seed: int, chunk: int, device: torch.device) -> torch.Generator:
    """The generator of chunk ``chunk`` of a run's neurons: ``seed`` itself for the first chunk, a seed derived
    from ``(seed, chunk)`` for the others, so a chunk's draws do not depend on which process ran the chunks
    before it (runs split across ranks give the single-process result)."""
    if chunk == 0:
        return generator(seed, device)
    derived = np.random.SeedSequence([int(seed) % 2**64, int(chunk)]).generate_state(1, np.uint64)[0]
    return generator(int(derived) >> 1, device)


def best_per_neuron(values: torch.Tensor, n_neurons: int, restarts: int) -> torch.Tensor:
    """Row index of the best restart of each neuron (rows are neuron-major)."""
    per = rearrange(values, "(n r) -> n r", r=restarts)
    return per.argmax(dim=1) + torch.arange(n_neurons, device=values.device) * restarts
