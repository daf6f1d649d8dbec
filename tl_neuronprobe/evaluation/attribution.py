"""Used for every neuron at once: per-neuron attribution patching, checked against exact patching.

:func:`attribute_used` estimates, for every neuron of the attributed sites and layers, the effect that editing that
neuron *alone* would have on a readout, from one forward and one backward pass per sentence batch (attribution
patching: Nanda; Syed et al.; Kramar et al. 2024, "AtP*"), and checks the estimate by exact single-neuron patching
of the top neurons and a random sample (:func:`exact_effects`, the ground truth, through the used evaluation's
sweep). What it estimates is the readout's *target metric*, a continuous metric the estimate and the exact
patching both measure:

- ``identity``: ``logprob_drop``, the drop of the clean prediction's log-probability at the attribute words'
  tokens (mean over a word's tokens, then over words; the primary metric, ``changed``, is a step function of
  the logits, with no gradient);
- ``agreement``: ``logit_diff_drop``;
- a callable ``metric(clean_logits, edited_logits)``: its change from the clean run, ``fn(clean, edited) -
  fn(clean, clean)``;
- ``divergence`` / ``EmbeddingDistance``: the readout's first metric (``kl``, ``embedding_distance`` or
  ``hidden_distance``). These are minimal at the clean output, so the first-order term is exactly zero and the
  estimate is the second-order one, ``1/2 d^T J^T M J d`` (``M`` the metric's Hessian at the clean output, ``J``
  the Jacobian of the output in the neuron's activations, ``d`` the edit's change), by Hutchinson sampling:
  ``v ~ N(0, M)``, ``E[(d . J^T v)^2] = d^T J^T M J d``.

Not for editing chosen neurons and reading the model (:mod:`.used`), nor for probing (:mod:`.encoded`).
"""

from __future__ import annotations

import contextlib
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch

from ..core import distributed
from ..core.adapter import ModelAdapter
from ..core.config import Config
from ..core.hooks import capture_hooks
from ..core.neurons import Neuron, check_site, hook_name
from ..data.corpus import Corpus
from ..interventions import EDITS, Edit, Mean, SetValues, Translate, UnitColumns, group_by_hook, hook_of
from ..interventions.readouts import (AgreementReadout, BatchPlan, DivergenceReadout, IdentityReadout,
                                      MetricReadout, Output, Readout, ReadoutSpec)
from ..interventions.sweep import Spec, Sweep
from ._readout import choose_readout
from ._resolve import Baselines, Resolved, UsedBatching, UsedConfig, _count, held_out, resolve
from ._tables import Preparer, Tables, build_tables, sentence_batches
from .results import TableResult
from .used import _alpha_for, sweep_across_ranks

__all__ = ["attribute_used", "AttributionConfig", "Verify", "Attribution", "exact_effects"]

#: specs per exact sweep (the sweep's weight matrix is specs x neurons)
_EXACT_CHUNK = 512


# ------------------------------------------------------------------------------------------- configs
@dataclass(frozen=True)
class Verify(Config):
    """The verification budget of :func:`attribute_used`: exact single-neuron patching of the ``top`` neurons
    by estimated effect and of ``n_random`` other neurons drawn at random (seeded); 0 and 0: no verification.

    Examples
    --------
    >>> from tl_neuronprobe.evaluation.attribution import Verify
    >>> Verify(top=5, n_random=0).to_dict()
    {'type': 'Verify', 'top': 5, 'n_random': 0}
    """

    top: int = 20
    n_random: int = 20

    def validate(self) -> None:
        _count(self, 0, "top", "n_random")


