"""The used evaluation: intervene on the top-k neurons of each ranking and read what the model does.

:func:`evaluate_used` answers "does the model *use* the neurons this ranking puts first?" for every ranking and
every k at once (what it does is one :class:`UsedConfig`; it returns a :class:`UsedResult`), as a pipeline of
named stages, each callable on its own:

1. :func:`resolve`: the model, the corpora and the rankings as neuron orders;
2. :func:`build_tables`: the evaluated sentences' tokens and class labels, the fit corpus's word activations
   (class means, resample donors) and any ranker named by its name, fitted on them;
3. :func:`plan`: which neurons at which k (top-k, bottom-k, random-k draws of the same site and layers);
4. the sweep (:func:`tl_neuronprobe.interventions.sweep.run_sweep`) under a readout (:func:`choose_readout`);
5. :func:`tabulate`: the tidy table with sentence-bootstrap intervals (:mod:`.stats`).

Under ``torchrun`` the ranks share the sweep's specs (contiguous shares of the (ranking, selection, k, draw)
interventions, every sentence batch on every rank) and gather the per-unit metrics in spec order, so every rank
tabulates the single-process table (:func:`sweep_across_ranks`).

Not for the comparison with the encoded curves (:mod:`.compare`) nor the figures (:mod:`.plots`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from ..core import distributed
from ..core.adapter import ModelAdapter
from ..core.neurons import Neuron
from ..data.corpus import Corpus
from ..interventions import Translate
from ..interventions.readouts import Readout
from ..interventions.sweep import Spec, Sweep, SweepResult, run_sweep
from ._readout import choose_readout
from ._resolve import Baselines, Resolved, UsedBatching, UsedConfig, UsedFit, held_out, resolve
from ._tables import Preparer, Tables, build_tables, sentence_batches
from .plots import plot_used
from .results import TableResult
from .stats import bootstrap_means

__all__ = ["evaluate_used", "UsedResult", "UsedConfig", "Baselines", "UsedFit", "UsedBatching"]

#: the table's selections: a ranking's first k, its last k, random k of the same site and layers
SELECTIONS = ("top", "bottom", "random")

# ------------------------------------------------------------------------------------------- 3. plan
@dataclass
class Plan:
    """The sweep's specs and, per table row ``(ranking, selection, k)``, the specs it averages."""

    specs: list[Spec]
    rows: list[tuple[str, str, int]]
    row_specs: list[list[int]]


def _alpha_for(config: UsedConfig, k: int, n_total: int) -> np.ndarray:
    if not isinstance(config.edit, Translate):
        return np.ones(k)
    return config.edit.alphas(k, n_total)


def _random_specs(adapter: ModelAdapter, pool: tuple, ks: list[int], config: UsedConfig) -> list[Spec]:
    """``n_random`` seeded permutations of every neuron of ``pool``'s (site, layer) blocks, cut at each k."""
    members = [Neuron(la, j, s) for s, la in pool for j in range(adapter.site_width(s))]
    if max(ks) > len(members):
        raise ValueError(f"k={max(ks)} is larger than the random pool ({len(members)} neurons)")
    specs = []
    for d in range(config.baselines.n_random):
        perm = np.random.default_rng([config.seed, d, len(members)]).permutation(len(members))
        order = [members[j] for j in perm]
        specs += [Spec(f"random{pool}", "random", k, d, order[:k], _alpha_for(config, k, len(order))) for k in ks]
    return specs


def plan(adapter: ModelAdapter, orders: dict[str, list[Neuron]], ks: list[int], config: UsedConfig) -> Plan:
    """Top-k (and bottom-k) of every ranking; random-k draws per pool of (site, layer) blocks, shared by the
    rankings over the same blocks and repeated under each of them in the table."""
    specs: list[Spec] = []
    index: dict[tuple, list[int]] = {}
    pool_of = {name: tuple(sorted({(n.site, n.layer) for n in order})) for name, order in orders.items()}
    selections = SELECTIONS[:2] if config.baselines.bottom else SELECTIONS[:1]
    with_random = config.baselines.n_random > 0
    for name, order in orders.items():
        for sel in selections:
            o = order if sel == "top" else order[::-1]
            for k in ks:
                index[(name, sel, k)] = [len(specs)]
                specs.append(Spec(name, sel, k, 0, list(o[:k]), _alpha_for(config, k, len(o))))
    if with_random:
        for pool in dict.fromkeys(pool_of.values()):
            for spec in _random_specs(adapter, pool, ks, config):
                index.setdefault((pool, "random", spec.k), []).append(len(specs))
                specs.append(spec)
    rows = [(name, sel, k) for name in orders for sel in selections + ("random",) * with_random
            for k in ks]
    row_specs = [index[(pool_of[n] if s == "random" else n, s, k)] for n, s, k in rows]
    return Plan(specs, rows, row_specs)


