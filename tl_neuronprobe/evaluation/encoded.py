"""The encoded evaluation: how much of an attribute do the top-k neurons of a ranking hold?

:func:`evaluate_encoded` runs the full grid probe x ranking x k, each with the top-k, bottom-k and random-k
neurons, scoring a fresh probe on held-out sentences for the task and for a control task (every word type a
fixed random label); selectivity is the difference. Its :class:`EncodedResult` draws the curves (``.plot()``),
says where the top neurons live (``.layer_distribution(k)``) and how much rankings agree
(``.ranker_agreement(ks)``). Not for fitting rankers on their own (:mod:`tl_neuronprobe.rankers`).
"""

from __future__ import annotations

import dataclasses
import inspect
import time
import warnings
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .. import rankers as _rankers
from ..core.config import Config
from ..core.neurons import Neuron
from ..core.plotting import pyplot, save
from ..core.validation import check_k, split_indices, to_numpy
from .controls import control_labels
from .results import TableResult
from ..probes import GaussianProbe, LogisticProbes

if TYPE_CHECKING:
    from ..data.activations import Activations

__all__ = ["EncodedConfig", "EncodedResult", "evaluate_encoded", "layer_distribution", "ranker_agreement",
           "DEFAULT_RANKERS", "DEFAULT_KS"]

DEFAULT_RANKERS = ("linear", "gaussian", "probeless", "mean_difference", "f_statistic", "mutual_information",
                   "l1", "average_precision", "random")
DEFAULT_KS = (1, 2, 5, 10, 20, 50, 100, 200, 500)
SELECTIONS = ("top", "bottom", "random")
PROBES = ("logistic", "gaussian")
#: LogisticProbes parameters that the evaluation sets itself (``seed`` from the config, ``device`` per call)
_SET_BY_EVALUATION = ("seed", "device", "progress")


@dataclasses.dataclass(frozen=True)
class EncodedConfig(Config):
    """Settings of :func:`evaluate_encoded` (what changes its numbers; ``device`` and ``progress`` are per call).

    Parameters
    ----------
    ks : tuple of int
        How many neurons each probe reads (the top-k, bottom-k and random-k of every ranking); ks larger than
        the number of neurons are dropped with a warning.
    probes : tuple of str
        ``"logistic"`` and/or ``"gaussian"``.
    control : bool
        Also score a control task (Hewitt & Liang: one fixed random label per word type); ``selectivity`` is
        task accuracy minus control accuracy.
    control_distribution : str
        ``"empirical"`` (control labels drawn with the task's label frequencies) or ``"uniform"``.
    test_size : float
        Share of the sentences held out for scoring (unused when ``test=`` activations are given).
    min_count : int
        Classes with fewer training words are dropped.
    seed : int
        Fixes the split, the rankers' seeds, the random-k neurons, the control labels and the probes.
    logistic : dict
        Parameters of :class:`~tl_neuronprobe.probes.LogisticProbes` (e.g. ``{"l2": 1e-3}``); ``seed`` and
        ``device`` are set by the evaluation.

    Examples
    --------
    >>> import tl_neuronprobe as tnp
    >>> config = tnp.evaluation.encoded.EncodedConfig(ks=[1, 5], probes=["logistic"], control=False)
    >>> config.ks, config.test_size
    ((1, 5), 0.3)
    >>> config.replace(min_count=0)
    Traceback (most recent call last):
    ValueError: min_count must be at least 1, got 0
    """

    ks: tuple = DEFAULT_KS
    probes: tuple = PROBES
    control: bool = True
    control_distribution: str = "empirical"
    test_size: float = 0.3
    min_count: int = 10
    seed: int = 0
    logistic: Any = None

    def validate(self) -> None:
        if isinstance(self.probes, str):
            object.__setattr__(self, "probes", (self.probes,))
        ks = (self.ks,) if isinstance(self.ks, (int, np.integer)) else tuple(self.ks)
        if all(isinstance(k, (int, np.integer)) for k in ks):  # numpy ints written as JSON numbers
            object.__setattr__(self, "ks", tuple(int(k) for k in ks))
        if not self.ks or any(int(k) != k or k < 1 for k in self.ks):
            raise ValueError(f"ks must be positive integers, got {list(self.ks)}")
        unknown = [p for p in self.probes if p not in PROBES]
        if unknown or not self.probes:
            raise ValueError(f"unknown probe {unknown[0] if unknown else None!r}; use 'logistic' and/or 'gaussian'")
        if self.control_distribution not in ("empirical", "uniform"):
            raise ValueError(f"control_distribution must be 'empirical' or 'uniform', "
                             f"got {self.control_distribution!r}")
        if not 0.0 < self.test_size < 1.0:
            raise ValueError(f"test_size must be between 0 and 1, got {self.test_size}")
        if self.min_count < 1:
            raise ValueError(f"min_count must be at least 1, got {self.min_count}")
        if self.logistic is not None:
            if not isinstance(self.logistic, Mapping):
                raise ValueError(f"logistic must be a dict of LogisticProbes parameters, got "
                                 f"{type(self.logistic).__name__}")
            known = set(inspect.signature(LogisticProbes).parameters) - set(_SET_BY_EVALUATION)
            bad = sorted(set(self.logistic) - known)
            if bad:
                raise ValueError(f"logistic: LogisticProbes has no parameter(s) {bad} that a config sets; "
                                 f"it takes {sorted(known)}")

    def logistic_probes(self, device: Any = None) -> LogisticProbes:
        """The logistic probes this config trains (on ``device``)."""
        return LogisticProbes(**dict(self.logistic or {}), device=device or "cpu", seed=self.seed)