@dataclass(frozen=True)
class AttributionConfig(Config):
    """What :func:`attribute_used` does: which edit each neuron's estimate is for, read how, over which neurons.

    Parameters
    ----------
    edit : Edit
        What editing a neuron writes (:class:`~tl_neuronprobe.interventions.Mean` by default; ``Zero()``,
        ``Resample()``, ``Translate(...)`` with a number or ``"scaled"`` (a single neuron's strength: ``beta``),
        ``SetValues(v)`` with one number); means and donors come from the fit corpus as in
        :func:`~tl_neuronprobe.evaluate_used`.
    readout : Identity, Agreement, Divergence, EmbeddingDistance, callable or None
        What measures the effect (None: chosen from the clean model as the used evaluation chooses).
    site : str
        The attributed site (``"mlp.post"``).
    layers : tuple of int or None
        The attributed layers (None: all); every neuron of ``site`` at these layers is attributed.
    positions : {"attribute", "all"}
        Edit the tokens of the attribute's words, or every token (not with ``Translate``).
    n_sentences : int or None
        Use at most this many sentences (the first ones).
    n_samples : int
        Hutchinson samples (backward passes per batch) for readouts whose first-order term vanishes
        (divergence, embedding distance).
    ig_steps : int
        1: plain attribution patching (the gradient at the clean run); more: integrated gradients along the
        joint path of each attributed layer (every neuron of the layer edited together, as Marks et al. 2024),
        ``ig_steps`` forward and backward passes per layer and batch (first-order readouts only). Measured on
        the planted model and the agreement decoder, the joint path estimates single-neuron effects worse than
        plain attribution patching (Spearman with exact patching 0.90 -> 0.62, 0.99 -> 0.23 for zero edits), so
        the default is 1.
    verify : Verify
        How many neurons to check by exact single-neuron patching in the same call.
    seed : int
        Donors, Hutchinson samples and the random verified neurons.
    batching : UsedBatching
        Sentences per batch (attribution and exact patching), tokens per pass and sweep strategy (exact patching).

    Examples
    --------
    >>> from tl_neuronprobe.evaluation.attribution import AttributionConfig, Verify
    >>> from tl_neuronprobe.interventions import Zero
    >>> config = AttributionConfig(edit=Zero(), layers=1, verify=Verify(top=5, n_random=5))
    >>> config.layers, config.to_dict()["edit"]
    ((1,), {'type': 'Zero'})
    """

    edit: Edit = Mean()
    readout: "ReadoutSpec | Readout | Callable | None" = None
    site: str = "mlp.post"
    layers: "tuple[int, ...] | None" = None
    positions: str = "attribute"
    n_sentences: "int | None" = None
    n_samples: int = 8
    ig_steps: int = 1
    verify: Verify = Verify()
    seed: int = 0
    batching: UsedBatching = UsedBatching()

    def __post_init__(self) -> None:
        if isinstance(self.layers, (int, np.integer)) and not isinstance(self.layers, bool):
            object.__setattr__(self, "layers", (int(self.layers),))
        super().__post_init__()

    def validate(self) -> None:
        if not isinstance(self.edit, Edit):
            raise ValueError(f"AttributionConfig.edit must be an edit object, one of {sorted(EDITS)} (e.g. Mean()), "
                             f"got {self.edit!r}")
        if isinstance(self.edit, SetValues) and isinstance(self.edit.values, tuple):
            raise ValueError("AttributionConfig.edit=SetValues(values) needs one number")
        if isinstance(self.edit, Translate) and isinstance(self.edit.alpha, tuple):
            raise ValueError("AttributionConfig.edit=Translate(alpha=...) needs a number or 'scaled'")
        if not (self.readout is None or isinstance(self.readout, (ReadoutSpec, Readout)) or callable(self.readout)):
            raise ValueError("AttributionConfig.readout must be Identity(), Agreement(), Divergence(), "
                             f"EmbeddingDistance(), a callable metric or None, got {self.readout!r}")
        check_site(self.site)
        if self.layers is not None:
            if not self.layers or any(isinstance(la, bool) or not isinstance(la, (int, np.integer)) or la < 0
                                      for la in self.layers):
                raise ValueError(f"AttributionConfig.layers must be non-negative integers or None, got "
                                 f"{self.layers!r}")
        if self.positions not in ("attribute", "all"):
            raise ValueError(f"AttributionConfig.positions must be 'attribute' or 'all', got {self.positions!r}")
        if self.positions == "all" and self.edit.kind == "shift":
            raise ValueError("translation needs each position's class: use positions='attribute' with Translate")
        if self.n_sentences is not None:
            _count(self, 1, "n_sentences")
        _count(self, 1, "n_samples", "ig_steps")
        _count(self, 0, "seed")
        if not isinstance(self.verify, Verify):
            raise ValueError(f"AttributionConfig.verify must be a Verify, got {self.verify!r}")
        if not isinstance(self.batching, UsedBatching):
            raise ValueError(f"AttributionConfig.batching must be a UsedBatching, got {self.batching!r}")


def _as_used(config: AttributionConfig) -> UsedConfig:
    """The used evaluation's config that edits exactly what ``config`` attributes (one neuron at k = 1)."""
    return UsedConfig(edit=config.edit, readout=config.readout, positions=config.positions, ks=(1,),
                      baselines=Baselines(bottom=False, n_random=0), n_bootstrap=0, seed=config.seed,
                      n_sentences=config.n_sentences, batching=config.batching)


# ------------------------------------------------------------------------------------------- readouts
class _IdentityDrop(IdentityReadout):
    """The identity readout plus ``logprob_drop``: per attribute word, the mean over its tokens of the drop of
    the clean prediction's log-probability (the continuous metric the attribution estimates)."""

    metrics = IdentityReadout.metrics + ("logprob_drop",)

    def plan(self, batch, sentence_ids, word_mask, mask, record=True):
        plan = super().plan(batch, sentence_ids, word_mask, mask, record)
        b, p = plan.data["b"], plan.data["p"]
        words = batch.word_of_token[b, p]
        new = torch.ones(len(b), dtype=torch.bool, device=b.device)
        new[1:] = (b[1:] != b[:-1]) | (words[1:] != words[:-1])  # a word's tokens are consecutive
        unit = torch.cumsum(new.long(), 0) - 1
        counts = torch.bincount(unit, minlength=plan.n_units).float() if len(b) else torch.zeros(0, device=b.device)
        plan.data["weight"] = 1.0 / counts[unit] if len(b) else counts
        return plan

    def clean(self, output, plan):
        pred = super().clean(output, plan)
        logp = output.logits[plan.data["b"], plan.data["p"]].float().log_softmax(-1)
        return pred, logp.gather(-1, pred[:, None]).squeeze(-1)

    def compare(self, output, ref, plan, n_rep):
        pred0, lp0 = ref
        logits = output.logits.reshape(n_rep, -1, *output.logits.shape[1:])[:, plan.data["b"], plan.data["p"]]
        lp = logits.float().log_softmax(-1).gather(-1, pred0[None, :, None].expand(n_rep, -1, 1)).squeeze(-1)
        return {"pred": logits.argmax(-1), "logprob_drop": lp0[None] - lp}

    def finalize(self, raw):
        drop = raw.pop("logprob_drop")
        out = super().finalize(raw)
        counts = np.concatenate(self.tok_counts) if self.tok_counts else np.zeros(0, dtype=np.int64)
        if len(counts) == 0:
            out["logprob_drop"] = np.zeros((drop.shape[0], 0))
        else:
            starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
            out["logprob_drop"] = np.add.reduceat(drop.astype(np.float64), starts, axis=1) / counts[None]
        return out


