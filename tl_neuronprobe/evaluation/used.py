"""The used evaluation: intervene on the top-k neurons of each ranking and read what the model does.

:func:`evaluate_used` answers "does the model *use* the neurons this ranking puts first?" for every ranking and
every k at once, as a pipeline of named stages, each callable on its own:

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

from .. import interventions as iv
from ..core import distributed
from ..core.adapter import ModelAdapter
from ..core.neurons import Neuron
from ..data.corpus import Corpus
from ..interventions.readouts import Readout
from ..interventions.sweep import Spec, Sweep, SweepResult, run_sweep
from ._readout import READOUTS, choose_readout
from ._resolve import METHODS, PRESETS, Resolved, UsedSettings, held_out, resolve
from ._tables import Preparer, Tables, build_tables, sentence_batches
from .compare import EncodedUsed, compare_encoded_used  # noqa: F401 - the old import path
from .plots import plot_used
from .results import mark
from .stats import bootstrap_means, excess_over_random  # noqa: F401 - the old import path

__all__ = ["evaluate_used", "plot_used", "compare_encoded_used", "EncodedUsed", "METHODS", "READOUTS", "PRESETS",
           "UsedSettings", "Resolved", "Tables", "Plan", "resolve", "build_tables", "plan", "choose_readout",
           "tabulate", "sweep_across_ranks"]

#: the table's selections: a ranking's first k, its last k, random k of the same site and layers
SELECTIONS = ("top", "bottom", "random")

# ------------------------------------------------------------------------------------------- 3. plan
@dataclass
class Plan:
    """The sweep's specs and, per table row ``(ranking, selection, k)``, the specs it averages."""

    specs: list[Spec]
    rows: list[tuple[str, str, int]]
    row_specs: list[list[int]]


def _alpha_for(settings: UsedSettings, k: int, n_total: int) -> np.ndarray:
    if settings.method != "translate":
        return np.ones(k)
    if isinstance(settings.alpha, str):
        return iv.scaled_alpha(n_total, settings.beta, np.arange(k))
    return np.full(k, float(settings.alpha))


def _random_specs(adapter: ModelAdapter, pool: tuple, ks: list[int], settings: UsedSettings) -> list[Spec]:
    """``n_random`` seeded permutations of every neuron of ``pool``'s (site, layer) blocks, cut at each k."""
    members = [Neuron(la, j, s) for s, la in pool for j in range(adapter.site_width(s))]
    if max(ks) > len(members):
        raise ValueError(f"k={max(ks)} is larger than the random pool ({len(members)} neurons)")
    specs = []
    for d in range(settings.n_random):
        perm = np.random.default_rng([settings.seed, d, len(members)]).permutation(len(members))
        order = [members[j] for j in perm]
        specs += [Spec(f"random{pool}", "random", k, d, order[:k], _alpha_for(settings, k, len(order))) for k in ks]
    return specs


def plan(adapter: ModelAdapter, orders: dict[str, list[Neuron]], ks: list[int], settings: UsedSettings) -> Plan:
    """Top-k (and bottom-k) of every ranking; random-k draws per pool of (site, layer) blocks, shared by the
    rankings over the same blocks and repeated under each of them in the table."""
    specs: list[Spec] = []
    index: dict[tuple, list[int]] = {}
    pool_of = {name: tuple(sorted({(n.site, n.layer) for n in order})) for name, order in orders.items()}
    selections = SELECTIONS[:2] if settings.bottom else SELECTIONS[:1]
    for name, order in orders.items():
        for sel in selections:
            o = order if sel == "top" else order[::-1]
            for k in ks:
                index[(name, sel, k)] = [len(specs)]
                specs.append(Spec(name, sel, k, 0, list(o[:k]), _alpha_for(settings, k, len(o))))
    if settings.random_baseline:
        for pool in dict.fromkeys(pool_of.values()):
            for spec in _random_specs(adapter, pool, ks, settings):
                index.setdefault((pool, "random", spec.k), []).append(len(specs))
                specs.append(spec)
    rows = [(name, sel, k) for name in orders for sel in selections + ("random",) * settings.random_baseline
            for k in ks]
    row_specs = [index[(pool_of[n] if s == "random" else n, s, k)] for n, s, k in rows]
    return Plan(specs, rows, row_specs)


