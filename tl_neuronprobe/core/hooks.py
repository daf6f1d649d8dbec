"""Hook helpers shared by every stage: read activations at hook points during one forward pass.

Extraction, the used sweep and textualization all need the same thing: ``(name, fn)`` hooks that store what
passes through some hook points (optionally a slice of it, optionally kept in the autograd graph), and a pass
that stops after the deepest hook it needs. :func:`capture_hooks` builds those hooks and :func:`run_capture`
runs them through :meth:`ModelAdapter.forward`, so hooks are removed on every exit path. Not for edits:
interventions write activations through :mod:`tl_neuronprobe.interventions`.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping

import torch

from .adapter import FwdHooks, ModelAdapter, _StopForward
from .neurons import layer_of_hook

#: what to keep of an activation: the tensor itself, or a function of it (e.g. a column slice)
Reader = "Callable[[torch.Tensor], torch.Tensor] | None"


def capture_hooks(names: "Iterable[str] | Mapping[str, Reader]", store: dict[str, torch.Tensor],
                  detach: bool = True) -> FwdHooks:
    """``(name, fn)`` hooks that write each hook point's activation (or ``reader(act)``) into ``store[name]``.

    ``names`` is a list of hook names or a mapping from hook name to a reader. With ``detach=False`` the
    stored tensors stay in the autograd graph (textualization differentiates through them).
    """
    readers = dict(names) if isinstance(names, Mapping) else {name: None for name in names}

    def make(name: str, reader) -> Callable:
        def hook(act: torch.Tensor, hook=None) -> None:  # noqa: ARG001 - TransformerLens hook signature
            value = reader(act) if reader is not None else act
            store[name] = value.detach() if detach else value

        return hook

    return [(name, make(name, reader)) for name, reader in readers.items()]


def stop_when_all_read(reads: FwdHooks, store: dict[str, torch.Tensor]) -> FwdHooks:
    """The read hooks, each ending the pass (``_StopForward``, caught by :meth:`ModelAdapter.forward`) once every
    one of them has stored its value: nothing after the last hook point read is computed."""
    wanted = {name for name, _ in reads}

    def make(fn: Callable) -> Callable:
        def hook(act: torch.Tensor, hook=None) -> None:
            fn(act, hook=hook)
            if wanted.issubset(store):
                raise _StopForward

        return hook

    return [(name, make(fn)) for name, fn in reads]


def deepest_layer(names: Iterable[str]) -> int:
    """The deepest block any of ``names`` sits in (-1 for hooks before the first block, e.g. embeddings)."""
    return max((layer_of_hook(name) for name in names), default=-1)


def run_capture(adapter: ModelAdapter, batch, names: "Iterable[str] | Mapping[str, Reader]",
                extra_hooks: FwdHooks = (), stop: bool = True, detach: bool = True) -> dict[str, torch.Tensor]:
    """One forward pass that captures ``names`` (see :func:`capture_hooks`) and returns ``{name: tensor}``.

    ``extra_hooks`` (e.g. an intervention's edits) run in the same pass, before the reads of the same hook
    point. With ``stop`` the pass ends as soon as every read hook point has fired (e.g. right after
    ``blocks.5.mlp.hook_post``, before that block's MLP output projection), and in any case after the deepest
    block that is read (TransformerLens's ``stop_at_layer``), so no later computation, unembedding or MLM head
    runs.
    """
    store: dict[str, torch.Tensor] = {}
    reads = capture_hooks(names, store, detach=detach)
    stop_at = deepest_layer(name for name, _ in reads) + 1 if stop else None
    if stop:
        reads = stop_when_all_read(reads, store)
    adapter.forward(batch, list(extra_hooks) + reads, stop_at_layer=stop_at, return_type=None)
    missing = [name for name, _ in reads if name not in store]
    if missing:
        raise RuntimeError(f"hook points {missing} did not fire in {adapter.name}'s forward pass")
    return store
