"""Textualization across 2 processes (torchrun, gloo on the CPU) against 1, on this machine.

One ``torchrun --standalone --nproc_per_node 2`` launch of ``ranks_bench_textualize.py``: 64 planted-model
neurons (gumbel, 20 steps, 2 restarts, 4 chunks of 16) timed across both ranks and on rank 0 alone, in
interleaved rounds (alternating which goes first); the best of each side is compared, so load from other
processes affects both alike. Only the textualize call is timed (not torch's start-up or the model build).

Two checks. In the default suite, the work split: each rank's CPU seconds in a 2-rank round against rank 0's alone
(CPU time counts what a process computed, so another job on the cores barely moves it; a rank repeating the
others' work measures 1x or more, a clean split about 0.5x). Under the `goal` marker, the wall-clock speed-up,
which needs the two cores free.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from timing import bests_and_noise, widened

SCRIPT = Path(__file__).with_name("ranks_bench_textualize.py")
ROUNDS = 3
#: The goal for the wall-clock speed-up. Measured here (2 cores shared with other sessions): 1.22x (load average 6,
#: noise 0.58), 1.42x (noise 0.15), 1.88x (load average 2.7, noise 0.09). 2x is the ceiling of 2 cores.
GOAL = 1.5
#: The regression floor of the default suite: the busiest rank's CPU seconds in a 2-rank round at most this share of
#: one process's (best rounds each side); the regression it names, a rank repeating the others' work, is 1.0.
CPU_SHARE_CEILING, CPU_SHARE_REGRESSION = 0.75, 1.0


def interleaved(rounds: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(SCRIPT),
           str(rounds)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"torchrun failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def measured() -> dict:
    return interleaved(ROUNDS)


def test_two_ranks_split_the_work(benchmark, measured):
    res = benchmark.pedantic(lambda: measured, rounds=1, iterations=1)  # records; the launch is the fixture's
    one_cpu = min(res["cpu"][0]["one"])
    two_cpu = [min(rank["two"]) for rank in res["cpu"]]
    share = max(two_cpu) / one_cpu
    _, noise = bests_and_noise({"one": res["cpu"][0]["one"], **{f"two{r}": rank["two"] for r, rank in
                                                               enumerate(res["cpu"])}})
    ceiling = widened(CPU_SHARE_CEILING, CPU_SHARE_REGRESSION, noise)
    benchmark.extra_info.update(one_cpu_s=one_cpu, two_cpu_s=two_cpu, cpu_share=share, noise=noise)
    print(f"\ntextualize {res['neurons']} neurons: rank 0 alone {one_cpu:.2f} CPU s; 2 ranks "
          f"{', '.join(f'{c:.2f}' for c in two_cpu)} CPU s each: busiest rank {share:.2f}x one process "
          f"(ceiling {CPU_SHARE_CEILING}x, {ceiling:.2f}x within the CPU-time noise {noise:.3f})")
    assert share <= ceiling, (f"the busiest of 2 ranks computed {share:.2f}x what one process computes alone: the "
                              f"work is not split (ceiling {CPU_SHARE_CEILING}x, a rank repeating the work is 1x)")


@pytest.mark.goal
def test_two_ranks_vs_one(benchmark, measured, goal):
    res = benchmark.pedantic(lambda: measured, rounds=1, iterations=1)
    one, two = res["best"]["one"], res["best"]["two"]
    ratio = one / two
    _, noise = bests_and_noise(res["times"])
    benchmark.extra_info.update(one_s=one, two_s=two, speedup=ratio, noise=noise, neurons=res["neurons"],
                                parked_cpu_s=res["parked_cpu_s"])
    print(f"\ntextualize {res['neurons']} neurons: 1 process {one:.2f} s, 2 processes {two:.2f} s, speed-up "
          f"{ratio:.2f}x, noise {noise:.3f} (best of {ROUNDS} interleaved rounds; rank 1 parked "
          f"{max(res['parked_cpu_s']):.2f} CPU s)")
    goal.check("textualize, 2 ranks / 1 process wall-clock speed-up", ratio, GOAL, unit="x")
    goal.assert_met()