class EncodedResult(TableResult):
    """What :func:`evaluate_encoded` returns: the tidy table and each ranking's fitted order.

    ``table``: one row per (probe, ranking, selection, k) with ``accuracy``, ``control_accuracy``,
    ``selectivity``, the majority-class ``chance`` of the task and ``control_chance`` of the control task (NaN
    without a control). ``rankings``: ranking name -> every neuron, best first. ``neurons``: the activations'
    neurons in column order. ``extra``: ``classes``, ``fit_seconds``, ``n_train``, ``n_test``.
    """

    kind = "encoded"

    @property
    def neurons(self) -> list[Neuron]:
        """The neurons of the evaluated activations, in column order."""
        found = self.extra.get("neurons")
        if found is None:  # older saves: the rankings cover every neuron
            found = sorted({n for order in self.rankings.values() for n in order})
        if found and not isinstance(found[0], Neuron):
            found = [Neuron.parse(n) for n in found]
            self.extra["neurons"] = found
        return list(found)

    @property
    def orders(self) -> dict[str, np.ndarray]:
        """Ranking name -> column indices into :attr:`neurons`, best first."""
        column = {n: j for j, n in enumerate(self.neurons)}
        return {name: np.asarray([column[n] for n in order], dtype=np.int64) for name, order in self.rankings.items()}

    def plot(self, path: "str | Path | None" = None, metrics: Sequence[str] = ("accuracy", "selectivity")):
        """Accuracy (and selectivity) against k: one panel per probe and metric, one colour per ranking; top-k
        solid, bottom-k dashed, random-k grey dotted. Returns the Figure (saved to ``path`` and closed if given)."""
        return _plot(self.table, path, metrics)

    def layer_distribution(self, k: int) -> pd.DataFrame:
        """Where each ranking's top-k neurons live (see :func:`layer_distribution`)."""
        return layer_distribution(self.neurons, self.orders, k)

    def ranker_agreement(self, ks: Sequence[int] = (10, 50, 100)) -> pd.DataFrame:
        """Overlap@k, Spearman and Kendall between every pair of rankings (see :func:`ranker_agreement`)."""
        return ranker_agreement(self.orders, ks)

    def top_neurons(self, k: int = 10) -> pd.DataFrame:
        """The ``k`` best neurons of every ranking: ranking, rank, column, neuron, layer."""
        column = {n: j for j, n in enumerate(self.neurons)}
        return pd.DataFrame([dict(ranking=name, rank=r + 1, column=column.get(n, -1), neuron=str(n), layer=n.layer)
                             for name, order in self.rankings.items() for r, n in enumerate(order[:k])],
                            columns=["ranking", "rank", "column", "neuron", "layer"])


