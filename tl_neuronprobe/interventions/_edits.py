"""Bound interventions: an edit (:mod:`._specs`) applied to chosen neurons of one model, as TransformerLens hooks.

Every intervention acts on a chosen set of neurons (any site of :mod:`tl_neuronprobe.neurons`, several sites and
layers at once) at chosen positions: every position (``"all"``), the tokens of the words that carry an attribute
(``"attribute"``, or a :class:`WordPositions` from :func:`attribute_positions`), or any boolean mask
``[batch, pos]``. An intervention is

- a list of TransformerLens ``(hook_name, fn)`` pairs (:meth:`Intervention.hooks`), one per hook point, to pass
  to ``model.run_with_hooks`` or ``model.hooks``;
- a context manager that adds those hooks and always removes them, even when the body raises::

      pos = tnp.interventions.attribute_positions(model, corpus[:32], "Number")
      with tnp.interventions.Zero().bind(model, ["L1.N5", "L1.N23"], positions=pos):
          logits = model(pos.batch.input_ids)

- composable: ``a + b`` or :func:`compose` runs both (in that order where they share a hook point).

The arithmetic is shared with the batched sweep (:mod:`tl_neuronprobe.interventions.sweep`), so one intervention
run alone and the same intervention run as one row block of a batched pass give the same numbers:
``shift`` edits compute ``h + w * v`` and ``replace`` edits ``h + w * (v - h)``, with ``w`` the product of
the position mask and the neuron's weight (``alpha`` for translation, 1 otherwise).
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch

from ..core.adapter import Batch, FwdHooks, ModelAdapter
from ..data.corpus import Corpus, Sentence
from ..core.neurons import Neuron
from ..core.units import Dictionary, registered
from ._positions import WordPositions, attribute_positions, check_mask, token_labels

__all__ = [
    "Intervention", "Compose", "WordPositions", "attribute_positions", "compose", "scaled_alpha",
    "translation_delta", "class_means", "group_by_hook", "apply_edit", "token_labels", "write_columns", "UnitColumns",
    "hook_of",
]

Positions = "str | torch.Tensor | np.ndarray | WordPositions | None"


# -------------------------------------------------------------------------------------------- arithmetic
def apply_edit(kind: str, cur: torch.Tensor, weight: torch.Tensor, value: torch.Tensor | None) -> torch.Tensor:
    """The one formula every intervention uses: ``shift`` is ``h + w v``; ``replace`` is ``h + w (v - h)``."""
    if kind == "shift":
        return cur + weight * value
    if kind == "replace":
        return cur + weight * ((value if value is not None else 0.0) - cur)
    raise ValueError(f"unknown edit kind {kind!r}")


def write_columns(act: torch.Tensor, cols: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
    """A copy of ``act`` (flattened to [..., width]) with columns ``cols`` replaced by ``new``."""
    flat = act.reshape(*act.shape[:2], -1)
    out = flat.clone()
    out[..., cols] = new.to(out.dtype)
    return out.reshape(act.shape)


def group_by_hook(neurons: Sequence[Neuron]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """group key -> (column indices within the hook's flattened width, or unit indices of the dictionary read
    there; positions in ``neurons``). One group per hook point and site: the key is the hook name, or
    ``"hook|site"`` for a second site at the same hook point (neurons and an SAE's latents of one layer);
    :func:`hook_of` gives the hook name back."""
    groups: dict[str, tuple[list[int], list[int]]] = {}
    first_site: dict[str, str] = {}
    for j, n in enumerate(neurons):
        site = first_site.setdefault(n.hook_name, n.site)
        key = n.hook_name if site == n.site else f"{n.hook_name}|{n.site}"
        cols, idx = groups.setdefault(key, ([], []))
        cols.append(n.index)
        idx.append(j)
    return {h: (torch.as_tensor(c, dtype=torch.long), torch.as_tensor(i, dtype=torch.long))
            for h, (c, i) in groups.items()}


def hook_of(key: str) -> str:
    """The hook point of a :func:`group_by_hook` key."""
    return key.split("|", 1)[0]


class UnitColumns:
    """How the units of one hook point are read and written: neurons are columns of the hook's flattened
    activation; a dictionary's units are encoded from it and written back through its decoder, so changing unit
    ``i`` by ``dz`` adds ``dz * W_dec[i]`` and keeps what the dictionary does not explain. A transcoder reads at one
    hook point and writes at another: :meth:`capture` (a hook at :attr:`read_hook`) encodes there, and the edit
    runs at :attr:`write_hook` on what was captured in the same pass."""

    def __init__(self, dictionary: "Dictionary | None" = None):
        self.dictionary = dictionary
        self._z: torch.Tensor | None = None

    @classmethod
    def of(cls, neurons: Sequence[Neuron], idx: torch.Tensor) -> "UnitColumns":
        """The view of the group ``neurons[idx]`` (one hook point, one site: see :func:`group_by_hook`)."""
        n = neurons[int(idx[0])]
        return cls(registered(n.site, n.layer) if n.is_latent else None)

    @property
    def two_hooks(self) -> bool:
        """Whether the units are read at one hook point and written at another (a transcoder)."""
        return self.dictionary is not None and self.dictionary.write_hook != self.dictionary.hook

    @property
    def read_hook(self) -> "str | None":
        return self.dictionary.hook if self.two_hooks else None

    def write_hook(self, key: str) -> str:
        """Where the edit of the group ``key`` (a :func:`group_by_hook` key) runs."""
        return self.dictionary.write_hook if self.two_hooks else hook_of(key)

    def capture(self, act: torch.Tensor, hook=None) -> None:  # noqa: ARG002 - TransformerLens hook signature
        """A hook at :attr:`read_hook`: encode the units there for the edit at :attr:`write_hook`."""
        self._z = self.dictionary.encode(act)

    def read(self, act: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """``[b, p, len(cols)]``: the units' current values."""
        if self.dictionary is None:
            return act.reshape(*act.shape[:2], -1)[..., cols]
        if self.two_hooks:
            z, self._z = self._z, None
            if z is None or z.shape[:2] != act.shape[:2]:
                raise RuntimeError(f"the transcoder's input hook {self.dictionary.hook} did not run before its "
                                   f"output hook {self.dictionary.write_hook} in this pass")
            return z[..., cols]
        return self.dictionary.encode(act)[..., cols]

    def write(self, act: torch.Tensor, cols: torch.Tensor, cur: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        """``act`` with the units ``cols`` moved from ``cur`` to ``new``."""
        if self.dictionary is None:
            return write_columns(act, cols, new)
        return self.dictionary.shift(act, cols, new - cur)

    def grad(self, g: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """The gradient with respect to the units ``cols`` from the gradient ``g`` with respect to the hook's
        activation where the units are written (a dictionary's unit moves it along its decoder row; a
        transcoder's, the activation at its output hook)."""
        g = g.reshape(*g.shape[:2], -1)
        if self.dictionary is None:
            return g[..., cols]
        return g @ self.dictionary._on(g).W_dec[cols].T

    def full(self, act: torch.Tensor) -> torch.Tensor:
        """``[b, p, n_units]``: every unit of the hook point."""
        return act.reshape(*act.shape[:2], -1) if self.dictionary is None else self.dictionary.encode(act)


def scaled_alpha(n_ranked: int, beta: float = 8.0, ranks: "Sequence[int] | np.ndarray | None" = None,
                 floor: float = 1e-3) -> np.ndarray:
    """Rank-decaying translation strength: ``alpha_i = beta * (floor / beta) ** (rank_i / (n_ranked - 1))``.

    ``n_ranked`` is the length of the ranking, ``ranks`` the ranks of the intervened neurons (default
    0..n_ranked-1), so the best neuron gets ``beta`` and the last of the ranking ``floor`` (Antverg & Belinkov's
    scaled translation).
    """
    if beta <= 0:
        raise ValueError(f"beta must be positive, got {beta}")
    ranks = np.arange(n_ranked) if ranks is None else np.asarray(ranks, dtype=np.float64)
    if n_ranked <= 1:
        return np.full(len(ranks), float(beta))
    return beta * (floor / beta) ** (np.asarray(ranks, dtype=np.float64) / (n_ranked - 1))


def class_means(X: Any, y: Any, n_classes: int | None = None) -> torch.Tensor:
    """Per-class mean rows ``[n_classes, n_neurons]`` of ``X`` for integer labels ``y``; empty classes raise."""
    X = torch.as_tensor(np.asarray(X) if not isinstance(X, torch.Tensor) else X).float()
    y = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y).long()
    C = int(y.max()) + 1 if n_classes is None else int(n_classes)
    counts = torch.bincount(y, minlength=C).float()
    if bool((counts == 0).any()):
        raise ValueError(f"classes {torch.nonzero(counts == 0).flatten().tolist()} have no examples")
    sums = torch.zeros(C, X.shape[1], dtype=X.dtype).index_add_(0, y, X)
    return sums / counts[:, None]


def translation_delta(means: torch.Tensor, labels: torch.Tensor, target: "str | int | torch.Tensor" = "next"
                      ) -> torch.Tensor:
    """``q(target) - q(source)`` per position ``[b, p, n]`` (zero where ``labels`` is -1).

    ``target='next'`` is the next class in the fixed cyclic order of ``means``' rows; an int is one class for
    every position; a tensor ``[b, p]`` gives each position's target class.
    """
    means = torch.as_tensor(means).float()
    C = means.shape[0]
    labels = torch.as_tensor(labels).long()
    src = labels.clamp(min=0)
    if isinstance(target, str):
        if target != "next":
            raise ValueError(f"target must be 'next', a class index or a [batch, pos] tensor, got {target!r}")
        tgt = (src + 1) % C
    elif isinstance(target, (int, np.integer)):
        if not 0 <= int(target) < C:
            raise ValueError(f"target class {target} out of range (0..{C - 1})")
        tgt = torch.full_like(src, int(target))
    else:
        tgt = torch.as_tensor(target, device=labels.device).long().clamp(min=0)
    means = means.to(labels.device)
    delta = means[tgt] - means[src]
    return delta * (labels >= 0)[..., None].to(delta.dtype)


# -------------------------------------------------------------------------------------------- interventions
class Intervention:
    """An edit bound to neurons of one model and the positions to touch: its hooks, a context manager.

    Built by an edit's ``bind`` (``tnp.interventions.Zero().bind(model, neurons, positions=...)``); subclasses
    (private, one per edit) implement :meth:`_value` (what the edit reads) and set ``kind`` (``shift`` or ``replace``).
    """

    kind = "replace"
    label = "intervention"

    def __init__(self, model, neurons: "Sequence[Neuron | str] | Neuron | str", positions: Positions = "all",
                 corpus: "Corpus | Sequence[Sentence] | None" = None, attribute: str | None = None):
        self.adapter = ModelAdapter.wrap(model)
        if isinstance(neurons, (str, Neuron)):
            neurons = [neurons]
        neurons = self.adapter.check_neurons(list(neurons))
        if not neurons:
            raise ValueError("an intervention needs at least one neuron")
        seen: dict[Neuron, int] = {}
        for n in neurons:
            if n in seen:
                raise ValueError(f"neuron {n} is listed twice")
            seen[n] = 1
        self.neurons: list[Neuron] = neurons
        self.groups = group_by_hook(neurons)
        self.word_positions: WordPositions | None = positions if isinstance(positions, WordPositions) else None
        mask = check_mask(positions)
        if isinstance(mask, str):  # 'attribute': needs the sentences the forward pass will run
            if corpus is None or attribute is None:
                raise ValueError("positions='attribute' needs corpus= (the sentences of the batch you will run, in "
                                 "order) and attribute=; or pass attribute_positions(...) as positions")
            self.word_positions = attribute_positions(self.adapter, corpus, attribute)
            mask = self.word_positions.mask
        self.mask: torch.Tensor | None = mask
        self._stack: contextlib.ExitStack | None = None

    # -- what subclasses provide
    def _value(self, idx: torch.Tensor, b: int, p: int, device, dtype) -> torch.Tensor | None:
        """Values (replace) or shifts (shift) for the neurons ``self.neurons[idx]``: [n] or [b, p, n]."""
        return None

    def _weight(self, idx: torch.Tensor, device, dtype) -> torch.Tensor:
        """Per-neuron weight (1 unless overridden, e.g. translation's alpha)."""
        return torch.ones(len(idx), device=device, dtype=dtype)

    # -- hooks
    def _mask_for(self, name: str, b: int, p: int, device) -> torch.Tensor:
        if self.mask is None:
            return torch.ones(b, p, dtype=torch.bool, device=device)
        m = self.mask.to(device)
        if m.ndim == 1:
            if m.shape[0] != p:
                raise ValueError(f"{self.label}: the position mask covers {m.shape[0]} positions but the activation "
                                 f"at {name} has {p}; build the mask from the batch you run")
            return m[None].expand(b, p)
        if tuple(m.shape) != (b, p):
            raise ValueError(f"{self.label}: the position mask has shape {tuple(m.shape)} but the activation at "
                             f"{name} is [batch={b}, pos={p}]; build the mask from the batch you run")
        return m

    def _make_hook(self, name: str, cols: torch.Tensor, idx: torch.Tensor, view: UnitColumns) -> Callable:
        def hook(act: torch.Tensor, hook=None) -> torch.Tensor:  # noqa: ARG001 - TransformerLens signature
            b, p = act.shape[:2]
            mask = self._mask_for(name, b, p, act.device)
            c = cols.to(act.device)
            cur = view.read(act, c)
            w = mask[..., None].to(cur.dtype) * self._weight(idx, act.device, cur.dtype)
            value = self._value(idx, b, p, act.device, cur.dtype)
            return view.write(act, c, cur, apply_edit(self.kind, cur, w, value))

        return hook

    def hooks(self, adapter: "ModelAdapter | None" = None) -> FwdHooks:
        """TransformerLens ``(hook_name, fn)`` pairs, one per hook point touched (and, for a transcoder's latents, one
        more reading its input hook)."""
        if adapter is not None and ModelAdapter.wrap(adapter).model is not self.adapter.model:
            raise ValueError(f"{self.label} was built for another model")
        out: FwdHooks = []
        for name, (cols, idx) in self.groups.items():
            view = UnitColumns.of(self.neurons, idx)
            if view.two_hooks:
                out.append((view.read_hook, view.capture))
            out.append((view.write_hook(name), self._make_hook(view.write_hook(name), cols, idx, view)))
        return out

    def run(self, batch: "Batch | torch.Tensor", **kwargs):
        """Forward ``batch`` with this intervention (hooks removed afterwards)."""
        return self.adapter.forward(batch, self.hooks(), **kwargs)

    # -- context manager and composition
    def __enter__(self) -> "Intervention":
        if self._stack is not None:
            raise RuntimeError(f"{self!r} is already active; use it in one `with` at a time")
        stack = contextlib.ExitStack()
        try:
            stack.enter_context(self.adapter.hooks(self.hooks()))
        except BaseException:
            stack.close()
            raise
        self._stack = stack
        return self

    def __exit__(self, *exc) -> bool:
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.__exit__(*exc)
        return False

    def __add__(self, other: "Intervention") -> "Compose":
        return compose(self, other)

    def __repr__(self) -> str:
        shown = ", ".join(str(n) for n in self.neurons[:4]) + (", ..." if len(self.neurons) > 4 else "")
        where = "all positions" if self.mask is None else f"mask {tuple(self.mask.shape)}"
        return f"{self.label}([{shown}] ({len(self.neurons)} neurons), {where})"


class Compose(Intervention):
    """Several interventions on one model, applied in order (an earlier one's output feeds a later one)."""

    label = "composed intervention"

    def __init__(self, parts: Sequence[Intervention]):  # noqa: D107 - no neurons of its own
        flat: list[Intervention] = []
        for part in parts:
            if not isinstance(part, Intervention):
                raise TypeError(f"can only compose interventions, got {type(part).__name__}")
            flat += part.parts if isinstance(part, Compose) else [part]
        if not flat:
            raise ValueError("compose() needs at least one intervention")
        model = flat[0].adapter.model
        if any(p.adapter.model is not model for p in flat):
            raise ValueError("composed interventions must act on the same model")
        self.parts = flat
        self.adapter = flat[0].adapter
        self.neurons = [n for p in flat for n in p.neurons]
        self.mask = None
        self._stack = None

    def hooks(self, adapter: "ModelAdapter | None" = None) -> FwdHooks:
        return [h for p in self.parts for h in p.hooks(adapter)]

    def __repr__(self) -> str:
        return " + ".join(repr(p) for p in self.parts)


def compose(*interventions: "Intervention | Iterable[Intervention]") -> Compose:
    """One intervention that applies each given one in order."""
    parts: list[Intervention] = []
    for x in interventions:
        parts += [x] if isinstance(x, Intervention) else list(x)
    return Compose(parts)


def _values_tensor(values: Any, n: int, what: str) -> torch.Tensor:
    t = torch.as_tensor(values.detach() if isinstance(values, torch.Tensor) else np.asarray(values, dtype=np.float32))
    t = t.float()
    if t.ndim == 0:
        t = t.expand(n).clone()
    if t.shape[-1] != n or t.ndim not in (1, 3):
        raise ValueError(f"{what} must have shape [n_neurons={n}] or [batch, pos, n_neurons={n}], "
                         f"got {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{what} contains NaN or inf")
    return t


class _Valued(Intervention):
    """An intervention reading per-neuron or per-position values ``[n]`` / ``[b, p, n]``."""

    def __init__(self, model, neurons, values: Any, positions: Positions = "all", **kw):
        super().__init__(model, neurons, positions, **kw)
        self.values = _values_tensor(values, len(self.neurons), f"{self.label} values")

    def _value(self, idx, b, p, device, dtype):
        v = self.values.to(device=device, dtype=dtype)
        if v.ndim == 3:
            if tuple(v.shape[:2]) != (b, p):
                raise ValueError(f"{self.label}: per-position values have shape {tuple(v.shape)} but the "
                                 f"activation is [batch={b}, pos={p}, ...]")
            return v[..., idx.to(device)]
        return v[idx.to(device)]


class _SetValuesHooks(_Valued):
    """Set neurons to given values."""

    label = "set"


class _ZeroHooks(Intervention):
    """Set neurons to zero (ablation)."""

    label = "zero"

    def _value(self, idx, b, p, device, dtype):
        return torch.zeros(len(idx), device=device, dtype=dtype)


class _MeanHooks(_Valued):
    """Set neurons to a mean: the dataset mean ``[n]`` or a per-position (e.g. class) mean ``[b, p, n]``."""

    label = "mean"


class _ResampleHooks(_Valued):
    """Set neurons to the values they take on another example (per position, ``[b, p, n]``)."""

    label = "resample"


class _TranslateHooks(_Valued):
    """Shift neurons by ``alpha_i * delta_i``: toward another class, ``delta = q(target) - q(source)``."""

    kind = "shift"
    label = "translate"

    def __init__(self, model, neurons, delta: Any, alpha: "float | Sequence[float] | np.ndarray" = 1.0,
                 positions: Positions = "all", **kw):
        super().__init__(model, neurons, delta, positions, **kw)
        a = torch.as_tensor(np.asarray(alpha, dtype=np.float32))
        if a.ndim == 0:
            a = a.expand(len(self.neurons)).clone()
        if a.shape != (len(self.neurons),):
            raise ValueError(f"alpha must be a number or one value per neuron ({len(self.neurons)}), "
                             f"got shape {tuple(a.shape)}")
        self.alpha = a

    def _weight(self, idx, device, dtype):
        return self.alpha.to(device=device, dtype=dtype)[idx.to(device)]
