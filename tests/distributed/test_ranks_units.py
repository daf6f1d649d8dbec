"""The pieces that make split runs equal to single-process ones, checked in one process (no torchrun):
per-chunk generators, the tie-exact top-k merge, ``distributed.local()``."""

from __future__ import annotations

import torch

from tl_neuronprobe.core import distributed
from tl_neuronprobe.textualization._corpus import first_k
from tl_neuronprobe.textualization._steps import chunk_generator, generator


def draws(g: torch.Generator) -> torch.Tensor:
    return torch.rand(5, generator=g)


def test_chunk_generators_first_is_the_seed_others_differ():
    cpu = torch.device("cpu")
    assert torch.equal(draws(chunk_generator(7, 0, cpu)), draws(generator(7, cpu)))
    streams = [draws(chunk_generator(7, c, cpu)) for c in range(4)]
    assert all(not torch.equal(a, b) for i, a in enumerate(streams) for b in streams[i + 1:])
    assert torch.equal(draws(chunk_generator(7, 3, cpu)), streams[3])  # a function of (seed, chunk) alone
    assert not torch.equal(draws(chunk_generator(8, 3, cpu)), streams[3])


def test_first_k_breaks_ties_by_index_so_any_split_merges_to_the_same():
    gen = torch.Generator().manual_seed(0)
    values = torch.randint(0, 4, (6, 40), generator=gen).float()  # many ties
    index = torch.arange(40).expand(6, -1)
    whole_v, whole_i = first_k(values, index, 7)
    for cut in (1, 13, 20, 39):
        parts = [first_k(values[:, a:b], index[:, a:b], 7) for a, b in ((0, cut), (cut, 40))]
        v, i = first_k(torch.cat([p[0] for p in parts], 1), torch.cat([p[1] for p in parts], 1), 7)
        assert torch.equal(v, whole_v) and torch.equal(i, whole_i)
    # the definition: largest values first, then smaller index
    for row in range(6):
        expect = sorted(range(40), key=lambda j: (-values[row, j].item(), j))[:7]
        assert whole_i[row].tolist() == expect


def test_local_is_the_single_process_identity():
    with distributed.local():
        assert not distributed.setup()
        assert (distributed.rank(), distributed.world_size()) == (0, 1)
        assert distributed.gather("x") == ["x"]
    assert distributed.world_size() == 1  # no group here either way