def _resolve_rankers(rankers: Any, seed: int) -> dict[str, _rankers.NeuronRanker]:
    if rankers is None:
        rankers = DEFAULT_RANKERS
    if isinstance(rankers, (str, _rankers.NeuronRanker)):
        rankers = [rankers]
    out: dict[str, _rankers.NeuronRanker] = {}
    items = rankers.items() if isinstance(rankers, Mapping) else [(None, r) for r in rankers]
    for name, r in items:
        if isinstance(r, str):
            inst = _rankers.make_ranker(r, seed=seed)
            name = name or r.strip().lower()
        elif isinstance(r, _rankers.NeuronRanker):
            from sklearn.base import clone

            inst = clone(r)
            name = name or type(r).__name__.lower()
        else:
            raise TypeError(f"a ranker must be a name or a NeuronRanker, got {type(r).__name__}")
        base, i = name, 2
        while name in out:
            name, i = f"{base}_{i}", i + 1
        out[name] = inst
    if not out:
        raise ValueError("no rankers given")
    return out


@dataclass
class _WordData:
    """The words of one attribute: activations, labels, classes, their sentences (groups) and forms."""

    X: np.ndarray
    y: np.ndarray
    classes: list
    groups: np.ndarray
    words: list


def _word_data(acts: Any, attribute: str, min_count: int) -> _WordData:
    X, y, classes, idx = acts.dataset(attribute, return_index=True, min_count=min_count)
    if len(classes) < 2:
        raise ValueError(f"attribute {attribute!r} has fewer than 2 classes with at least {min_count} words")
    return _WordData(to_numpy(X).astype(np.float32, copy=False), to_numpy(y).astype(np.int64), list(classes),
                     np.asarray(acts.sentence_ids)[idx], [acts.words[i] for i in idx])


def _check_test_activations(acts: Any, test: Any, attribute: str) -> None:
    """``test`` must be activations of the same neurons, in the same columns, with words carrying ``attribute``."""
    if not (hasattr(test, "dataset") and hasattr(test, "neurons")):
        raise TypeError(f"test= takes Activations (extract the test corpus with tnp.extract first), "
                        f"got {type(test).__name__}")
    train_n, test_n = list(acts.neurons), list(test.neurons)
    if train_n != test_n:
        at = next((j for j, (a, b) in enumerate(zip(train_n, test_n)) if a != b), min(len(train_n), len(test_n)))
        seen = (f"column {at} is {train_n[at]} in training and {test_n[at]} in the test" if at < len(train_n)
                and at < len(test_n) else f"{len(train_n)} neurons in training, {len(test_n)} in the test")
        raise ValueError(f"the test activations have different neurons than the training ones: {seen}; "
                         "select the same neurons in both (Activations.select)")
    if attribute not in test.attributes:
        raise KeyError(f"the test activations have no attribute {attribute!r}; they have {list(test.attributes)}")


