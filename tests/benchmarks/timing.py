"""The house timing rule for benchmarks: both sides interleaved, several rounds, bests compared, noise measured."""

from __future__ import annotations

import time
from typing import Any, Callable


def interleaved_bests(sides: dict[str, Callable[[], Any]], rounds: int) -> tuple[dict[str, float], float]:
    """Run the sides in turn (alternating which goes first) for ``rounds`` rounds; return each side's best time
    and the noise: the larger relative gap between a side's best and median time (what load adds to a round)."""
    times: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            t = time.perf_counter()
            sides[name]()
            times[name].append(time.perf_counter() - t)
    noise = max(sorted(ts)[len(ts) // 2] / min(ts) - 1.0 for ts in times.values())
    return {name: min(ts) for name, ts in times.items()}, noise