# ------------------------------------------------------------------------------------------- 4. sweep
def sweep_across_ranks(sweep: Sweep, batches: list[list[int]], prepare: Preparer, readout: Readout,
                       batching: UsedBatching, progress: bool = False) -> SweepResult:
    """:func:`run_sweep` over this rank's contiguous share of the specs, gathered in spec order on every rank.

    The shares keep the whole sweep's neuron columns (same edit values, same strategy); the readout finalizes
    each spec's row on its own, so concatenating the ranks' metrics gives the single-process metrics.
    ``forward_passes`` and ``seconds`` add up the ranks' work. One process: :func:`run_sweep` itself.
    """
    args = (batches, prepare, readout, batching.strategy, batching.max_tokens)
    if distributed.world_size() == 1:
        return run_sweep(sweep, *args, progress)
    mine = [sweep.specs[i] for i in distributed.share(len(sweep.specs))]
    part = run_sweep(Sweep(sweep.adapter, mine, sweep.edit, neurons=sweep.neurons), *args,
                     progress and distributed.is_main()) if mine else None
    parts = [p for p in distributed.gather(part) if p is not None]
    metrics = {key: np.concatenate([p.metrics[key] for p in parts], axis=0) for key in parts[0].metrics}
    return SweepResult(metrics, parts[0].unit_sentence, parts[0].strategy, sum(p.forward_passes for p in parts),
                       parts[0].batches, sum(p.seconds for p in parts))


# ------------------------------------------------------------------------------------------- 5. tabulate
def tabulate(the_plan: Plan, metrics: dict[str, np.ndarray], unit_sentence: np.ndarray, readout: Readout,
             attribute: str, config: UsedConfig) -> pd.DataFrame:
    """One row per (ranking, selection, k, metric): the mean over units (random rows: over draws too) with a
    percentile bootstrap interval over sentences, the same draws for every row."""
    records = []
    n_sent = len(np.unique(unit_sentence))
    for metric in readout.metrics:
        vals = metrics[metric]
        stacked = np.stack([vals[rs].mean(0) for rs in the_plan.row_specs]) if the_plan.row_specs \
            else np.zeros((0, vals.shape[1]))
        point, lo, hi = bootstrap_means(stacked, unit_sentence, config.n_bootstrap, config.ci, config.seed)
        for (name, sel, k), v, a, b in zip(the_plan.rows, point, lo, hi):
            records.append(dict(attribute=attribute, edit=config.edit.name, readout=readout.name, ranking=name,
                                selection=sel, k=k, metric=metric, value=float(v), ci_low=float(a), ci_high=float(b),
                                n_units=int(vals.shape[1]), n_sentences=n_sent))
    return pd.DataFrame.from_records(records)


# ------------------------------------------------------------------------------------------- the result
class UsedResult(TableResult):
    """What :func:`evaluate_used` returns: the tidy table, the neuron orders it edited and what the run cost.

    ``table``: one row per (ranking, selection, k, metric) with ``attribute, edit, readout, ranking, selection
    (top|bottom|random), k, metric, value, ci_low, ci_high, n_units, n_sentences``; random rows average the
    random draws of the ranking's site/layer pool and are repeated under each ranking; intervals are percentile
    bootstraps over sentences. ``rankings``: ranking name -> its neurons, best first (rankers named by name:
    as fitted here). ``config``: the :class:`UsedConfig` as a dict. ``extra``: ``readout``, ``strategy``,
    ``forward_passes``, ``interventions``, ``batches``, ``sweep_seconds``, ``seconds``, ``skipped_long``,
    ``dropped_classes``.
    """

    kind = "used"

    @property
    def readout(self) -> str:
        """The name of the readout that measured the edits (``identity``, ``agreement``, ``divergence``, ...)."""
        return str(self.extra.get("readout", ""))

    def plot(self, path: "str | Path | None" = None, metrics: "Sequence[str] | None" = None):
        """Used curves: value against k per metric, top-k with its interval, bottom-k and random-k
        (:func:`~tl_neuronprobe.evaluation.plots.plot_used`). Returns the Figure (saved and closed with ``path``)."""
        return plot_used(self.table, path, metrics)


