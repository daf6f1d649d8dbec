"""Run under ``torchrun --nproc_per_node N ranks_script.py OUT``: the four stages that split neurons (or
interventions) across ranks, each run across the ranks and, on rank 0, again as one process (inside
``distributed.local()``, same process, same threads). Every rank pickles what it got to ``OUT/<stage>.rank<r>.pkl``,
rank 0 the single-process result to ``OUT/<stage>.single.pkl``; ``test_ranks_stages.py`` compares them.
Each run also records the work it did (chunks, window batches, specs, neurons: :func:`record_work`) to
``OUT/work.<rank or single>.json``, so the test can check that the ranks split the work rather than repeat it.
Small on purpose: planted testbeds, a few steps, several chunks / batches / specs / neurons per rank."""

from __future__ import annotations

import json
import pickle
import sys
import time
from pathlib import Path

import torch

import tl_neuronprobe as tnp
from tl_neuronprobe.core import distributed
from tl_neuronprobe.descriptions import _describe
from tl_neuronprobe.evaluation import used as _used
from tl_neuronprobe.testbeds.descriptions import planted_descriptions
from tl_neuronprobe.textualization import _api, _problem

NEURONS = [tnp.Neuron(0, i) for i in range(0, 12, 3)] + [tnp.Neuron(1, i) for i in range(0, 40, 5)]


WORK: dict[str, list] = {}


def record_work() -> None:
    """Wrap the per-share steps so each run lists what it computed: textualize chunk indices, corpus window
    batches, sweep specs, described neurons."""
    def wrap(owner, name, what):
        inner = getattr(owner, name)

        def recorded(*args, **kwargs):
            WORK.setdefault(f"{name}", []).append(what(*args, **kwargs))
            return inner(*args, **kwargs)

        setattr(owner, name, recorded)

    wrap(_api, "chunk_generator", lambda seed, chunk, device: chunk)
    wrap(_problem.Problem, "all_neuron_forward", lambda self, windows: int(windows.shape[0]))
    wrap(_used, "run_sweep", lambda sweep, *a, **k: len(sweep.specs))
    wrap(_describe, "_fit_end", lambda data, *a, **k: len(data.neurons))


def stage_textualize(model, corpus):
    """Three methods over 12 neurons in chunks of 2 (6 chunks, two layers): gumbel with the corpus baseline,
    discrete started from the top corpus windows, dense; the seconds column is a timing."""
    from tl_neuronprobe.textualization import Dense, Discrete, Gumbel, TextualizeConfig

    common = TextualizeConfig(length=3, seed=5, batch_size=2, eval_batch=64, corpus=corpus)
    runs = [common.replace(optimizer=Gumbel(max_steps=8, restarts=2)),
            common.replace(optimizer=Discrete(max_steps=3, restarts=2, init="corpus", candidates=8)),
            common.replace(optimizer=Dense(max_steps=6, restarts=1), corpus=None)]
    return [tnp.textualize(model, NEURONS, config, progress=False).table.drop(columns=["seconds"])
            for config in runs]


def stage_windows(model, corpus):
    """Top windows over a corpus scanned in many small batches (shares of batches per rank)."""
    return tnp.corpus_top_windows(model, corpus, NEURONS, length=3, n_windows=4, batch_size=16)


def stage_used(model, corpus):
    """Two rankings x top/bottom/random x three ks: translate (auto readout) and resample (divergence)."""
    used, unused = model.planted.used["Number"], model.planted.unused["Number"]
    rest = [tnp.Neuron(1, i) for i in range(64) if tnp.Neuron(1, i) not in used + unused]
    rankings = {"used_first": used + unused + rest, "unused_first": unused + used + rest}
    from tl_neuronprobe.evaluation.used import Baselines, UsedConfig

    config = UsedConfig(ks=[1, 2, 4], n_bootstrap=200, seed=2)
    resample = config.replace(ks=[2, 4], edit=tnp.interventions.Resample(), readout=tnp.interventions.Divergence(),
                              baselines=Baselines(n_random=2))
    return [tnp.evaluate_used(model, corpus[:48], "Number", rankings, config, progress=False).table,
            tnp.evaluate_used(model, corpus[:32], "Number", rankings, resample, progress=False).table]


def stage_describe(testbed):
    """Both ends of every planted neuron, formulas up to three terms."""
    from tl_neuronprobe.descriptions import DescribeConfig

    d = tnp.describe(testbed.acts, config=DescribeConfig(seed=3, ends=("top", "bottom")), concepts=testbed.concepts)
    return dict(table=d.table, scores=d.scores, iou=d.iou, q=d.q)


def main(out: Path) -> None:
    torch.set_num_threads(1)
    distributed.setup()
    record_work()
    model = tnp.models.load("planted", seed=0)
    corpus = tnp.testing.planted_corpus(60, seed=1)
    testbed = planted_descriptions(n_sentences=300, seed=0)
    stages = dict(textualize=lambda: stage_textualize(model, corpus),
                  windows=lambda: stage_windows(model, corpus),
                  used=lambda: stage_used(model, corpus),
                  describe=lambda: stage_describe(testbed))
    single: dict[str, list] = {}
    for name, run in stages.items():
        t = time.perf_counter()
        got = run()
        seconds = time.perf_counter() - t
        (out / f"{name}.rank{distributed.rank()}.pkl").write_bytes(pickle.dumps(got))
        if distributed.is_main():
            mine = dict(WORK)
            WORK.clear()
            with distributed.local():
                t = time.perf_counter()
                (out / f"{name}.single.pkl").write_bytes(pickle.dumps(run()))
            for key, items in WORK.items():
                single.setdefault(key, []).extend(items)
            WORK.clear()
            WORK.update(mine)
            print(f"{name}: {distributed.world_size()} ranks {seconds:.2f} s, one process "
                  f"{time.perf_counter() - t:.2f} s", flush=True)
        distributed.barrier()
    (out / f"work.rank{distributed.rank()}.json").write_text(json.dumps(WORK))
    if distributed.is_main():
        (out / "work.single.json").write_text(json.dumps(single))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
