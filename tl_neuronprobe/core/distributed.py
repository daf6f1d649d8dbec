"""Many processes through ``torch.distributed``: who am I, which share of the work is mine, gather the results.

Launch any script that calls the package under ``torchrun --nproc_per_node N script.py`` (or several nodes
with ``--nnodes`` and a rendezvous): the stages that split their work call :func:`setup`, which joins the
process group that ``torchrun`` describes in the environment (NCCL when every rank has a GPU, gloo
otherwise). Without ``torchrun`` everything here is the single-process identity: rank 0 of 1, no group.

Work is split into *contiguous* shares (:func:`share`), so gathering the per-rank results in rank order
restores the single-process order exactly. Inside ``with local():`` a rank acts alone (rank 0 of 1), e.g. to
run a stage on rank 0 only.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import time
from datetime import timedelta
from typing import Any, Sequence, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")
_LOCAL = False  # set by local(): this process ignores the group


def launched() -> bool:
    """True when ``torchrun`` (or another launcher) started this process as one of several ranks."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(backend: "str | None" = None, timeout_s: float = 1800.0) -> bool:
    """Join the process group described by the environment if launched as several ranks and not joined yet.

    Returns True when a group with more than one rank is active. ``backend`` defaults to ``nccl`` when CUDA is
    available on this rank and ``gloo`` otherwise.
    """
    if _LOCAL:
        return False
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    if not launched():
        return False
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
    atexit.register(_teardown)  # a group left alive at exit can abort the process ("terminate called ...")
    return dist.get_world_size() > 1


def _teardown(wait_s: float = 10.0) -> None:
    """Destroy the group :func:`setup` created while the interpreter is still fully alive (this runs at exit).

    Why more than ``destroy_process_group``: gloo's worker threads free a finished collective's tensors *after*
    Python has moved on, and freeing a tensor that Python created (``all_gather_object``'s) takes the GIL. If
    that happens once the interpreter has begun to finalize, the thread exits inside C++ and the process aborts
    ("terminate called without an active exception"; seen in about 3% of 2-rank runs under load, core dump:
    ``ProcessGroupGloo::runLoop`` -> ``~AsyncAllgatherWork`` -> ``gil_scoped_acquire``). So the ranks first meet
    in a barrier (gloo; at most ``wait_s`` seconds, e.g. while another rank still writes its results), during
    which the main thread holds no GIL and the workers finish their frees, then a short sleep does the same for
    the frees of the barrier itself."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    if dist.get_backend() == "gloo" and dist.get_world_size() > 1:
        try:
            dist.monitored_barrier(timeout=timedelta(seconds=wait_s))
        except RuntimeError:  # a rank failed or is still busy: tear down anyway
            pass
    dist.destroy_process_group()
    time.sleep(0.05)  # releases the GIL: workers still freeing tensors take it now, not during finalization


def rank() -> int:
    """This process's rank (0 without a group)."""
    return dist.get_rank() if _active() else 0


def world_size() -> int:
    """Number of ranks (1 without a group)."""
    return dist.get_world_size() if _active() else 1


def is_main() -> bool:
    return rank() == 0


def local_device() -> torch.device:
    """The device this rank should use: its own GPU under NCCL (``LOCAL_RANK``), else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
    return torch.device("cpu")


def share(n: int, rank_: "int | None" = None, world: "int | None" = None) -> range:
    """The contiguous share of ``range(n)`` that belongs to ``rank_`` (balanced: sizes differ by at most one)."""
    rank_ = rank() if rank_ is None else rank_
    world = world_size() if world is None else world
    base, extra = divmod(n, world)
    lo = rank_ * base + min(rank_, extra)
    return range(lo, lo + base + (rank_ < extra))


def idle_ranks(n: int, world: "int | None" = None) -> list[int]:
    """The ranks whose :func:`share` of ``n`` items is empty (none when ``n`` is at least the number of ranks)."""
    world = world_size() if world is None else world
    return [r for r in range(world) if not share(n, r, world)]


def my_share(items: Sequence[T]) -> list[T]:
    """This rank's contiguous share of ``items``."""
    return [items[i] for i in share(len(items))]


def gather(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank (pickled through the group; ``[obj]`` without one)."""
    if not _active():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank."""
    if not _active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def barrier() -> None:
    if _active():
        dist.barrier()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` over ranks in place (gloo needs CPU tensors; NCCL GPU ones) and return it."""
    if _active():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


@contextlib.contextmanager
def local():
    """Within the block this process acts alone, rank 0 of 1, even in a group: every stage does all its work
    here (for a stage run on one rank only, or a single-process reference beside a distributed run)."""
    global _LOCAL
    before, _LOCAL = _LOCAL, True
    try:
        yield
    finally:
        _LOCAL = before


def _active() -> bool:
    return not _LOCAL and dist.is_available() and dist.is_initialized()
