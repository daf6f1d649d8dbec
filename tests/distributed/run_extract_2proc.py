"""Launched by the tests under ``torchrun --standalone --nproc_per_node 2``: streamed extraction of a seeded tiny
model over a synthetic corpus into ``argv[1]``, the shards split over the ranks; then the same in memory (rows
gathered on every rank), which must equal it on every rank.

``argv[2]`` (optional) is a shard count after which rank 1 dies (``os._exit``) without a word: a killed rank;
``default`` instead leaves the block size to extraction (sized from the corpus and the number of ranks);
``sparse`` stores the rows sparse (each rank writes its shards' own files, rank 0 joins them).
"""

import os
import sys

import torch

torch.set_num_threads(1)

import tl_neuronprobe as tnp  # noqa: E402
from tl_neuronprobe.core import distributed  # noqa: E402
from tl_neuronprobe.data import _shards  # noqa: E402
from tl_neuronprobe.data.extraction import ExtractConfig  # noqa: E402

N_SENTENCES, BLOCK = 120, 16  # 8 shards


def corpus_and_model():
    return tnp.Corpus.synthetic(N_SENTENCES, seed=0), tnp.testing.tiny_model(n_layers=2, d_mlp=64, seed=0)


def die_after(n_shards: int) -> None:
    """Make rank 1 exit abruptly once it has written ``n_shards`` shards (their records included)."""
    write, count = _shards.ShardStore.write, [0]

    def dying(self, shard, block, rank):
        if rank == 1 and count[0] == n_shards:
            os._exit(17)  # no cleanup, no exception: like a killed process
        write(self, shard, block, rank)
        count[0] += 1

    _shards.ShardStore.write = dying


if __name__ == "__main__":
    block = None if sys.argv[2:] == ["default"] else BLOCK
    storage = "sparse" if sys.argv[2:] == ["sparse"] else "auto"
    if len(sys.argv) > 2 and block is not None and storage != "sparse":
        die_after(int(sys.argv[2]))
    corpus, model = corpus_and_model()
    acts = tnp.extract(model, corpus, ExtractConfig(sentences_per_block=block, storage=storage), out_dir=sys.argv[1],
                       progress=False)
    assert distributed.world_size() == 2, distributed.world_size()
    in_memory = tnp.extract(model, corpus, ExtractConfig(sentences_per_block=block),
                            progress=False)  # rows gathered on every rank
    assert torch.equal(in_memory.X, acts.X), "in-memory extraction on 2 ranks differs from the streamed one"
    print(f"rank {distributed.rank()}: {tuple(acts.X.shape)}", flush=True)