def _target(readout: Readout) -> tuple[str, int]:
    """The metric the attribution estimates for ``readout`` and the order of its estimate (1 or 2)."""
    if isinstance(readout, _IdentityDrop):
        return "logprob_drop", 1
    if isinstance(readout, AgreementReadout):
        return "logit_diff_drop", 1
    if isinstance(readout, DivergenceReadout):
        return readout.metrics[0], 2
    if isinstance(readout, MetricReadout):
        return readout.metrics[0], 1
    raise TypeError(f"attribution reads identity, agreement, divergence or a callable metric; got the "
                    f"{type(readout).__name__} readout")


# ------------------------------------------------------------------------------------------- setup
@dataclass
class _Setup:
    """Everything both the estimate and the exact patching need: resolved inputs, tables, the readout, batches."""

    resolved: Resolved
    tables: Tables
    used: UsedConfig
    neurons: list[Neuron]
    readout: Readout
    metric: str
    order: int
    batches: list[list[int]]
    setup_args: tuple

    @property
    def adapter(self) -> ModelAdapter:
        return self.resolved.adapter


def _set_up(model, corpus: Corpus, attribute: str, neurons: Sequence[Neuron], config: AttributionConfig,
            test: "Corpus | None", progress: bool) -> _Setup:
    if not isinstance(corpus, Corpus):
        raise TypeError(f"corpus must be a Corpus, got {type(corpus).__name__}")
    used = _as_used(config)
    corpus, fit_corpus = held_out(corpus, test, attribute)
    resolved = resolve(model, corpus, attribute, {"attribution": list(neurons)}, used, fit_corpus)
    tables = build_tables(resolved, used, progress)
    prepare = Preparer(resolved.adapter, tables, list(neurons), used)
    batches = sentence_batches(tables, resolved.corpus, used.positions, used.batching.batch_size)
    readout, has_units = choose_readout(config.readout, resolved, tables, batches, prepare)
    setup_args = (resolved.adapter, resolved.corpus, attribute, tables.carries, tables.tokenized)
    if type(readout) is IdentityReadout:
        readout = _IdentityDrop(readout._given_lexicon)
        has_units = readout.setup(*setup_args)
    metric, order = _target(readout)
    batches = [b for b in ([i for i in b if has_units[i]] for b in batches) if b]
    if not batches:
        raise ValueError(f"the {readout.name} readout found nothing to read in {resolved.corpus.name}")
    return _Setup(resolved, tables, used, list(neurons), readout, metric, order, batches, setup_args)


# ------------------------------------------------------------------------------------------- exact patching
def _exact(setup: _Setup, neurons: Sequence[Neuron], progress: bool
           ) -> tuple[dict[str, np.ndarray], np.ndarray, int, float]:
    """Per readout metric, its value with each neuron edited alone (mean over units); the change of the target
    metric from the clean run; the forward passes and the seconds. Every neuron is its own sweep spec at k = 1,
    in chunks of :data:`_EXACT_CHUNK` specs; the first chunk also runs a null spec (weight 0: the clean run read
    as an edited one), which a callable metric's ``fn(clean, clean)`` is measured from."""
    adapter, used, ro = setup.adapter, setup.used, setup.readout
    alpha = _alpha_for(used, 1, 1)
    specs = [Spec("exact", "single", 1, 0, [n], alpha) for n in neurons]
    null = Spec("exact", "null", 1, 0, [neurons[0]], np.zeros(1))
    values: dict[str, list[np.ndarray]] = {m: [] for m in ro.metrics}
    clean, passes, seconds = 0.0, 0, 0.0
    for lo in range(0, len(specs), _EXACT_CHUNK):
        chunk = specs[lo:lo + _EXACT_CHUNK] + ([null] if lo == 0 else [])
        sweep = Sweep(adapter, chunk, used.edit)
        prepare = Preparer(adapter, setup.tables, sweep.neurons, used)
        ro.setup(*setup.setup_args)
        result = sweep_across_ranks(sweep, setup.batches, prepare, ro, used.batching, progress)
        for m in ro.metrics:
            per_unit = result.metrics[m]
            mean = per_unit.mean(1) if per_unit.shape[1] else np.full(per_unit.shape[0], np.nan)
            if lo == 0:
                mean, clean = (mean[:-1], mean[-1]) if m == setup.metric else (mean[:-1], clean)
            values[m].append(mean)
        passes += result.forward_passes
        seconds += result.seconds
    out = {m: np.concatenate(v) for m, v in values.items()}
    change = out[setup.metric] - clean if isinstance(ro, MetricReadout) else out[setup.metric]
    return out, change, passes, seconds


def _check_neurons(adapter: ModelAdapter, neurons: Any) -> list[Neuron]:
    if isinstance(neurons, (str, Neuron)):
        neurons = [neurons]
    neurons = adapter.check_neurons([Neuron.parse(n) for n in neurons])
    if not neurons:
        raise ValueError("neurons= is empty: give the neurons to patch")
    if len(set(neurons)) != len(neurons):
        raise ValueError("neurons= lists a neuron twice")
    return neurons


