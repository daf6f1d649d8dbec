"""Run under ``torchrun --nproc_per_node 2 attribution_ranks_script.py OUT``: attribute_used (first and second
order, with verification) across the ranks and, on rank 0, again as one process inside ``distributed.local()``.
Every rank pickles its tables to ``OUT/<run>.rank<r>.pkl`` (rank 0 also ``OUT/<run>.single.pkl``) and the sentence
batches it estimated to ``OUT/work.rank<r>.json`` (``work.single.json``)."""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import torch

import tl_neuronprobe as tnp
from tl_neuronprobe import interventions as iv
from tl_neuronprobe.core import distributed
from tl_neuronprobe.evaluation import attribution as _attribution
from tl_neuronprobe.evaluation.attribution import AttributionConfig, Verify

WORK: list[int] = []


def record_batches() -> None:
    inner = _attribution._Estimator.batch

    def recorded(self, sent_idx, batch_index):
        WORK.append(batch_index)
        return inner(self, sent_idx, batch_index)

    _attribution._Estimator.batch = recorded


def runs():
    model = tnp.models.load("planted")
    corpus = tnp.testing.planted_corpus(64, seed=0)
    common = dict(layers=(0, 1), verify=Verify(top=6, n_random=6), batching=tnp.evaluation.used.UsedBatching(
        batch_size=8))
    configs = {"identity": AttributionConfig(edit=iv.Zero(), readout=iv.Identity(), **common),
               "divergence": AttributionConfig(edit=iv.Mean(), readout=iv.Divergence(), n_samples=2, **common)}
    return {name: (lambda c=c: tnp.attribute_used(model, corpus, "Number", c, progress=False))
            for name, c in configs.items()}


def main(out: Path) -> None:
    torch.set_num_threads(1)
    record_batches()
    distributed.setup()
    for name, run in runs().items():
        got = run()
        (out / f"{name}.rank{distributed.rank()}.pkl").write_bytes(pickle.dumps((got.table, got.rankings)))
    (out / f"work.rank{distributed.rank()}.json").write_text(json.dumps(WORK))
    if distributed.is_main():
        WORK.clear()
        with distributed.local():
            for name, run in runs().items():
                got = run()
                (out / f"{name}.single.pkl").write_bytes(pickle.dumps((got.table, got.rankings)))
        (out / "work.single.json").write_text(json.dumps(WORK))
    distributed.barrier()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
