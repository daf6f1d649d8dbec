"""The batched intervention engine: many neuron edits of one sentence batch in one forward pass, read by a readout.

Not for choosing *which* neurons to edit (the used evaluation plans that) nor for single edits by hand (use an edit's
``bind``, e.g. ``Zero().bind(model, neurons)``). Every intervention of a sweep is a :class:`Spec` (its
neurons and their weights); :func:`run_sweep` runs, per sentence batch, one clean pass and then all specs as
extra rows of batched passes (the batch repeated, repetition ``r`` edited with spec ``r``'s weights), with the
same arithmetic as the public interventions (:func:`~tl_neuronprobe.interventions.apply_edit`):

- ``batched``: every row runs the whole model;
- ``cached`` (``HookedTransformer`` only, first edited layer above 0): rows start from the clean pass's residual
  stream at the first edited layer (``start_at_layer``), so the blocks below run once per batch;
- ``naive``: one forward pass per (spec, batch) through the bound intervention objects (the reference).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterator, NamedTuple, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..core.adapter import Batch, FwdHooks, ModelAdapter
from ..core.hooks import capture_hooks
from ..core.neurons import Neuron, hook_name
from . import _edits as edits
from ._specs import EDITS, Edit
from .readouts import Output, Readout

__all__ = ["Spec", "Prepared", "SweepResult", "Sweep", "STRATEGIES", "choose_strategy", "run_readout",
           "repeat_batch", "run_sweep"]

STRATEGIES = ("auto", "batched", "cached", "naive")


@dataclass
class Spec:
    """One intervention of a sweep: ``neurons`` edited with per-neuron weights ``alpha`` (1 except translation).

    ``ranking``, ``selection``, ``k`` and ``draw`` say where it comes from (for tables; the engine ignores them).
    """

    ranking: str
    selection: str
    k: int
    draw: int
    neurons: list[Neuron]
    alpha: np.ndarray


class Prepared(NamedTuple):
    """A sentence batch ready for the sweep: the batch, the attribute words' tokens (``word_mask``), the tokens
    to edit (``mask``) and the edit values over the sweep's neurons (``[n_neurons]`` or ``[b, p, n_neurons]``,
    ``None`` for zero ablation)."""

    batch: Batch
    word_mask: torch.Tensor
    mask: torch.Tensor
    values: torch.Tensor | None


@dataclass
class SweepResult:
    """Per-unit metrics ``{metric: [n_specs, n_units]}``, each unit's sentence, and what the sweep cost."""

    metrics: dict[str, np.ndarray]
    unit_sentence: np.ndarray
    strategy: str
    forward_passes: int
    batches: int
    seconds: float


