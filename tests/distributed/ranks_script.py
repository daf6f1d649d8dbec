"""Run under ``torchrun --nproc_per_node N ranks_script.py OUT``: the four stages that split neurons (or
interventions) across ranks, each run across the ranks and, on rank 0, again as one process (inside
``distributed.local()``, same process, same threads). Every rank pickles what it got to ``OUT/<stage>.rank<r>.pkl``,
rank 0 the single-process result to ``OUT/<stage>.single.pkl``; ``test_ranks_stages.py`` compares them.
Small on purpose: planted testbeds, a few steps, several chunks / batches / specs / neurons per rank."""

from __future__ import annotations

import pickle
import sys
import time
from pathlib import Path

import torch

import tl_neuronprobe as tnp
from tl_neuronprobe.core import distributed
from tl_neuronprobe.testbeds.descriptions import planted_descriptions

NEURONS = [tnp.Neuron(0, i) for i in range(0, 12, 3)] + [tnp.Neuron(1, i) for i in range(0, 40, 5)]


def stage_textualize(model, corpus):
    """Three methods over 12 neurons in chunks of 2 (6 chunks, two layers): gumbel with the corpus baseline,
    discrete started from the top corpus windows, dense; the seconds column is a timing."""
    common = dict(length=3, seed=5, batch_size=2, progress=False, eval_batch=64)
    runs = [dict(method="gumbel", steps=8, restarts=2, corpus=corpus),
            dict(method="discrete", steps=3, restarts=2, init="corpus", corpus=corpus, candidates=8),
            dict(method="dense", steps=6, restarts=1, corpus=None)]
    return [tnp.textualize(model, NEURONS, **common, **kw).table.drop(columns=["seconds"]) for kw in runs]


def stage_windows(model, corpus):
    """Top windows over a corpus scanned in many small batches (shares of batches per rank)."""
    return tnp.corpus_top_windows(model, corpus, NEURONS, window=3, k=4, batch_size=16)


def stage_used(model, corpus):
    """Two rankings x top/bottom/random x three ks: translate (auto readout) and resample (divergence)."""
    used, unused = model.planted.used["Number"], model.planted.unused["Number"]
    rest = [tnp.Neuron(1, i) for i in range(64) if tnp.Neuron(1, i) not in used + unused]
    rankings = {"used_first": used + unused + rest, "unused_first": unused + used + rest}
    kw = dict(n_bootstrap=200, seed=2, progress=False)
    return [tnp.evaluate_used(model, corpus[:48], "Number", rankings, [1, 2, 4], **kw),
            tnp.evaluate_used(model, corpus[:32], "Number", rankings, [2, 4], method="resample",
                              readout="divergence", n_random=2, **kw)]


def stage_describe(testbed):
    """Both ends of every planted neuron, formulas up to three terms."""
    d = tnp.describe(testbed.acts, concepts=testbed.concepts, seed=3, ends=("top", "bottom"))
    return dict(table=d.table, scores=d.scores, iou=d.iou, q=d.q)


def main(out: Path) -> None:
    torch.set_num_threads(1)
    distributed.setup()
    model = tnp.models.load("planted", seed=0)
    corpus = tnp.testing.planted_corpus(60, seed=1)
    testbed = planted_descriptions(n_sentences=300, seed=0)
    stages = dict(textualize=lambda: stage_textualize(model, corpus),
                  windows=lambda: stage_windows(model, corpus),
                  used=lambda: stage_used(model, corpus),
                  describe=lambda: stage_describe(testbed))
    for name, run in stages.items():
        t = time.perf_counter()
        got = run()
        seconds = time.perf_counter() - t
        (out / f"{name}.rank{distributed.rank()}.pkl").write_bytes(pickle.dumps(got))
        if distributed.is_main():
            with distributed.local():
                t = time.perf_counter()
                (out / f"{name}.single.pkl").write_bytes(pickle.dumps(run()))
            print(f"{name}: {distributed.world_size()} ranks {seconds:.2f} s, one process "
                  f"{time.perf_counter() - t:.2f} s", flush=True)
        distributed.barrier()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
