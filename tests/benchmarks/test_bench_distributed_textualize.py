"""Textualization across 2 processes (torchrun, gloo on the CPU) against 1, on this machine.

One ``torchrun --standalone --nproc_per_node 2`` launch of ``ranks_bench_textualize.py``: 64 planted-model
neurons (gumbel, 20 steps, 2 restarts, 4 chunks of 16) timed across both ranks and on rank 0 alone, in
interleaved rounds (alternating which goes first); the best of each side is compared, so load from other
processes affects both alike. Only the textualize call is timed (not torch's start-up or the model build).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).with_name("ranks_bench_textualize.py")
ROUNDS = 3
#: The floor asserted, less the run's measured noise. Measured here (2 cores shared with other sessions):
#: 1.22x (load average 6, noise 0.58), 1.42x (noise 0.15), 1.88x (load average 2.7, noise 0.09). 2x is the
#: ceiling of 2 cores and is not asserted; a rank repeating the others' work would measure about 1x or less.
FLOOR = 1.1


def interleaved(rounds: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(SCRIPT),
           str(rounds)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"torchrun failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_two_ranks_vs_one(benchmark):
    # pedantic runs the measurement once, with or without --benchmark-disable (its stats are not used)
    res = benchmark.pedantic(interleaved, args=(ROUNDS,), rounds=1, iterations=1)
    one, two = res["best"]["one"], res["best"]["two"]
    ratio = one / two
    noise = max(sorted(ts)[len(ts) // 2] / min(ts) - 1.0 for ts in res["times"].values())
    benchmark.extra_info.update(one_s=one, two_s=two, speedup=ratio, noise=noise, neurons=res["neurons"],
                                parked_cpu_s=res["parked_cpu_s"])
    print(f"\ntextualize {res['neurons']} neurons: 1 process {one:.2f} s, 2 processes {two:.2f} s, speed-up "
          f"{ratio:.2f}x, noise {noise:.3f} (best of {ROUNDS} interleaved rounds; rank 1 parked "
          f"{max(res['parked_cpu_s']):.2f} CPU s)")
    assert ratio >= FLOOR - noise, f"2 processes are only {ratio:.2f}x 1 (floor {FLOOR}x within noise {noise:.3f})"