# ------------------------------------------------------------------------------------------- 4. sweep
def sweep_across_ranks(sweep: Sweep, batches: list[list[int]], prepare: Preparer, readout: Readout,
                       settings: UsedSettings) -> SweepResult:
    """:func:`run_sweep` over this rank's contiguous share of the specs, gathered in spec order on every rank.

    The shares keep the whole sweep's neuron columns (same edit values, same strategy); the readout finalizes
    each spec's row on its own, so concatenating the ranks' metrics gives the single-process metrics.
    ``forward_passes`` and ``seconds`` add up the ranks' work. One process: :func:`run_sweep` itself.
    """
    args = (batches, prepare, readout, settings.strategy, settings.max_tokens)
    if distributed.world_size() == 1:
        return run_sweep(sweep, *args, settings.progress)
    mine = [sweep.specs[i] for i in distributed.share(len(sweep.specs))]
    part = run_sweep(Sweep(sweep.adapter, mine, sweep.method, neurons=sweep.neurons), *args,
                     settings.progress and distributed.is_main()) if mine else None
    parts = [p for p in distributed.gather(part) if p is not None]
    metrics = {key: np.concatenate([p.metrics[key] for p in parts], axis=0) for key in parts[0].metrics}
    return SweepResult(metrics, parts[0].unit_sentence, parts[0].strategy, sum(p.forward_passes for p in parts),
                       parts[0].batches, sum(p.seconds for p in parts))


# ------------------------------------------------------------------------------------------- 5. tabulate
def tabulate(the_plan: Plan, metrics: dict[str, np.ndarray], unit_sentence: np.ndarray, readout: Readout,
             attribute: str, settings: UsedSettings) -> pd.DataFrame:
    """One row per (ranking, selection, k, metric): the mean over units (random rows: over draws too) with a
    percentile bootstrap interval over sentences, the same draws for every row."""
    records = []
    n_sent = len(np.unique(unit_sentence))
    for metric in readout.metrics:
        vals = metrics[metric]
        stacked = np.stack([vals[rs].mean(0) for rs in the_plan.row_specs]) if the_plan.row_specs \
            else np.zeros((0, vals.shape[1]))
        point, lo, hi = bootstrap_means(stacked, unit_sentence, settings.n_bootstrap, settings.ci, settings.seed)
        for (name, sel, k), v, a, b in zip(the_plan.rows, point, lo, hi):
            records.append(dict(attribute=attribute, method=settings.method, readout=readout.name, ranking=name,
                                selection=sel, k=k, metric=metric, value=float(v), ci_low=float(a), ci_high=float(b),
                                n_units=int(vals.shape[1]), n_sentences=n_sent))
    return pd.DataFrame.from_records(records)


