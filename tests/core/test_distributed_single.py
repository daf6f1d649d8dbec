"""The distributed helpers without a launcher are the single-process identity; shares tile the range."""

import pytest

from tl_neuronprobe.core import distributed as D


@pytest.mark.parametrize("n", [0, 1, 5, 17])
@pytest.mark.parametrize("world", [1, 2, 3, 8])
def test_shares_tile_the_range_in_order(n, world):
    shares = [D.share(n, r, world) for r in range(world)]
    assert [i for s in shares for i in s] == list(range(n))
    sizes = [len(s) for s in shares]
    assert max(sizes) - min(sizes) <= 1


def test_single_process_identity(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not D.setup()
    assert (D.rank(), D.world_size(), D.is_main()) == (0, 1, True)
    assert D.gather({"a": 1}) == [{"a": 1}]
    assert D.broadcast(3) == 3
    assert D.my_share("abc") == ["a", "b", "c"]
