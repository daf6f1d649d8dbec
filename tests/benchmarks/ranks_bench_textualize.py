"""Run under ``torchrun --standalone --nproc_per_node 2 ranks_bench_textualize.py ROUNDS``: textualization of
64 planted-model neurons (gumbel, 4 chunks of 16) across the 2 ranks and, interleaved with it, on rank 0 alone
(``distributed.local()``, rank 1 parked in a sleeping wait, not a spinning collective). Prints one JSON line:
every round's times, each side's best, rank 1's CPU seconds while parked (near 0 = it left the core free), and
each rank's CPU seconds per round of each side (``cpu``: what each rank computed, whatever the load).
"""

from __future__ import annotations

import json
import sys
import time

import torch
import torch.distributed as dist

import tl_neuronprobe as tnp
from tl_neuronprobe.core import distributed
from tl_neuronprobe.textualization import Gumbel, TextualizeConfig

NEURONS = [tnp.Neuron(1, i) for i in range(64)]
SETTINGS = TextualizeConfig(optimizer=Gumbel(max_steps=20, restarts=2), length=3, batch_size=16, corpus=None, seed=0)


def parked_wait(store: dist.Store, key: str) -> float:
    """Rank 1 sleeps until rank 0 sets ``key``; returns the CPU seconds it used meanwhile."""
    cpu = time.process_time()
    while not store.check([key]):
        time.sleep(0.02)
    return time.process_time() - cpu


def main(rounds: int) -> None:
    torch.set_num_threads(1)
    distributed.setup()
    store = dist.distributed_c10d._get_default_store()
    model = tnp.testing.planted_model()
    tnp.textualize(model, NEURONS[:4], SETTINGS.replace(optimizer=Gumbel(max_steps=2, restarts=2)),
                   progress=False)  # warm up both paths
    times: dict[str, list[float]] = {"one": [], "two": []}
    cpu: dict[str, list[float]] = {"one": [], "two": []}
    parked = []
    for r in range(rounds):
        for side in ("one", "two") if r % 2 == 0 else ("two", "one"):
            distributed.barrier()
            t, c = time.perf_counter(), time.process_time()
            if side == "two":
                tnp.textualize(model, NEURONS, SETTINGS, progress=False)
                distributed.barrier()
            elif distributed.is_main():
                with distributed.local():
                    tnp.textualize(model, NEURONS, SETTINGS, progress=False)
                store.set(f"done{r}", "1")
            else:
                parked.append(parked_wait(store, f"done{r}"))
            times[side].append(time.perf_counter() - t)
            cpu[side].append(time.process_time() - c)
    parked = distributed.gather(parked)[-1]
    cpu_by_rank = distributed.gather(cpu)
    if distributed.is_main():
        print(json.dumps(dict(times=times, best={k: min(v) for k, v in times.items()}, parked_cpu_s=parked,
                              cpu=cpu_by_rank, neurons=len(NEURONS), config=SETTINGS.to_dict())))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