class Sweep:
    """The specs of a sweep as one weight matrix ``A [n_specs, n_neurons]`` over the union of their neurons."""

    def __init__(self, adapter: ModelAdapter, specs: Sequence[Spec], edit: Edit,
                 neurons: Sequence[Neuron] | None = None):
        """``edit``: an edit object (:data:`~tl_neuronprobe.interventions.EDITS`; its ``kind`` says shift or
        replace). ``neurons``: the columns of ``A`` (default: the sorted union of the specs' neurons); a share of a
        larger sweep's specs passes that sweep's, so its rows compute exactly what they compute there."""
        if not isinstance(edit, Edit):
            raise TypeError(f"edit must be one of {sorted(EDITS)} as an object (e.g. Translate()), got {edit!r}")
        if not specs:
            raise ValueError("a sweep needs at least one spec")
        self.adapter, self.specs, self.edit, self.kind = adapter, list(specs), edit, edit.kind
        self.neurons: list[Neuron] = sorted({n for s in self.specs for n in s.neurons}) if neurons is None \
            else list(neurons)
        pos = {n: j for j, n in enumerate(self.neurons)}
        A = np.zeros((len(self.specs), len(self.neurons)), dtype=np.float32)
        self.spec_cols: list[np.ndarray] = []
        for r, s in enumerate(self.specs):
            cols = np.asarray([pos[n] for n in s.neurons], dtype=np.int64)
            A[r, cols] = s.alpha
            self.spec_cols.append(cols)
        self.A = torch.from_numpy(A).to(adapter.device)
        self.groups = {h: (c.to(adapter.device), i.to(adapter.device))
                       for h, (c, i) in edits.group_by_hook(self.neurons).items()}
        self.views = {h: edits.UnitColumns.of(self.neurons, i) for h, (_, i) in self.groups.items()}

    @property
    def first_layer(self) -> int:
        return min(n.layer for n in self.neurons)

    def batched_hooks(self, A: torch.Tensor, mask: torch.Tensor, values: torch.Tensor | None, B: int) -> FwdHooks:
        """Hooks editing a batch repeated ``A.shape[0]`` times: repetition r uses neuron weights ``A[r]``."""
        maskf = mask.to(torch.float32)
        out: FwdHooks = []
        for name, (cols, uidx) in self.groups.items():
            view = self.views[name]
            if view.two_hooks:
                out.append((view.read_hook, view.capture))
            out.append((view.write_hook(name), self._batched_hook(name, cols, A[:, uidx],
                                                                  None if values is None else values[..., uidx],
                                                                  maskf, B)))
        return out

    def _batched_hook(self, name: str, cols, A_h, V_h, maskf, B: int) -> Callable:
        view = self.views[name]

        def hook(act, hook=None):  # noqa: ARG001 - TransformerLens hook signature
            rows, p = act.shape[:2]
            if rows % B or rows // B != A_h.shape[0] or p != maskf.shape[1]:
                raise RuntimeError(f"batched intervention at {name}: activation {tuple(act.shape)} does not "
                                   f"match {A_h.shape[0]} repetitions of [{B}, {maskf.shape[1]}]")
            flat_cur = view.read(act, cols)
            cur = flat_cur.reshape(A_h.shape[0], B, p, len(cols))
            w = maskf[None, :, :, None].to(cur.dtype) * A_h[:, None, None, :].to(cur.dtype)
            v = None if V_h is None else (V_h[None] if V_h.ndim == 3 else V_h).to(cur.dtype)
            new = edits.apply_edit(self.kind, cur, w, v)
            return view.write(act, cols, flat_cur, new.reshape(rows, p, len(cols)))

        return hook

    def single(self, r: int, mask: torch.Tensor, values: torch.Tensor | None) -> edits.Intervention:
        """Spec ``r`` as a public intervention object (the naive strategy)."""
        spec, cols = self.specs[r], torch.as_tensor(self.spec_cols[r], device=mask.device)
        if values is None:  # zero ablation
            return edits._ZeroHooks(self.adapter, spec.neurons, positions=mask)
        vals = values[..., cols]
        if self.kind == "shift":
            return edits._TranslateHooks(self.adapter, spec.neurons, vals, spec.alpha, positions=mask)
        return edits._SetValuesHooks(self.adapter, spec.neurons, vals, positions=mask)