# ------------------------------------------------------------------------------------------- the pipeline
def evaluate_used(
    model, corpus: Corpus, attribute: str, rankings: Any, ks: "Sequence[int] | int", method: str = "translate",
    readout: "str | Readout" = "auto", *, site: str = "mlp.post", layer: int | None = None,
    neurons: Sequence[Neuron] | None = None, positions: str = "attribute", alpha: "float | str" = 1.0,
    beta: float = 8.0, mean_of: str = "dataset", resample_from: str = "any", random_baseline: bool = True,
    n_random: int = 3, bottom: bool = True, n_bootstrap: int = 1000, ci: float = 0.95, seed: int = 0,
    fit_corpus: Corpus | None = None, aggregation: str = "last", agreement_attribute: str | None = None,
    divergence: Sequence[str] | None = None, batch_size: int = 32, max_tokens: int = 16384, strategy: str = "auto",
    device: "str | torch.device | None" = None, progress: bool = True, plot: "str | Path | None" = None,
    preset: str | None = None, min_forms: int = 0, max_sentences: int | None = None, test: Corpus | None = None,
) -> pd.DataFrame:
    """Intervene on the top-k (and bottom-k, random-k) neurons of each ranking and measure what changes.

    ``rankings``: a dict name -> ranking, a list of rankings, or one ranking; a ranking is a neuron order
    (list of :class:`Neuron` or ``'L1.N5'`` strings, or column indices: into ``neurons`` if given, e.g.
    ``acts.neurons``, else of ``site`` at ``layer``), a fitted ranker (anything with ``order_``, read as column
    indices), or a ranker name (``'probeless'``...) fitted here with :mod:`tl_neuronprobe.rankers` on
    ``fit_corpus`` (default: ``corpus``) at ``site``/``layer``. An encoded table from
    :func:`~tl_neuronprobe.evaluate_encoded` gives its fitted orders (``attrs['orders']``).

    ``method``: ``translate`` (``h_i + alpha_i (q(next class)_i - q(own class)_i)``; ``alpha`` a constant or
    ``'scaled'``: ``beta * (1e-3/beta) ** (rank/(n-1))``, ``n`` the ranking's length), ``zero``, ``mean``
    (``mean_of='dataset'``: the mean over attribute-bearing words; ``'target'``: the next class's mean) or
    ``resample`` (the value of a random attribute-bearing word, ``resample_from='any'`` or ``'other_class'``).
    Class means and donors come from ``fit_corpus`` (word representations by ``aggregation``); the next class
    follows the sorted class order. ``positions``: ``'attribute'`` (every sub-token of every word carrying the
    attribute) or ``'all'``. ``min_forms`` drops class values with fewer distinct word forms (in the fit or
    the evaluated corpus; a warning names them); ``max_sentences`` caps the evaluated corpus.
    ``test``: a held-out corpus of your own (e.g. another treebank): rankers named here and class means are
    fitted on ``corpus`` and ``test`` is evaluated (the same as ``evaluate_used(model, test, ...,
    fit_corpus=corpus)``; giving both ``test`` and ``fit_corpus`` raises, and so does a test without the
    attribute or with a class value ``corpus`` never has, naming it).
    ``preset='antverg'``: Antverg & Belinkov's setup (:data:`PRESETS`; ``docs/interventions.md`` says where
    the defaults differ and why); its ``max_sentences=6500`` is a cap, so a smaller ``max_sentences`` is kept.

    ``readout``: ``identity``, ``agreement``, ``divergence`` (see :mod:`tl_neuronprobe.readouts`) or ``auto``
    (:func:`choose_readout`).

    Returns a tidy DataFrame: ``attribute, method, readout, ranking, selection (top|bottom|random), k, metric,
    value, ci_low, ci_high, n_units, n_sentences``; random rows average ``n_random`` draws of the ranking's
    site/layer pool and are repeated under each ranking. CIs are percentile bootstraps over sentences. Under
    ``torchrun`` the ranks share the interventions and every rank returns this same table
    (:func:`sweep_across_ranks`).
    ``table.attrs`` says what the table is (``"tnp_kind"``: ``"used"``, ``"attribute"``) and records the readout,
    strategy, forward passes, seconds in all and in the intervention sweep (clean and intervened passes plus the
    readout). With ``plot``, the curves are saved there (:func:`plot_used`).
    """
    t_start = time.perf_counter()
    distributed.setup()
    settings = UsedSettings(method, positions, alpha, beta, mean_of, resample_from, random_baseline, n_random, bottom,
                            n_bootstrap, ci, seed, aggregation, site, layer, neurons, batch_size, max_tokens,
                            strategy, progress, min_forms, max_sentences).with_preset(preset)
    settings.validate()
    if device is not None:
        ModelAdapter.wrap(model).model.to(device)
    corpus, fit_corpus = held_out(corpus, test, fit_corpus, attribute)
    resolved = resolve(model, corpus, attribute, rankings, ks, settings, fit_corpus)
    tables = build_tables(resolved, settings)
    the_plan = plan(resolved.adapter, resolved.orders, resolved.ks, settings)
    sweep = Sweep(resolved.adapter, the_plan.specs, settings.method)
    prepare = Preparer(resolved.adapter, tables, sweep.neurons, settings)
    batches = sentence_batches(tables, resolved.corpus, settings.positions, settings.batch_size)
    ro, has_units = choose_readout(readout, resolved, tables, batches, prepare, divergence, agreement_attribute)
    batches = [b for b in ([i for i in b if has_units[i]] for b in batches) if b]
    if not batches:
        raise ValueError(f"the {ro.name} readout found nothing to read in {resolved.corpus.name}")
    result = sweep_across_ranks(sweep, batches, prepare, ro, settings)
    table = mark(tabulate(the_plan, result.metrics, result.unit_sentence, ro, attribute, settings), "used",
                 attribute)
    table.attrs.update(dict(readout=ro.name, method=settings.method, attribute=attribute, strategy=result.strategy,
                            forward_passes=result.forward_passes, interventions=len(the_plan.specs),
                            batches=result.batches, sweep_seconds=round(result.seconds, 4),
                            seconds=round(time.perf_counter() - t_start, 4), skipped_long=len(tables.too_long),
                            dropped_classes=tables.dropped, preset=preset))
    if plot is not None:
        plot_used(table, plot)
    return table