def _given_test(acts: Any, test: Any, attribute: str, min_count: int) -> tuple[_WordData, np.ndarray, np.ndarray]:
    """The training words of ``acts`` and the test words of ``test`` in one table, test rows last: (data, tr, te).

    Classes come from the training words (``min_count`` applies there); a test class never seen in training
    raises (naming it), test words of a training class dropped by ``min_count`` are dropped with a warning.
    """
    _check_test_activations(acts, test, attribute)
    train = _word_data(acts, attribute, min_count)
    X_te, y, found, idx = test.dataset(attribute, return_index=True)
    labels = np.asarray(found, dtype=object)[to_numpy(y).astype(np.int64)]
    in_training = {str(v) for v in acts.attributes[attribute] if v is not None}
    unseen = {c: int((labels == c).sum()) for c in found if c not in in_training}
    if unseen:
        raise ValueError(f"the test words have {attribute} classes never seen in training: "
                         + ", ".join(f"{c} ({n} words)" for c, n in unseen.items())
                         + f"; training classes: {sorted(in_training)}")
    kept = np.isin(labels, train.classes)
    if not kept.all():
        dropped = {c: int((labels == c).sum()) for c in found if c not in train.classes}
        warnings.warn(f"{attribute}: test words of classes with fewer than {min_count} training words dropped: "
                      + ", ".join(f"{c} ({n} words)" for c, n in dropped.items()), stacklevel=3)
    if not kept.any():
        raise ValueError(f"no test word has an {attribute} class kept in training ({train.classes})")
    X_te, idx, labels = to_numpy(X_te).astype(np.float32, copy=False)[kept], idx[kept], labels[kept]
    lookup = {c: i for i, c in enumerate(train.classes)}
    groups_te = np.asarray(test.sentence_ids)[idx] + (int(train.groups.max()) + 1)  # never a training sentence id
    data = _WordData(np.concatenate([train.X, X_te]), np.concatenate([train.y, [lookup[c] for c in labels]]),
                     train.classes, np.concatenate([train.groups, groups_te]),
                     train.words + [test.words[i] for i in idx])
    n = len(train.y)
    return data, np.arange(n), np.arange(n, len(data.y))


def _fitting_ks(ks: Sequence[int] | None, D: int) -> list[int]:
    """The ks that fit ``D`` neurons (a warning names the others)."""
    ks = sorted({int(k) for k in (ks if ks is not None else DEFAULT_KS)})
    dropped = [k for k in ks if k > D]
    ks = [check_k(k, D) for k in ks if k <= D]
    if dropped:
        warnings.warn(f"ks {dropped} exceed the {D} neurons and were dropped", stacklevel=3)
    if not ks:
        raise ValueError(f"no k fits the {D} neurons")
    return ks