def exact_effects(model, corpus: Corpus, attribute: str, neurons: Any, config: "AttributionConfig | None" = None,
                  *, test: "Corpus | None" = None, device: "str | torch.device | None" = None,
                  progress: bool = False) -> pd.DataFrame:
    """The exact effect of editing each neuron alone: the ground truth :func:`attribute_used` estimates.

    Each neuron is its own intervention of the used evaluation's sweep (k = 1, the same edit values, readout,
    sentences and batching as :func:`attribute_used` with the same ``config``); under ``torchrun`` the ranks
    share the neurons.

    Parameters
    ----------
    model : HookedTransformer, TransformerBridge or ModelAdapter
        The model.
    corpus : Corpus
        The evaluated sentences (means and donors are fitted on their words too, unless ``test`` is given).
    attribute : str
        The attribute whose words are edited.
    neurons : list of Neuron or str
        The neurons to patch, one at a time (e.g. ``attr.neurons`` for every attributed one).
    config : AttributionConfig, optional
        The edit, readout, positions, n_sentences, seed and batching (its other fields are not used).
    test : Corpus, optional
        A held-out corpus: means and donors from ``corpus``, ``test`` evaluated.
    device : str or torch.device, optional
        Move the model there first.
    progress : bool
        Show progress bars.

    Returns
    -------
    pandas.DataFrame
        One row per neuron, in the order given: ``neuron``, ``layer``, ``site``, ``exact`` (the effect on the
        readout's target metric, the one ``attribute_used`` estimates: see the module docstring; for a callable
        metric its value minus its value on the clean run, ``fn(clean, clean)``) and one column per metric of the
        readout (the mean over its units, as the used evaluation reports it). ``attrs``: ``metric``, ``readout``,
        ``forward_passes``, ``seconds``.

    Examples
    --------
    >>> import tl_neuronprobe as tnp
    >>> from tl_neuronprobe.evaluation.attribution import AttributionConfig, exact_effects
    >>> model = tnp.models.load("planted")
    >>> corpus = tnp.testing.planted_corpus(40, seed=0)
    >>> config = AttributionConfig(edit=tnp.interventions.Zero(), readout=tnp.interventions.Identity())
    >>> effects = exact_effects(model, corpus, "Number", ["L1.N5", "L1.N11"], config)
    >>> effects.attrs["metric"], list(effects.neuron), bool(abs(effects.exact[0]) > 10 * abs(effects.exact[1]))
    ('logprob_drop', ['L1.N5', 'L1.N11'], True)
    """
    distributed.setup()
    config = AttributionConfig() if config is None else config
    if not isinstance(config, AttributionConfig):
        raise TypeError(f"config must be an AttributionConfig, got {type(config).__name__}")
    adapter = ModelAdapter.wrap(model)
    if device is not None:
        adapter.model.to(device)
    neurons = _check_neurons(adapter, neurons)
    setup = _set_up(adapter, corpus, attribute, neurons, config, test, progress)
    values, change, passes, seconds = _exact(setup, neurons, progress)
    table = pd.DataFrame({"neuron": [str(n) for n in neurons], "layer": [n.layer for n in neurons],
                          "site": [n.site for n in neurons], "exact": change,
                          **{m: v for m, v in values.items()}})
    table.attrs.update(metric=setup.metric, readout=setup.readout.name, forward_passes=passes,
                       seconds=round(seconds, 4))
    return table


# ------------------------------------------------------------------------------------------- the estimate
@contextlib.contextmanager
def _activation_grads(model: torch.nn.Module):
    """Gradients on, the model's parameters off (restored after): only the hooked activations need gradients,
    and an activation that does not require one is upstream of every hooked site."""
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        with torch.enable_grad():
            yield
    finally:
        for p in params:
            p.requires_grad_(True)


def _leaf_hooks(names: Sequence[str], store: dict[str, torch.Tensor],
                shift: "dict[str, torch.Tensor] | None" = None) -> list:
    """Hooks that keep each hooked activation in ``store`` as a node of the autograd graph: the first one to
    fire (nothing upstream needs a gradient) becomes a leaf, later ones stay graph nodes; with ``shift`` the
    activation moves by ``shift[name]`` and becomes a leaf there (a point on an integrated-gradients path)."""
    def make(name: str):
        def hook(act: torch.Tensor, hook=None):  # noqa: ARG001 - TransformerLens hook signature
            if shift is not None:
                act = (act.detach() + shift[name].reshape(act.shape).to(act.dtype)).requires_grad_(True)
            elif not act.requires_grad:
                act = act.detach().requires_grad_(True)
            store[name] = act
            return act

        return hook

    return [(name, make(name)) for name in names]


def _forward(adapter: ModelAdapter, batch, hooks: list, readout: Readout) -> Output:
    """One pass with ``hooks`` giving what ``readout`` reads, the final hidden states kept in the graph."""
    store: dict[str, torch.Tensor] = {}
    last = hook_name("resid.post", adapter.n_layers - 1)
    reads = capture_hooks([last], store, detach=False) if readout.needs_hidden else []
    logits = adapter.forward(batch, list(hooks) + reads,
                             stop_at_layer=None if readout.needs_logits else adapter.n_layers,
                             return_type="logits" if readout.needs_logits else None)
    return Output(logits if readout.needs_logits else None, store.get(last))


