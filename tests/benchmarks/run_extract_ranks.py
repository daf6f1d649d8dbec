"""Launched by test_bench_distributed_extract.py under ``torchrun --standalone --nproc_per_node 2``: streamed
extraction of a seeded model built from a config (4 layers, d_model 256, d_mlp 1024) on one rank alone and on
both ranks, in interleaved rounds, each timed from a barrier before to a barrier after. Rank 0 prints one JSON
line: the times of each side, each rank's CPU seconds per round of each side (``cpu``) and the tokens.

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/benchmarks/run_extract_ranks.py OUT 3

"One process" is rank 0 extracting as a single process (no group: ``WORLD_SIZE=1`` and the group hidden) while
rank 1 waits in a barrier, so both sides run in the same processes under the same load, alternately.
"""

import contextlib
import json
import os
import sys
import time
from unittest import mock

import torch

torch.set_num_threads(1)

import tl_neuronprobe as tnp  # noqa: E402
from tl_neuronprobe.core import distributed  # noqa: E402
from tl_neuronprobe.core.adapter import ModelAdapter  # noqa: E402
from tl_neuronprobe.data.extraction import ExtractConfig  # noqa: E402

N_SENTENCES, BLOCK = 360, 24  # 15 shards


def workload():
    """The model, the corpus and its token count (the same in every process: seeded)."""
    model = tnp.testing.tiny_model(n_layers=4, d_model=256, n_heads=4, d_mlp=1024, n_ctx=64, seed=0)
    corpus = tnp.Corpus.synthetic(N_SENTENCES, seed=0)
    tokens = sum(len(t) for t in ModelAdapter(model).tokenize_sentences([s.words for s in corpus.sentences]))
    return model, corpus, tokens


@contextlib.contextmanager
def single_process():
    """This rank runs as if launched alone: no group, WORLD_SIZE 1."""
    with mock.patch.object(distributed, "_active", lambda: False), mock.patch.dict(os.environ, WORLD_SIZE="1"):
        yield


def timed(run) -> tuple[float, float]:
    """Wall seconds barrier to barrier, and this rank's CPU seconds for ``run`` alone."""
    distributed.barrier()
    t = time.perf_counter()
    c = time.process_time()
    run()
    c = time.process_time() - c
    distributed.barrier()
    return time.perf_counter() - t, c


def main(out: str, rounds: int) -> None:
    distributed.setup()
    model, corpus, tokens = workload()

    def both(r):
        tnp.extract(model, corpus, ExtractConfig(sentences_per_block=BLOCK), out_dir=f"{out}/two-{r}", progress=False)

    def alone(r):
        if distributed.is_main():
            with single_process():
                tnp.extract(model, corpus, ExtractConfig(sentences_per_block=BLOCK), out_dir=f"{out}/one-{r}",
                            progress=False)

    times = {"one": [], "two": []}
    cpu = {"one": [], "two": []}
    for r in range(rounds + 1):  # round 0 warms up
        for side in (("one", "two") if r % 2 == 0 else ("two", "one")):
            t, c = timed(lambda: (alone if side == "one" else both)(r))
            if r:
                times[side].append(t)
                cpu[side].append(c)
    cpu_by_rank = distributed.gather(cpu)
    if distributed.is_main():
        print(json.dumps({**times, "cpu": cpu_by_rank, "tokens": tokens}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