def _fit_orders(rankers: dict, data: _WordData, tr: np.ndarray, attribute: str, progress: bool
                ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Each ranker fitted on the training words: its order and fit time."""
    orders: dict[str, np.ndarray] = {}
    fit_seconds: dict[str, float] = {}
    for name, r in rankers.items():
        t0 = time.perf_counter()
        r.fit(data.X[tr], data.y[tr], groups=data.groups[tr])
        fit_seconds[name] = time.perf_counter() - t0
        orders[name] = r.order_.copy()
        if progress:
            print(f"[encoded] {attribute}: ranked with {name} in {fit_seconds[name]:.1f}s")
    return orders, fit_seconds


def _subsets(orders: dict[str, np.ndarray], D: int, seed: int) -> list[tuple[str, str, np.ndarray]]:
    """(ranking, selection, prefix order): top and bottom per ranking, one seeded random order for all."""
    subsets = []
    for name, order in orders.items():
        subsets.append((name, "top", order))
        subsets.append((name, "bottom", order[::-1].copy()))
    subsets.append(("*", "random", np.random.default_rng(seed).permutation(D)))
    return subsets


def _score_logistic(lp: LogisticProbes, data: _WordData, labels: np.ndarray, tr, te, subsets, ks) -> dict:
    flat = [(i, k) for i in range(len(subsets)) for k in ks]
    lp.fit(data.X[tr], labels[tr], [subsets[i][2][:k] for i, k in flat], groups=data.groups[tr])
    return {(i, k): float(a) for (i, k), a in zip(flat, lp.subset_scores(data.X[te], labels[te]))}


def _score_gaussian(data: _WordData, labels: np.ndarray, tr, te, subsets, ks, device: str) -> dict:
    """One Gaussian probe over the union of the top-kmax columns, scored on every prefix (no refit)."""
    D = data.X.shape[1]
    vals, counts = np.unique(labels[tr], return_counts=True)
    rows = tr[np.isin(labels[tr], vals[counts >= 2])]
    kmax = max(ks)
    cols = np.unique(np.concatenate([s[2][:kmax] for s in subsets]))
    pos = np.full(D, -1, dtype=np.int64)
    pos[cols] = np.arange(len(cols))
    gp = GaussianProbe(device=device).fit(data.X[rows][:, cols], labels[rows], n_dims_total=D)
    Xte = data.X[te][:, cols]
    out = {}
    for i, (_, _, order) in enumerate(subsets):
        for k, a in zip(ks, gp.prefix_scores(Xte, labels[te], pos[order[:kmax]], ks)):
            out[(i, k)] = float(a)
    return out


def _chance(labels: np.ndarray | None) -> float:
    """The majority-class rate of ``labels`` (what always guessing the commonest class scores); NaN without labels."""
    if labels is None or not len(labels):
        return float("nan")
    return float(np.unique(labels, return_counts=True)[1].max() / len(labels))


def _records(results: dict, probes, subsets, orders, ks, attribute: str, chance: float, D: int,
             control_chance: float = float("nan")) -> pd.DataFrame:
    """One row per (probe, ranking, selection, k); ``control_chance`` sits beside ``selectivity`` because a
    control task with a dominant label lets a probe score high on it by guessing that label alone."""
    records = []
    for probe in probes:
        for i, (name, sel, _) in enumerate(subsets):
            for nm in (list(orders) if name == "*" else [name]):  # random rows repeat under every ranking
                for k in ks:
                    acc = results[("task", probe, i, k)]
                    cacc = results.get(("control", probe, i, k), np.nan)
                    records.append(dict(attribute=attribute, ranking=nm, probe=probe, selection=sel, k=k,
                                        accuracy=acc, control_accuracy=cacc, selectivity=acc - cacc,
                                        chance=chance, control_chance=control_chance, n_neurons=D))
    table = pd.DataFrame.from_records(records)
    table["selection"] = pd.Categorical(table["selection"], categories=list(SELECTIONS))
    table = table.sort_values(["probe", "ranking", "selection", "k"], kind="stable").reset_index(drop=True)
    table["selection"] = table["selection"].astype(str)
    return table


def evaluate_encoded(acts: "Activations", attribute: str, rankers: Any = None, config: EncodedConfig | None = None,
                     *, test: "Activations | None" = None, device: Any = None, progress: bool = False
                     ) -> EncodedResult:
    """Probe x ranking x k x {top, bottom, random} on held-out sentences.

    Parameters
    ----------
    acts : Activations
        Word activations with ``attribute`` among their annotations.
    attribute : str
        What to probe for (``"upos"``, ``"Number"``, ...).
    rankers : names, NeuronRanker instances or a dict name -> either, optional
        The rankings to evaluate (default: all of :data:`DEFAULT_RANKERS`); each is fitted on the training words
        only, with the config's seed.
    config : EncodedConfig, optional
        ks, probes, control task, split, ``min_count``, seed (default: ``EncodedConfig()``).
    test : Activations, optional
        Held-out words of your own (e.g. another treebank's activations, the same neurons): rankers and probes
        are fitted on every word of ``acts`` and scored on ``test`` (``test_size`` is then unused; a test class
        never seen in training, a missing attribute or other neurons raise; test words of classes dropped by
        ``min_count`` are dropped with a warning). Default: a seeded split of ``acts`` *by sentence*.
    device : str, optional
        Where the probes train (default ``"cpu"``).
    progress : bool
        Print each ranker's fit time.

    Returns
    -------
    EncodedResult
        ``.table``: one row per (probe, ranking, selection, k) with ``accuracy``, ``control_accuracy``,
        ``selectivity``, ``chance`` and ``control_chance``; ``.rankings``: each ranking's neurons, best first.

    Examples
    --------
    >>> import tl_neuronprobe as tnp
    >>> from tl_neuronprobe.evaluation.encoded import EncodedConfig
    >>> model = tnp.models.load("planted")
    >>> acts = tnp.extract(model, tnp.Corpus.load("synthetic:40"), progress=False)
    >>> result = tnp.evaluate_encoded(acts, "Number", ["probeless", "random"],
    ...                               EncodedConfig(ks=[1, 4], probes=["logistic"], control=False))
    >>> result.attribute, sorted(result.rankings), sorted(set(result.table.k))
    ('Number', ['probeless', 'random'], [1, 4])
    """
    config = config if config is not None else EncodedConfig()
    if not isinstance(config, EncodedConfig):
        raise TypeError(f"config must be an EncodedConfig, got {type(config).__name__}")
    seed, min_count = config.seed, config.min_count
    if test is None:
        data = _word_data(acts, attribute, min_count)
        tr, te = split_indices(len(data.y), config.test_size, groups=data.groups, y=data.y, seed=seed,
                               min_train_per_class=2)
    else:
        data, tr, te = _given_test(acts, test, attribute, min_count)
    D = data.X.shape[1]
    ks = _fitting_ks(config.ks, D)
    orders, fit_seconds = _fit_orders(_resolve_rankers(rankers, seed), data, tr, attribute, progress)
    subsets = _subsets(orders, D, seed)
    tasks = {"task": data.y}
    if config.control:
        tasks["control"] = control_labels(data.words, data.y, distribution=config.control_distribution, seed=seed)
    results: dict[tuple, float] = {}
    for task, labels in tasks.items():
        for probe in config.probes:
            if probe == "logistic":
                scores = _score_logistic(config.logistic_probes(device), data, labels, tr, te, subsets, ks)
            else:
                scores = _score_gaussian(data, labels, tr, te, subsets, ks, device or "cpu")
            results.update({(task, probe, i, k): a for (i, k), a in scores.items()})
    chance = _chance(data.y[te])
    control_chance = _chance(tasks["control"][te]) if "control" in tasks else float("nan")
    table = _records(results, config.probes, subsets, orders, ks, attribute, chance, D, control_chance)
    neurons = [Neuron.parse(n) for n in acts.neurons]
    rankings = {name: [neurons[int(j)] for j in order] for name, order in orders.items()}
    extra = dict(neurons=neurons, classes=list(data.classes), fit_seconds=fit_seconds, n_train=len(tr),
                 n_test=len(te))
    return EncodedResult(table, attribute, config.to_dict(), rankings, extra)


def _encoded_panel(ax, sub: pd.DataFrame, metric: str, rankings: list, colors: list) -> None:
    for j, rn in enumerate(rankings):
        for sel, ls in (("top", "-"), ("bottom", "--")):
            d = sub[(sub["ranking"] == rn) & (sub.selection == sel)].sort_values("k")
            if len(d):
                ax.plot(d.k, d[metric], ls, color=colors[j % len(colors)], marker="o", ms=3,
                        label=rn if sel == "top" else None)
    d = sub[sub.selection == "random"].drop_duplicates("k").sort_values("k")
    if len(d):
        ax.plot(d.k, d[metric], ":", color="grey", label="random-k")
    if metric == "accuracy" and "chance" in sub:
        ax.axhline(float(sub["chance"].iloc[0]), color="black", lw=0.6, alpha=0.5)


def _plot(table: pd.DataFrame, path: Any = None, metrics: Sequence[str] = ("accuracy", "selectivity")):
    """The encoded curves of ``table`` (see :meth:`EncodedResult.plot`)."""
    plt = pyplot()
    metrics = [m for m in metrics if m in table and table[m].notna().any()]
    probes = list(dict.fromkeys(table["probe"]))
    fig, axes = plt.subplots(len(metrics), len(probes), figsize=(5.5 * len(probes), 3.8 * len(metrics)),
                             squeeze=False)
    rankings = list(dict.fromkeys(table["ranking"]))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    attr = table["attribute"].iloc[0] if "attribute" in table else ""
    for ci, probe in enumerate(probes):
        for ri, metric in enumerate(metrics):
            ax = axes[ri][ci]
            _encoded_panel(ax, table[table.probe == probe], metric, rankings, colors)
            ax.set_xscale("log")
            ax.set_xlabel("k (neurons)")
            ax.set_ylabel(metric)
            ax.set_title(f"{attr}: {probe} probe")
            ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="lower right")
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        save(fig, path)
    return fig


def _as_orders(order: Any, neurons: Sequence[Neuron] | None = None) -> dict[str, np.ndarray]:
    """Column orders from an :class:`EncodedResult`, a dict name -> order (or fitted ranker), a fitted ranker or
    one order; orders of neurons are mapped to columns of ``neurons``."""
    if isinstance(order, EncodedResult):
        return order.orders
    if isinstance(order, Mapping):
        items = {str(k): getattr(v, "order_", v) for k, v in order.items()}
    elif isinstance(order, _rankers.NeuronRanker):
        items = {type(order).__name__.lower(): order.order_}
    else:
        items = {"ranking": order}
    out = {}
    for name, o in items.items():
        if isinstance(o, (list, tuple)) and o and isinstance(o[0], (Neuron, str)):
            if neurons is None:
                raise ValueError(f"ranking {name!r} lists neurons: give the neurons they index")
            column = {n: j for j, n in enumerate(neurons)}
            o = [column[Neuron.parse(n)] for n in o]
        out[name] = np.asarray(to_numpy(o) if not isinstance(o, (list, tuple)) else o, dtype=np.int64)
    return out


def layer_distribution(neurons: Any, order: Any, k: int) -> pd.DataFrame:
    """Where the top-k neurons live: count and share per layer (and site).

    ``neurons``: an Activations, an :class:`EncodedResult` or the list of :class:`~tl_neuronprobe.Neuron`
    (column order). ``order``: an order array, a fitted ranker, a dict name -> order (column indices or
    neurons) or an :class:`EncodedResult` (its rankings). One row per (ranking, layer, site), with the share of
    the layer's neurons (``layer_share``) for comparison.
    """
    neurons = [Neuron.parse(n) for n in getattr(neurons, "neurons", neurons)]
    orders = _as_orders(order, neurons)
    records = []
    layers = np.asarray([n.layer for n in neurons])
    sites = np.asarray([n.site for n in neurons])
    for name, o in orders.items():
        kk = check_k(k, len(neurons))
        top = o[:kk]
        for (layer, site) in sorted(set(zip(layers.tolist(), sites.tolist()))):
            in_layer = (layers == layer) & (sites == site)
            cnt = int(in_layer[top].sum())
            records.append(dict(ranking=name, layer=int(layer), site=site, count=cnt, share=cnt / kk,
                                layer_share=float(in_layer.mean())))
    return pd.DataFrame.from_records(records)


def ranker_agreement(orders: Any, ks: Sequence[int] = (10, 50, 100)) -> pd.DataFrame:
    """Agreement between every pair of rankings: overlap@k = |top-k(a) ∩ top-k(b)| / k, and Spearman's rho and
    Kendall's tau between the full rankings. ``orders``: an :class:`EncodedResult` or a dict name -> order."""
    from scipy.stats import kendalltau, spearmanr

    if isinstance(orders, Mapping) and any(isinstance(v, (list, tuple)) and v and isinstance(v[0], (Neuron, str))
                                           for v in orders.values()):
        everyone = sorted({Neuron.parse(n) for v in orders.values() for n in v})
        orders = _as_orders(orders, everyone)
    orders = _as_orders(orders)
    names = list(orders)
    n = len(next(iter(orders.values())))
    ranks = {}
    for nm, o in orders.items():
        if len(o) != n:
            raise ValueError("all rankings must cover the same neurons")
        r = np.empty(n, dtype=np.int64)
        r[o] = np.arange(n)
        ranks[nm] = r
    records = []
    for a, b in combinations(names, 2):
        rho = float(spearmanr(ranks[a], ranks[b]).statistic) if n > 1 else np.nan
        tau = float(kendalltau(ranks[a], ranks[b]).statistic) if n > 1 else np.nan
        for k in ks:
            k = check_k(int(k), n)
            ov = len(np.intersect1d(orders[a][:k], orders[b][:k])) / k
            records.append(dict(ranking_a=a, ranking_b=b, k=k, overlap=ov, spearman=rho, kendall=tau))
    return pd.DataFrame.from_records(records, columns=["ranking_a", "ranking_b", "k", "overlap", "spearman",
                                                       "kendall"])


def plot_encoded(result: Any, path: Any = None, metrics: Sequence[str] = ("accuracy", "selectivity")):
    """Not public (not in ``__all__``): kept only while ``tl_neuronprobe/__init__.py`` imports it; use
    :meth:`EncodedResult.plot`. Delete with that import."""
    return _plot(getattr(result, "table", result), path, metrics)
