"""The house timing rule for benchmarks: both sides interleaved, several rounds, bests compared, noise measured."""

from __future__ import annotations

import time
from typing import Any, Callable


def interleaved_times(sides: dict[str, Callable[[], Any]], rounds: int,
                      clock: Callable[[], float] = time.perf_counter) -> dict[str, list[float]]:
    """Run the sides in turn (alternating which goes first) for ``rounds`` rounds; every side's times, in order
    (``clock``: wall time by default; ``time.process_time`` counts only this process's CPU time)."""
    times: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            t = clock()
            sides[name]()
            times[name].append(clock() - t)
    return times


def bests_and_noise(times: dict[str, list[float]]) -> tuple[dict[str, float], float]:
    """Each side's best time and the noise: the larger relative gap between a side's best and median time (what
    load adds to a round)."""
    noise = max(sorted(ts)[len(ts) // 2] / min(ts) - 1.0 for ts in times.values())
    return {name: min(ts) for name, ts in times.items()}, noise


def interleaved_bests(sides: dict[str, Callable[[], Any]], rounds: int) -> tuple[dict[str, float], float]:
    """:func:`interleaved_times`, then :func:`bests_and_noise`."""
    return bests_and_noise(interleaved_times(sides, rounds))


def ratio_spread(numerator: list[float], denominator: list[float]) -> float:
    """The noise of a throughput ratio: half the interquartile range of the per-round ratios (the two sides of a
    round ran back to back, so load common to both cancels)."""
    ratios = sorted(n / d for n, d in zip(numerator, denominator))
    q1, q3 = ratios[len(ratios) // 4], ratios[(3 * len(ratios)) // 4]
    return (q3 - q1) / 2


def widened(bound: float, regression: float, noise: float) -> float:
    """A regression floor (or ceiling) widened by the noise measured in the same run, never past halfway to the
    regression it names: a floor ``bound > regression`` is lowered by ``noise * bound``, a ceiling
    ``bound < regression`` raised by it, the step capped at ``|bound - regression| / 2``. So a busy machine widens
    the check, and no amount of noise lets the regression itself pass."""
    if bound == regression:
        raise ValueError("a bound must differ from the regression it names")
    step = min(max(noise, 0.0) * abs(bound), abs(bound - regression) / 2)
    return bound - step if bound > regression else bound + step