def _detached(out: Output) -> Output:
    return Output(*(None if t is None else t.detach() for t in out))


def _clean_ref(readout: Readout, out: Output, plan: BatchPlan) -> Any:
    """What the objective compares with: the clean prediction, the clean logit difference or clean logits."""
    if isinstance(readout, _IdentityDrop):
        return out.logits[plan.data["b"], plan.data["p"]].argmax(-1)
    if isinstance(readout, AgreementReadout):
        return readout.clean(out, plan)
    if isinstance(readout, MetricReadout):
        return out.logits[plan.data["rows"]]
    return None


def _objective(readout: Readout, out: Output, plan: BatchPlan, ref: Any) -> torch.Tensor:
    """The target metric summed over the batch's units, differentiable in the activations (first order)."""
    if isinstance(readout, _IdentityDrop):
        logp = out.logits[plan.data["b"], plan.data["p"]].float().log_softmax(-1)
        return -(logp.gather(-1, ref[:, None]).squeeze(-1) * plan.data["weight"]).sum()
    if isinstance(readout, AgreementReadout):
        _, diff = readout._decision(readout._scores(out.logits, plan), plan.data["gold"])
        return (ref[1] - diff).sum()
    rows, valid = plan.data["rows"], plan.data["valid"]
    value = torch.as_tensor(readout.fn(ref, out.logits[rows])).float()
    if value.ndim == 2:
        w = valid.float()
        value = (value * w).sum(-1) / w.sum(-1).clamp(min=1)
    if tuple(value.shape) != (len(rows),):
        raise ValueError(f"metric {readout.metrics[0]!r} returned shape {tuple(value.shape)}; expected one value "
                         f"per sentence [{len(rows)}] or per token [{len(rows)}, pos]")
    return value.sum()


def _rademacher(shape, gen: torch.Generator, device) -> torch.Tensor:
    return torch.randint(0, 2, tuple(shape), generator=gen, device=device).float() * 2 - 1


