"""What an edit does, as a small config: :class:`Zero`, :class:`Mean`, :class:`Resample`, :class:`Translate`,
:class:`SetValues`, and :data:`EDITS`, the one registry of edit kinds.

An edit object says *what* to write (pyvene's "what"); *where* (which neurons, which positions) comes when it is
bound: ``edit.bind(model, neurons, positions=...)`` returns an :class:`~tl_neuronprobe.interventions.Intervention`
(TransformerLens ``(name, fn)`` hooks and a context manager). The used evaluation takes the same objects
(``UsedConfig(edit=Translate(alpha="scaled"))``) and computes the values itself (class means, donors). Not for
running many edits at once (:mod:`tl_neuronprobe.interventions.sweep`).

>>> import tl_neuronprobe as tnp
>>> from tl_neuronprobe.interventions import Zero, Translate, EDITS
>>> model = tnp.models.load("planted")
>>> edit = Zero().bind(model, ["L1.N5", "L1.N23"])
>>> [name for name, _ in edit.hooks()]
['blocks.1.mlp.hook_post']
>>> Translate(alpha="scaled").to_dict()
{'type': 'Translate', 'alpha': 'scaled', 'beta': 8.0}
>>> sorted(EDITS)
['mean', 'resample', 'set_values', 'translate', 'zero']
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, ClassVar

import numpy as np
import torch

from ..core.adapter import ModelAdapter
from ..core.config import Config
from ..core.neurons import Neuron
from ._edits import (Positions, WordPositions, _MeanHooks, _ResampleHooks, _SetValuesHooks, _TranslateHooks,
                     _ZeroHooks, check_mask, scaled_alpha, translation_delta)

__all__ = ["Edit", "Zero", "Mean", "Resample", "Translate", "SetValues", "EDITS", "edit_from_name"]

#: edit name -> edit class: the one list of edit kinds (the used evaluation, the sweep and the CLI read it)
EDITS: dict[str, type["Edit"]] = {}


def _listed(neurons) -> list:
    return [neurons] if isinstance(neurons, (str, Neuron)) else list(neurons)


@dataclasses.dataclass(frozen=True)
class Edit(Config):
    """Base of the edit objects: its ``name`` (the registry key), its ``kind`` (``"shift"``: ``h + w v``;
    ``"replace"``: ``h + w (v - h)``) and whether the used evaluation needs fit-corpus activations for it."""

    name: ClassVar[str] = ""
    kind: ClassVar[str] = "replace"
    #: the used evaluation computes its values from the fit corpus's word activations (class means, donors)
    needs_fit: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("name"):
            EDITS[cls.name] = cls


def edit_from_name(name: str) -> Edit:
    """The edit called ``name`` (``"translate"``, ``"zero"``, ...) with its defaults."""
    if name not in EDITS:
        raise ValueError(f"unknown edit {name!r}; one of {sorted(EDITS)}")
    return EDITS[name]()


@dataclasses.dataclass(frozen=True)
class Zero(Edit):
    """Set neurons to zero (ablation).

    Examples
    --------
    >>> import tl_neuronprobe as tnp
    >>> model = tnp.models.load("planted")
    >>> with tnp.interventions.Zero().bind(model, ["L1.N5"]) as edit:
    ...     print(edit)
    zero([L1.N5] (1 neurons), all positions)
    """

    name: ClassVar[str] = "zero"

    def bind(self, model, neurons, positions: Positions = "all", *, corpus=None, attribute: str | None = None):
        """The edit on ``neurons`` of ``model`` at ``positions`` (``'all'``, ``'attribute'`` with ``corpus=``
        and ``attribute=``, a :class:`WordPositions` or a bool mask ``[batch, pos]``)."""
        return _ZeroHooks(model, neurons, positions, corpus, attribute)


@dataclasses.dataclass(frozen=True)
class SetValues(Edit):
    """Set neurons to ``values``: one number for every neuron, or one per neuron bound.

    In the used evaluation ``values`` must be one number (the rankings' neurons differ per k). ``bind`` also
    takes per-position values ``[batch, pos, n]`` (``values=``), overriding the config's.
    """

    name: ClassVar[str] = "set_values"
    values: "float | tuple[float, ...]" = 0.0

    def validate(self) -> None:
        vals = self.values if isinstance(self.values, tuple) else (self.values,)
        if not vals or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)
                               for v in vals):
            raise ValueError(f"SetValues.values must be finite numbers, got {self.values!r}")

    def bind(self, model, neurons, positions: Positions = "all", *, values: Any = None, corpus=None,
             attribute: str | None = None):
        """The edit on ``neurons``; ``values`` (``[n]`` or ``[batch, pos, n]``) replaces the config's."""
        if values is None:
            values = self.values if isinstance(self.values, tuple) else [self.values] * len(_listed(neurons))
        return _SetValuesHooks(model, neurons, values, positions, corpus=corpus, attribute=attribute)


@dataclasses.dataclass(frozen=True)
class Mean(Edit):
    """Set neurons to a mean: ``of="dataset"`` (the mean over attribute-bearing words) or ``"target"`` (the
    next class's mean; the used evaluation only)."""

    name: ClassVar[str] = "mean"
    needs_fit: ClassVar[bool] = True
    of: str = "dataset"

    def validate(self) -> None:
        if self.of not in ("dataset", "target"):
            raise ValueError(f"Mean.of must be 'dataset' or 'target', got {self.of!r}")

    def bind(self, model, neurons, positions: Positions = "all", *, means: Any = None, activations=None,
             attribute: str | None = None, corpus=None):
        """Mean-ablate ``neurons``: set them to ``means`` (``[n]`` or ``[batch, pos, n]``), or with
        ``activations`` (holding these neurons) to their mean over its words (those carrying ``attribute``)."""
        if means is None:
            if activations is None:
                raise ValueError("Mean.bind needs means= or activations=")
            adapter = ModelAdapter.wrap(model)
            cols = activations.columns(adapter.check_neurons(_listed(neurons)))
            X = activations.X[:, torch.as_tensor(cols)].float()
            if attribute is not None:
                _, _, _, idx = activations.dataset(attribute, return_index=True)
                X = X[torch.as_tensor(idx)]
            means = X.mean(0)
        return _MeanHooks(model, neurons, means, positions, corpus=corpus,
                          attribute=attribute if corpus is not None else None)


@dataclasses.dataclass(frozen=True)
class Resample(Edit):
    """Set neurons to the values they take on another word: ``pool="any"`` attribute-bearing word or one of
    ``"other_class"`` (the used evaluation draws donors from the fit corpus, seeded by its ``seed``)."""

    name: ClassVar[str] = "resample"
    needs_fit: ClassVar[bool] = True
    pool: str = "any"

    def validate(self) -> None:
        if self.pool not in ("any", "other_class"):
            raise ValueError(f"Resample.pool must be 'any' or 'other_class', got {self.pool!r}")

    def bind(self, model, neurons, positions: Positions = "all", *, donors: Any, seed: int = 0, corpus=None,
             attribute: str | None = None):
        """Each intervened position takes a donor's values: ``donors`` ``[batch, pos, n]`` (per position) or a
        pool ``[N, n]`` (one row drawn per position, seeded by ``seed``; ``positions`` must then be a mask or
        :class:`WordPositions`, so the shape is known)."""
        d = torch.as_tensor(donors.detach() if isinstance(donors, torch.Tensor) else np.asarray(donors)).float()
        if d.ndim == 2:
            mask = positions.mask if isinstance(positions, WordPositions) else check_mask(positions)
            if not isinstance(mask, torch.Tensor) or mask.ndim != 2:
                raise ValueError("Resample.bind with a donor pool [N, n] needs positions as a [batch, pos] mask or "
                                 "WordPositions, to know how many donors to draw")
            if d.shape[0] == 0:
                raise ValueError("the donor pool is empty")
            g = torch.Generator().manual_seed(int(seed))
            d = d[torch.randint(0, d.shape[0], tuple(mask.shape), generator=g)]
        return _ResampleHooks(model, neurons, d, positions, corpus=corpus, attribute=attribute)


@dataclasses.dataclass(frozen=True)
class Translate(Edit):
    """Move neurons toward another class: ``h_i + alpha_i * (q(target)_i - q(source)_i)``.

    ``alpha``: a number, one number per neuron (when bound by hand), or ``"scaled"``:
    ``beta * (1e-3 / beta) ** (rank / (n - 1))`` over a ranking of ``n`` neurons (Antverg & Belinkov).
    """

    name: ClassVar[str] = "translate"
    kind: ClassVar[str] = "shift"
    needs_fit: ClassVar[bool] = True
    alpha: "float | str | tuple[float, ...]" = 1.0
    beta: float = 8.0

    def validate(self) -> None:
        if isinstance(self.alpha, str) and self.alpha != "scaled":
            raise ValueError(f"Translate.alpha must be a number, one number per neuron or 'scaled', got "
                             f"{self.alpha!r}")
        if not self.beta > 0:
            raise ValueError(f"Translate.beta must be positive, got {self.beta}")

    def alphas(self, k: int, n_ranked: int | None = None) -> np.ndarray:
        """The strengths of the first ``k`` neurons of a ranking of ``n_ranked`` (default ``k``) neurons."""
        if isinstance(self.alpha, str):
            total = k if n_ranked is None else int(n_ranked)
            if total < k:
                raise ValueError(f"n_ranked={total} is smaller than the number of neurons ({k})")
            return scaled_alpha(total, self.beta, np.arange(k))
        if isinstance(self.alpha, tuple):
            if len(self.alpha) != k:
                raise ValueError(f"alpha must be a number or one value per neuron ({k}), got {len(self.alpha)}")
            return np.asarray(self.alpha, dtype=np.float64)
        return np.full(k, float(self.alpha))

    def bind(self, model, neurons, positions: Positions = None, *, delta: Any = None, means: Any = None,
             labels: Any = None, target: "str | int | torch.Tensor" = "next", n_ranked: int | None = None,
             corpus=None, attribute: str | None = None):
        """Translate ``neurons``: give ``delta`` (``[n]`` or ``[batch, pos, n]``), or the class means
        ``means [C, n]`` and per-token source classes ``labels [batch, pos]`` (-1: leave alone; a
        :class:`WordPositions` passed as ``positions`` supplies them), with ``target`` ``'next'`` (cyclic), a
        class index or ``[batch, pos]`` classes. With ``alpha="scaled"``, ``neurons`` come in rank order and
        ``n_ranked`` is the length of their ranking (without it, ``len(neurons)``, and a warning says so)."""
        if positions is None:
            positions = "all" if labels is None else torch.as_tensor(labels) >= 0
        if delta is None:
            if means is None:
                raise ValueError("Translate.bind needs delta= or means= (class means [C, n]) with labels")
            if labels is None:
                if not isinstance(positions, WordPositions):
                    raise ValueError("Translate.bind with means= needs labels= ([batch, pos] source classes, -1 "
                                     "for none) or positions=attribute_positions(...)")
                labels = positions.labels
            means = torch.as_tensor(np.asarray(means) if not isinstance(means, torch.Tensor) else means)
            delta = translation_delta(means, torch.as_tensor(labels).cpu(), target)
        n = len(_listed(neurons))
        if isinstance(self.alpha, str) and n_ranked is None and n > 1:
            warnings.warn(f"Translate(alpha='scaled').bind without n_ranked= scales over the {n} neurons passed "
                          f"(alphas from {self.beta:g} down to 0.001 at the last of them); pass n_ranked= (the "
                          "length of the ranking they come from) for Antverg & Belinkov's decay over the whole "
                          "ranking", UserWarning, stacklevel=2)
        return _TranslateHooks(model, neurons, delta, self.alphas(n, n_ranked), positions, corpus=corpus,
                               attribute=attribute)