# ------------------------------------------------------------------------------------------- the pipeline
def evaluate_used(model, corpus: Corpus, attribute: str, rankings: Any, config: "UsedConfig | None" = None, *,
                  test: "Corpus | None" = None, device: "str | torch.device | None" = None,
                  progress: bool = True) -> UsedResult:
    """Edit the top-k (and bottom-k, random-k) neurons of each ranking and measure what the model does.

    Parameters
    ----------
    model : HookedTransformer, TransformerBridge or ModelAdapter
        The model (e.g. from :func:`tl_neuronprobe.models.load`).
    corpus : Corpus
        The annotated sentences evaluated; class means, donors and rankers named by name are fitted on its
        words too, unless ``test`` is given.
    attribute : str
        The attribute whose words are edited (e.g. ``"Number"``).
    rankings : dict, list, EncodedResult or one ranking
        A dict name -> ranking, a list of rankings, or one ranking; a ranking is a neuron order (``Neuron``
        objects or ``'L1.N5'`` strings; column indices of ``config.fit.site`` at ``config.fit.layer``), a fitted
        ranker (its ``order_``, read as such column indices) or a ranker name (``'probeless'``, ...) fitted here
        at ``config.fit.site`` / ``config.fit.layer``; an :class:`~tl_neuronprobe.evaluation.encoded.EncodedResult`
        gives its fitted rankings.
    config : UsedConfig, optional
        The edit, readout, positions, ks, baselines, statistics, fit and batching (default ``UsedConfig()``;
        Antverg & Belinkov's setup: ``UsedConfig.antverg()``).
    test : Corpus, optional
        A held-out corpus: rankers named by name and class means are fitted on ``corpus`` and ``test`` is
        evaluated; a test without the attribute, or with a class value ``corpus`` never has, raises.
    device : str or torch.device, optional
        Move the model there first.
    progress : bool
        Show progress bars.

    Returns
    -------
    UsedResult
        The tidy table (``result.table``), the edited rankings and what the run cost (``result.extra``). Under
        ``torchrun`` the ranks share the interventions and every rank returns this same result
        (:func:`sweep_across_ranks`).

    Examples
    --------
    >>> import tl_neuronprobe as tnp
    >>> from tl_neuronprobe.evaluation.used import Baselines, UsedConfig
    >>> model = tnp.models.load("planted")
    >>> corpus = tnp.testing.planted_corpus(40, seed=0)
    >>> config = UsedConfig(edit=tnp.interventions.Zero(), ks=[1, 2], n_bootstrap=0,
    ...                     baselines=Baselines(bottom=False, n_random=1))
    >>> result = tnp.evaluate_used(model, corpus, "Number", {"planted": ["L1.N5", "L1.N23"]}, config,
    ...                            progress=False)
    >>> result.attribute, result.readout, sorted(set(result.table.selection))
    ('Number', 'identity', ['random', 'top'])
    """
    t_start = time.perf_counter()
    distributed.setup()
    config = UsedConfig() if config is None else config
    if not isinstance(config, UsedConfig):
        raise TypeError(f"config must be a UsedConfig, got {type(config).__name__}")
    if device is not None:
        ModelAdapter.wrap(model).model.to(device)
    corpus, fit_corpus = held_out(corpus, test, attribute)
    resolved = resolve(model, corpus, attribute, rankings, config, fit_corpus)
    tables = build_tables(resolved, config, progress)
    the_plan = plan(resolved.adapter, resolved.orders, resolved.ks, config)
    sweep = Sweep(resolved.adapter, the_plan.specs, config.edit)
    prepare = Preparer(resolved.adapter, tables, sweep.neurons, config)
    batches = sentence_batches(tables, resolved.corpus, config.positions, config.batching.batch_size)
    ro, has_units = choose_readout(config.readout, resolved, tables, batches, prepare)
    batches = [b for b in ([i for i in b if has_units[i]] for b in batches) if b]
    if not batches:
        raise ValueError(f"the {ro.name} readout found nothing to read in {resolved.corpus.name}")
    result = sweep_across_ranks(sweep, batches, prepare, ro, config.batching, progress)
    table = tabulate(the_plan, result.metrics, result.unit_sentence, ro, attribute, config)
    extra = dict(readout=ro.name, strategy=result.strategy, forward_passes=result.forward_passes,
                 interventions=len(the_plan.specs), batches=result.batches, sweep_seconds=round(result.seconds, 4),
                 seconds=round(time.perf_counter() - t_start, 4), skipped_long=len(tables.too_long),
                 dropped_classes=tables.dropped)
    return UsedResult(table, attribute, config.to_dict(), dict(resolved.orders), extra)