def _perp(r: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """``P_perp r / |h0|``: ``r`` without its component along ``h0``, over ``|h0|`` (the Hessian of 1 - cos)."""
    norm = h0.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    u = h0 / norm
    return (r - (r * u).sum(-1, keepdim=True) * u) / norm


def _probe(out: Output, plan: BatchPlan, metric: str, gen: torch.Generator) -> torch.Tensor:
    """``<v, output>`` with ``v ~ N(0, M)`` in covariance, ``M`` the Hessian of ``metric`` (summed over the
    batch's units) at the clean output: the gradient of this in the activations is one Hutchinson sample."""
    rows, valid = plan.data["rows"], plan.data["valid"].float()
    per_token = valid / valid.sum(-1, keepdim=True).clamp(min=1)  # [U, P]: 1/n_tok on a sentence's tokens
    if metric == "kl":
        z = out.logits[rows].float()
        p = z.detach().softmax(-1)
        y = torch.multinomial(p.reshape(-1, p.shape[-1]), 1, generator=gen).reshape(p.shape[:-1])
        v = torch.zeros_like(p).scatter_(-1, y[..., None], 1.0) - p  # covariance: diag(p) - p p^T
        return (v * per_token.sqrt()[..., None] * z).sum()
    h = out.hidden[rows].float()
    h0 = h.detach()
    if metric == "hidden_distance":
        v = _perp(_rademacher(h0.shape, gen, h0.device), h0) * per_token.sqrt()[..., None]
        return (v * h).sum()
    pool0 = (h0 * per_token[..., None]).sum(-2)
    v_pool = _perp(_rademacher(pool0.shape, gen, h0.device), pool0)
    return (v_pool[:, None, :] * per_token[..., None] * h).sum()


class _Estimator:
    """Per sentence batch, every attributed neuron's estimated effect summed over the batch's units."""

    def __init__(self, setup: _Setup, config: AttributionConfig):
        self.setup, self.config = setup, config
        adapter, used = setup.adapter, setup.used
        self.prepare = Preparer(adapter, setup.tables, setup.neurons, used)
        self.groups = {h: (c.to(adapter.device), i.to(adapter.device))
                       for h, (c, i) in group_by_hook(setup.neurons).items()}
        mixed = [h for h in self.groups if "|" in h]
        if mixed:
            raise ValueError(f"attribute neurons and a dictionary's units of one hook point in separate calls "
                             f"({mixed[0].replace('|', ' and site ')})")
        self.views = {h: UnitColumns.of(setup.neurons, i) for h, (_, i) in self.groups.items()}
        # a group's gradient is taken where its edit runs (a transcoder: its output hook); its current values are
        # read where it encodes (a transcoder: its input hook, captured without a gradient)
        self.grad_hook = {h: v.write_hook(h) for h, v in self.views.items()}
        self.read_hook = {h: v.read_hook or hook_of(h) for h, v in self.views.items()}
        self.names = list(dict.fromkeys(self.grad_hook.values()))
        self.captures = [n for n in dict.fromkeys(self.read_hook.values()) if n not in self.names]
        self.alpha = float(_alpha_for(used, 1, 1)[0])
        self.forward_passes = self.backward_passes = 0
        self.gradient_seen = False
        if setup.order == 2 and config.ig_steps > 1:
            raise ValueError(f"ig_steps={config.ig_steps} needs a first-order readout; the {setup.readout.name} "
                             f"readout's {setup.metric} is estimated to second order (use ig_steps=1)")

    def deltas(self, prep, acts: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per group, the edit's change ``patched - clean`` of each attributed unit ``[b, p, n_group]``."""
        mask = prep.mask.float()[..., None]
        out = {}
        for key, (cols, idx) in self.groups.items():
            value = None if prep.values is None else prep.values[..., idx].float()
            if self.setup.used.edit.kind == "shift":
                out[key] = mask * self.alpha * value
            else:
                cur = self.views[key].full(acts[self.read_hook[key]].detach())[..., cols].float()  # where encoded
                out[key] = mask * ((0.0 if value is None else value) - cur)
        return out

    def _project(self, grads: dict[str, "torch.Tensor | None"], deltas, contrib: torch.Tensor, square: bool = False,
                 weight: float = 1.0, keys: "Sequence[str] | None" = None) -> None:
        """Add each group's first-order effect (gradient at its write hook, through its decoder, times its
        change) to ``contrib``; ``keys`` limits the groups (default all)."""
        for key in self.groups if keys is None else keys:
            g = grads.get(self.grad_hook[key])
            if g is None:
                continue
            cols, idx = self.groups[key]
            g = self.views[key].grad(g, cols).float()
            if not square:
                self.gradient_seen |= bool((g != 0).any())
                contrib[idx] += weight * (deltas[key] * g).sum((0, 1)).double()
            else:
                proj = (deltas[key] * g).sum(1)  # [b, n]: per sentence, sum over its tokens
                contrib[idx] += weight * (proj.double() ** 2).sum(0)

    def batch(self, sent_idx: list[int], batch_index: int) -> tuple[torch.Tensor, int]:
        setup, ro = self.setup, self.setup.readout
        prep = self.prepare(sent_idx)
        plan = ro.plan(prep.batch, sent_idx, prep.word_mask, prep.mask, record=False)
        contrib = torch.zeros(len(setup.neurons), dtype=torch.float64, device=setup.adapter.device)
        if plan.n_units == 0:
            return contrib, 0
        if setup.order == 1 and self.config.ig_steps > 1:
            self._integrated(prep, plan, contrib)
            return contrib, plan.n_units
        store: dict[str, torch.Tensor] = {}
        hooks = _leaf_hooks(self.names, store) + capture_hooks(self.captures, store)
        out = _forward(setup.adapter, prep.batch, hooks, ro)
        self.forward_passes += 1
        acts = [store[n] for n in self.names]
        deltas = self.deltas(prep, store)
        if setup.order == 1:
            obj = _objective(ro, out, plan, _clean_ref(ro, _detached(out), plan))
            grads = torch.autograd.grad(obj, acts, allow_unused=True)
            self._project(dict(zip(self.names, grads)), deltas, contrib)
            self.backward_passes += 1
            return contrib, plan.n_units
        gen = torch.Generator(device=setup.adapter.device).manual_seed(self.config.seed * 1_000_003 + batch_index)
        S = self.config.n_samples
        for s in range(S):
            grads = torch.autograd.grad(_probe(out, plan, setup.metric, gen), acts, retain_graph=s < S - 1,
                                        allow_unused=True)
            self._project(dict(zip(self.names, grads)), deltas, contrib, square=True, weight=0.5 / S)
            self.backward_passes += 1
        return contrib, plan.n_units

    def _integrated(self, prep, plan: BatchPlan, contrib: torch.Tensor) -> None:
        """Integrated gradients along each hooked layer's joint path ``a + (s / steps) * delta``, s = 1..steps."""
        setup, ro, steps = self.setup, self.setup.readout, self.config.ig_steps
        clean: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            out = _forward(setup.adapter, prep.batch, capture_hooks(self.names + self.captures, clean), ro)
        self.forward_passes += 1
        ref = _clean_ref(ro, out, plan)
        deltas = self.deltas(prep, clean)
        for key, (cols, _) in self.groups.items():
            name, view = self.grad_hook[key], self.views[key]
            full = torch.zeros_like(clean[name].reshape(*clean[name].shape[:2], -1), dtype=torch.float32)
            full = view.write(full, cols, torch.zeros_like(deltas[key]), deltas[key])  # the patch, as the hook's change
            total = None
            for s in range(1, steps + 1):
                store: dict[str, torch.Tensor] = {}
                hooks = _leaf_hooks([name], store, {name: full * (s / steps)})
                out = _forward(setup.adapter, prep.batch, hooks, ro)
                (g,) = torch.autograd.grad(_objective(ro, out, plan, ref), [store[name]], allow_unused=True)
                g = torch.zeros_like(store[name]) if g is None else g
                total = g if total is None else total + g
                self.forward_passes += 1
                self.backward_passes += 1
            self._project({name: total}, deltas, contrib, weight=1.0 / steps, keys=[key])


def _estimate(setup: _Setup, config: AttributionConfig, progress: bool) -> tuple[np.ndarray, dict[str, Any]]:
    """Every attributed neuron's estimated effect (mean over units) and what it cost; under ``torchrun`` the
    ranks share the sentence batches and sum (Hutchinson samples are seeded per batch, not per rank)."""
    from tqdm.auto import tqdm

    start = time.perf_counter()
    estimator = _Estimator(setup, config)
    total = torch.zeros(len(setup.neurons), dtype=torch.float64)
    units = 0
    mine = list(distributed.share(len(setup.batches)))
    with _activation_grads(setup.adapter.model):
        for i in tqdm(mine, disable=not (progress and distributed.is_main()),
                      desc=f"attribution ({setup.readout.name})"):
            contrib, n = estimator.batch(setup.batches[i], i)
            total += contrib.cpu()
            units += n
    parts = distributed.gather((total.numpy(), units, estimator.forward_passes, estimator.backward_passes,
                                estimator.gradient_seen, time.perf_counter() - start))
    units = sum(p[1] for p in parts)
    scores = sum(p[0] for p in parts) / max(units, 1)
    if setup.order == 1 and not any(p[4] for p in parts):
        warnings.warn(f"the gradient of {setup.metric!r} is zero everywhere at the clean run (a metric minimal "
                      "there, like a divergence, has no first-order term): every attribution score is 0; use "
                      "Divergence(...) for a second-order estimate", UserWarning, stacklevel=3)
    cost = dict(n_units=int(units), forward_passes=int(sum(p[2] for p in parts)),
                backward_passes=int(sum(p[3] for p in parts)),
                attribution_seconds=round(float(sum(p[5] for p in parts)), 4))
    return scores, cost


# ------------------------------------------------------------------------------------------- the result
class Attribution(TableResult):
    """A used ranking of every neuron of the attributed sites and layers (what :func:`attribute_used` returns).

    ``table``: one row per neuron, in column order, with ``neuron`` (``L3.N1207``), ``layer``, ``site``,
    ``score`` (the estimated effect of editing that neuron alone on the readout's target metric, signed),
    ``rank`` (1 = most used: by |exact| where verified, else by |score|), ``exact`` (the effect measured by exact
    single-neuron patching, NaN where not verified) and ``verified`` (bool). ``rankings``: ``{"attribution": every neuron, most used first}``, so every stage that takes
    an encoded ranking takes this one. ``extra``: what the run cost and how far the estimate is from exact
    patching on the verified neurons.
    """

    kind = "attribution"

    @property
    def neurons(self) -> list[Neuron]:
        """The attributed neurons, in column order (the order of :attr:`scores_`)."""
        return [Neuron.parse(str(n)) for n in self.table["neuron"]]

    @property
    def scores_(self) -> np.ndarray:
        """The estimated effect per neuron, in column order."""
        return self.table["score"].to_numpy(dtype=np.float64)

    @property
    def order_(self) -> np.ndarray:
        """Column indices, most used first (as a fitted ranker's ``order_``)."""
        return np.argsort(self.table["rank"].to_numpy(), kind="stable")

    def plot(self, path: "str | Path | None" = None) -> Any:
        """Estimated against exact effect on the verified neurons (all estimates as a histogram when none is)."""
        from ..core.plotting import pyplot, save
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(5, 4))
        t = self.table
        done = t[t["verified"].astype(bool)] if "verified" in t.columns else t.iloc[:0]
        if len(done):
            ax.scatter(done["exact"], done["score"], s=12)
            ax.set_xlabel("exact single-neuron patching")
            ax.set_ylabel("attribution estimate")
        else:
            ax.hist(t["score"], bins=50)
            ax.set_xlabel("attribution estimate")
        ax.set_title(f"{self.attribute or ''} attribution".strip())
        if path is not None:
            save(fig, path)
        return fig


# ------------------------------------------------------------------------------------------- verification
def _verified(scores: np.ndarray, verify: Verify, seed: int) -> np.ndarray:
    """Column indices to patch exactly: the ``top`` by |estimate|, then ``n_random`` of the rest (seeded)."""
    order = np.argsort(-np.abs(scores), kind="stable")
    top, rest = order[:verify.top], order[verify.top:]
    rng = np.random.default_rng([seed, len(scores)])
    drawn = rng.choice(rest, size=min(verify.n_random, len(rest)), replace=False) if len(rest) else rest
    return np.concatenate([top, np.sort(drawn)]).astype(np.int64)


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        return float("nan")
    return float(spearmanr(a[ok], b[ok]).statistic)


def _verification_stats(scores: np.ndarray, exact: np.ndarray, cols: np.ndarray, n_top: int) -> dict[str, Any]:
    """On the verified neurons: Spearman of estimate and exact effect, the share of the estimate's top that is
    also the exact top among them (``top_precision``), and the mean absolute error."""
    if len(cols) == 0:
        return dict(n_verified=0, spearman=float("nan"), top_precision=float("nan"), mean_abs_error=float("nan"))
    est, ex = scores[cols], exact[cols]
    k = min(n_top, len(cols))
    by_est = set(cols[np.argsort(-np.abs(est), kind="stable")[:k]].tolist())
    by_exact = set(cols[np.argsort(-np.abs(ex), kind="stable")[:k]].tolist())
    return dict(n_verified=int(len(cols)), spearman=_spearman(est, ex),
                top_precision=float(len(by_est & by_exact) / k) if k else float("nan"),
                mean_abs_error=float(np.nanmean(np.abs(est - ex))))


def _ranks(scores: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """1 = most used: by |exact effect| where verified (AtP*'s correction), else by |estimate|."""
    key = np.where(np.isfinite(exact), np.abs(exact), np.abs(scores))
    order = np.argsort(-key, kind="stable")
    ranks = np.empty(len(scores), dtype=np.int64)
    ranks[order] = np.arange(1, len(scores) + 1)
    return ranks


# ------------------------------------------------------------------------------------------- the pipeline
def _attributed_neurons(adapter: ModelAdapter, config: AttributionConfig) -> list[Neuron]:
    layers = adapter.check_layers(config.site, None if config.layers is None else list(config.layers))
    width = adapter.site_width(config.site)
    return [Neuron(layer, j, config.site) for layer in sorted(dict.fromkeys(layers)) for j in range(width)]


def attribute_used(model, corpus: Corpus, attribute: str, config: "AttributionConfig | None" = None, *,
                   test: "Corpus | None" = None, device: "str | torch.device | None" = None,
                   progress: bool = True) -> "Attribution":
    """Estimate, for every neuron of a site and its layers, the effect of editing that neuron alone.

    Attribution patching: per sentence batch one forward pass keeps the attributed activations in the autograd
    graph and one backward pass gives the readout's gradient in each of them; a neuron's estimate is the sum
    over the edited tokens of (edited value - clean value) x gradient, averaged over the readout's units. A
    divergence readout is minimal at the clean output, so its estimate is second order (``config.n_samples``
    Hutchinson samples per batch; see the module docstring). Then the ``config.verify.top`` neurons with the
    largest estimates and ``config.verify.n_random`` others are patched exactly (:func:`exact_effects`), and the
    verified ones are ranked by their exact effect (AtP*'s correction).

    Parameters
    ----------
    model : HookedTransformer, TransformerBridge or ModelAdapter
        The model (e.g. from :func:`tl_neuronprobe.models.load`).
    corpus : Corpus
        The annotated sentences evaluated; class means and donors are fitted on its words too, unless ``test``
        is given.
    attribute : str
        The attribute whose words are edited (e.g. ``"Number"``).
    config : AttributionConfig, optional
        The edit, readout, site and layers, positions, sentences, Hutchinson samples, integrated-gradient steps,
        verification budget, seed and batching (default ``AttributionConfig()``: mean edits of every
        ``mlp.post`` neuron).
    test : Corpus, optional
        A held-out corpus: means and donors from ``corpus``, ``test`` evaluated.
    device : str or torch.device, optional
        Move the model there first.
    progress : bool
        Show progress bars.

    Returns
    -------
    Attribution
        ``table`` (one row per neuron: ``neuron, layer, site, score, rank, exact, verified``), ``rankings``
        (``{"attribution": every neuron, most used first}``: pass it to ``evaluate_used`` or ``describe`` like an
        encoded ranking) and ``extra`` (``readout``, ``metric`` (the target metric), ``order``, what it cost and
        ``spearman``, ``top_precision``, ``mean_abs_error``, ``n_verified`` on the verified neurons). Under
        ``torchrun`` the ranks share the sentence batches (and the exact patching's neurons) and every rank
        returns this same result.

    Examples
    --------
    >>> import tl_neuronprobe as tnp
    >>> model = tnp.models.load("planted")
    >>> corpus = tnp.testing.planted_corpus(40, seed=0)
    >>> config = tnp.AttributionConfig(edit=tnp.interventions.Zero(), layers=(1,),
    ...                                verify=tnp.evaluation.attribution.Verify(top=4, n_random=4))
    >>> attr = tnp.attribute_used(model, corpus, "Number", config, progress=False)
    >>> sorted(str(n) for n in attr.rankings["attribution"][:2]), attr.extra["metric"]
    (['L1.N23', 'L1.N5'], 'logprob_drop')
    """
    t_start = time.perf_counter()
    distributed.setup()
    config = AttributionConfig() if config is None else config
    if not isinstance(config, AttributionConfig):
        raise TypeError(f"config must be an AttributionConfig, got {type(config).__name__}")
    adapter = ModelAdapter.wrap(model)
    if device is not None:
        adapter.model.to(device)
    neurons = _attributed_neurons(adapter, config)
    setup = _set_up(adapter, corpus, attribute, neurons, config, test, progress)
    scores, cost = _estimate(setup, config, progress)
    exact = np.full(len(neurons), np.nan)
    cols = _verified(scores, config.verify, config.seed) if config.verify.top + config.verify.n_random else \
        np.zeros(0, dtype=np.int64)
    exact_passes, exact_seconds = 0, 0.0
    if len(cols):
        _, exact[cols], exact_passes, exact_seconds = _exact(setup, [neurons[i] for i in cols], progress)
    ranks = _ranks(scores, exact)
    table = pd.DataFrame({"neuron": [str(n) for n in neurons], "layer": [n.layer for n in neurons],
                          "site": [n.site for n in neurons], "score": scores, "rank": ranks, "exact": exact,
                          "verified": np.isfinite(exact)})
    extra = dict(readout=setup.readout.name, metric=setup.metric, order=setup.order, edit=config.edit.name,
                 n_sentences=int(len({i for b in setup.batches for i in b})), batches=len(setup.batches), **cost,
                 exact_forward_passes=int(exact_passes), exact_seconds=round(exact_seconds, 4),
                 **_verification_stats(scores, exact, cols, config.verify.top),
                 seconds=round(time.perf_counter() - t_start, 4))
    ranking = [neurons[i] for i in np.argsort(ranks, kind="stable")]
    return Attribution(table, attribute, config.to_dict(), {"attribution": ranking}, extra)