def choose_strategy(adapter: ModelAdapter, first_layer: int, strategy: str = "auto") -> str:
    """``auto`` is ``cached`` where it can run (a HookedTransformer edited above layer 0), else ``batched``."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    can_cache = adapter.generation == "hooked" and first_layer > 0
    if strategy == "cached" and not can_cache:
        raise ValueError("strategy='cached' needs a HookedTransformer and an intervened layer above 0 "
                         f"(have {adapter.generation}, first intervened layer {first_layer}); use 'batched'")
    if strategy == "auto":
        return "cached" if can_cache else "batched"
    return strategy


def run_readout(adapter: ModelAdapter, inp, hooks: FwdHooks, readout: Readout, extra: FwdHooks = (),
                **kwargs) -> Output:
    """One forward pass with ``hooks`` giving what ``readout`` reads (logits and/or the final hidden states)."""
    store: dict[str, torch.Tensor] = {}
    last = hook_name("resid.post", adapter.n_layers - 1)
    reads = capture_hooks([last], store) if readout.needs_hidden else []
    logits = adapter.forward(inp, list(hooks) + list(extra) + reads,
                             stop_at_layer=None if readout.needs_logits else adapter.n_layers,
                             return_type="logits" if readout.needs_logits else None, **kwargs)
    return Output(logits if readout.needs_logits else None, store.get(last))


def repeat_batch(batch: Batch, times: int) -> Batch:
    """``batch`` stacked ``times`` times along the batch dimension."""
    return Batch(batch.input_ids.repeat(times, 1), batch.attention_mask.repeat(times, 1),
                 batch.word_of_token.repeat(times, 1), padded=batch.padded)


def _chunks(sweep: Sweep, readout: Readout, B: int, P: int, max_tokens: int) -> Iterator[torch.Tensor]:
    """Row blocks of ``sweep.A``: at most ``max_tokens`` tokens (and ~2 GiB of logits) per batched pass."""
    per = max(1, max_tokens // max(1, B * P))
    if readout.needs_logits:
        per = max(1, min(per, (1 << 29) // max(1, B * P * sweep.adapter.d_vocab * 4)))
    for lo in range(0, sweep.A.shape[0], per):
        yield sweep.A[lo:lo + per]


def _sweep_batch(sweep: Sweep, prep: Prepared, sent_idx: list[int], readout: Readout, strategy: str,
                 max_tokens: int) -> tuple[list[dict[str, torch.Tensor]], int]:
    """All specs on one sentence batch: the readout's comparisons and the number of forward passes."""
    adapter, batch = sweep.adapter, prep.batch
    B, P = batch.input_ids.shape
    plan = readout.plan(batch, sent_idx, prep.word_mask, prep.mask)
    store: dict[str, torch.Tensor] = {}
    L0 = sweep.first_layer
    keep = capture_hooks([hook_name("resid.pre", L0)], store) if strategy == "cached" else []
    ref = readout.clean(run_readout(adapter, batch, [], readout, keep), plan)
    parts, passes = [], 1
    if strategy == "naive":
        for r in range(len(sweep.specs)):
            single = sweep.single(r, prep.mask, prep.values)
            parts.append(readout.compare(run_readout(adapter, batch, single.hooks(), readout), ref, plan, 1))
            passes += 1
        return parts, passes
    for A in _chunks(sweep, readout, B, P, max_tokens):
        n = A.shape[0]
        hooks = sweep.batched_hooks(A, prep.mask, prep.values, B)
        if strategy == "cached":
            out = run_readout(adapter, store[hook_name("resid.pre", L0)].repeat(n, 1, 1), hooks, readout,
                              start_at_layer=L0, attention_mask=batch.attention_mask.repeat(n, 1))
        else:
            out = run_readout(adapter, repeat_batch(batch, n), hooks, readout)
        parts.append(readout.compare(out, ref, plan, n))
        passes += 1
    return parts, passes


def run_sweep(sweep: Sweep, batches: Sequence[list[int]], prepare: Callable[[list[int]], Prepared],
              readout: Readout, strategy: str = "auto", max_tokens: int = 16384,
              progress: bool = False) -> SweepResult:
    """Run every spec of ``sweep`` on every sentence batch (``prepare(indices)`` builds one) and read the effect.

    ``readout`` must be set up already (:meth:`Readout.setup`). Returns the readout's per-unit metrics.
    """
    strategy = choose_strategy(sweep.adapter, sweep.first_layer, strategy)
    raw: dict[str, list[torch.Tensor]] = {}
    n_forward = 0
    start = time.perf_counter()
    with torch.inference_mode():
        for sent_idx in tqdm(batches, disable=not progress, desc=f"used ({readout.name}, {strategy})"):
            parts, passes = _sweep_batch(sweep, prepare(sent_idx), sent_idx, readout, strategy, max_tokens)
            n_forward += passes
            for key in parts[0]:
                raw.setdefault(key, []).append(torch.cat([p[key] for p in parts], 0))
    metrics = readout.finalize({k: torch.cat(v, 1).cpu().numpy() for k, v in raw.items()})
    return SweepResult(metrics, readout.units_sentences(), strategy, n_forward, len(batches),
                       time.perf_counter() - start)
