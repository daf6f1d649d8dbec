"""Encoded versus used: set probing curves beside intervention curves and say where the rankings disagree.

Not for computing either curve (:func:`~tl_neuronprobe.evaluate_encoded`, :func:`~tl_neuronprobe.evaluate_used`).
Antverg & Belinkov (2022) found that the ranking that encodes an attribute best is not the one the model uses
most; :func:`compare_encoded_used` checks that per k and returns a :class:`Comparison`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from ..core.config import Config
from ..core.plotting import pyplot, save
from .plots import RANDOM_BASELINE, scale_k_axis
from .results import TableResult, attribute_of, mark

try:  # the metrics each readout reports, first = the default
    from ..interventions.readouts import READOUT_METRICS
except ImportError:  # pragma: no cover - without it the used table's first metric is the default
    READOUT_METRICS = {}

__all__ = ["CompareConfig", "Comparison", "compare_encoded_used", "NeuronCompareConfig", "NeuronComparison",
           "compare_per_neuron"]

_ENCODED_METRICS = ("accuracy", "f1", "macro_f1", "selectivity", "score", "mutual_information")


@dataclasses.dataclass(frozen=True)
class CompareConfig(Config):
    """Settings of :func:`compare_encoded_used`.

    Parameters
    ----------
    encoded_metric : str, optional
        The encoded score (default: ``accuracy``, else the table's first known metric).
    used_metric : str, optional
        The used score (default: the readout's first metric).
    selection : str
        Which neurons of each ranking: ``"top"`` (or ``"bottom"``).
    probe : str, optional
        The encoded table's probe (``"logistic"``; ignored when the table has one probe).
    tol : float
        Without bootstrap intervals, the point margin of "better than random" and "disagree".
    attribute : str, optional
        The attribute to compare when a table holds several (default: the used result's).

    Examples
    --------
    >>> from tl_neuronprobe.evaluation.compare import CompareConfig
    >>> CompareConfig(used_metric="kl").to_dict()["used_metric"]
    'kl'
    """

    encoded_metric: "str | None" = None
    used_metric: "str | None" = None
    selection: str = "top"
    probe: "str | None" = "logistic"
    tol: float = 0.02
    attribute: "str | None" = None

    def validate(self) -> None:
        if self.selection not in ("top", "bottom"):
            raise ValueError(f"selection must be 'top' or 'bottom', got {self.selection!r}")
        if self.tol < 0:
            raise ValueError(f"tol must be at least 0, got {self.tol}")


class Comparison(TableResult):
    """What :func:`compare_encoded_used` returns.

    ``table``: per (ranking, k) the encoded and used scores, their ranks, the used interval and the random-k
    baseline (kind ``"compare"``). ``per_k``: per k the Spearman correlation of the two orderings of the
    rankings, the best ranking by each, whether they disagree and which rankings beat random neurons (kind
    ``"compare_per_k"``). ``summary``: the same in words, rules included (also ``str(comparison)``).
    ``per_k`` and ``summary`` are derived from ``table`` and the config, so a saved comparison reloads whole.
    """

    kind = "compare"

    def __init__(self, table: pd.DataFrame, attribute: "str | None" = None, config: "dict | None" = None,
                 rankings: "dict | None" = None, extra: "dict | None" = None) -> None:
        super().__init__(table, attribute, config, rankings, extra)
        settings = _config(self.config)
        self.per_k = mark(_per_k(self.table, settings.tol), "compare_per_k", attribute)
        self.summary = _summary(self.per_k, self.table, self.encoded_metric, self.used_metric, attribute,
                                settings.tol)

    @property
    def encoded_metric(self) -> str:
        return str(self.extra.get("encoded_metric", "encoded"))

    @property
    def used_metric(self) -> str:
        return str(self.extra.get("used_metric", "used"))

    def __str__(self) -> str:
        return self.summary

    def plot(self, path: "str | Path | None" = None):
        """Encoded (left) and used (right) against k, one colour per ranking, the random-k baseline dashed.
        Returns the Figure (saved to ``path`` and closed if given)."""
        return _plot_compare(self.table, self.encoded_metric, self.used_metric, self.attribute, path)


def _config(config: Any) -> CompareConfig:
    if config is None or config == {}:
        return CompareConfig()
    if isinstance(config, CompareConfig):
        return config
    if isinstance(config, dict):
        return CompareConfig.from_dict(config)
    raise TypeError(f"config must be a CompareConfig, got {type(config).__name__}")


def _select(t: pd.DataFrame, column: str, value: Any, only_if_present: bool = True) -> pd.DataFrame:
    if value is None or column not in t.columns or (only_if_present and value not in set(t[column])):
        return t
    return t[t[column] == value]


def _curve(table: pd.DataFrame, metric: str | None, preferred: Sequence[str], what: str, selection: str,
           attribute: str | None, probe: str | None = None) -> tuple[pd.DataFrame, str]:
    """(ranking, k, value) of one metric from a tidy (metric/value) or wide table."""
    t = table.copy()
    t.attrs = {}
    if "ranking" not in t.columns or "k" not in t.columns:
        raise ValueError(f"the {what} table needs 'ranking' and 'k' columns, has {list(table.columns)}")
    t = _select(_select(t, "selection", selection, only_if_present=False), "probe", probe)
    t = _select(t, "attribute", attribute, only_if_present=False)
    if "metric" in t.columns and "value" in t.columns:
        have = list(dict.fromkeys(t["metric"]))
        metric = metric or next((m for m in preferred if m in have), have[0] if have else None)
        if metric not in have:
            raise ValueError(f"the {what} table has no metric {metric!r}; it has {have}")
        t, col = t[t["metric"] == metric], "value"
    else:
        numeric = [c for c in t.columns if c not in ("k",) and pd.api.types.is_numeric_dtype(t[c])]
        metric = metric or next((m for m in preferred if m in numeric), numeric[0] if numeric else None)
        if metric not in t.columns:
            raise ValueError(f"the {what} table has no column {metric!r}; numeric columns: {numeric}")
        col = metric
    cis = [c for c in ("ci_low", "ci_high") if c in t.columns and col == "value"]
    out = t.groupby(["ranking", "k"], as_index=False)[[col, *cis]].mean().rename(columns={col: "value"})
    if out.empty:
        raise ValueError(f"the {what} table has no rows for selection {selection!r}")
    return out, metric


def _per_k(merged: pd.DataFrame, tol: float) -> pd.DataFrame:
    """Per k: Spearman correlation of the two orderings, the best ranking by each, rankings at random level."""
    from scipy.stats import spearmanr

    rows = []
    for k, g in merged.groupby("k"):
        rho = float("nan")
        if len(g) >= 2 and g["encoded"].nunique() > 1 and g["used"].nunique() > 1:
            rho = float(spearmanr(g["encoded"], g["used"]).statistic)
        be, bu = g.loc[g["encoded"].idxmax()], g.loc[g["used"].idxmax()]
        row = dict(k=int(k), n_rankings=len(g), spearman=rho, best_encoded=be["ranking"],
                   best_encoded_score=float(be["encoded"]), best_used=bu["ranking"], best_used_score=float(bu["used"]),
                   disagree=_disagree(g, be, bu, tol))
        if "used_minus_random" in g:
            row["at_or_below_random"] = ", ".join(g.loc[g["used_minus_random"] <= tol, "ranking"])
            better = _better_than_random(g, tol)
            row["better_than_random"] = ", ".join(g.loc[better, "ranking"])
            row["not_better_than_random"] = ", ".join(g.loc[~better, "ranking"])
        rows.append(row)
    return pd.DataFrame(rows)


def _used_intervals(g: pd.DataFrame) -> bool:
    """Whether every ranking's used score has its bootstrap interval."""
    cols = ["used_ci_low", "used_ci_high"]
    return all(c in g for c in cols) and bool(g[cols].notna().all().all())


def _disagree(g: pd.DataFrame, be: pd.Series, bu: pd.Series, tol: float) -> bool:
    """The rule: encoded and used disagree at k iff the ranking the model uses most is not the best encoder and
    its used interval lies wholly above the best encoder's (no overlap); without intervals, by more than ``tol``.
    A fixed ``tol`` alone hid every disagreement of the divergence metrics, whose values are ~0.003."""
    if be["ranking"] == bu["ranking"]:
        return False
    enc = g[g["ranking"] == be["ranking"]].iloc[0]
    if _used_intervals(g):
        return bool(bu["used_ci_low"] > enc["used_ci_high"])
    return bool(enc["used"] < bu["used"] - tol)


def _has_intervals(merged: pd.DataFrame) -> bool:
    """Whether every row has the used score's and the random baseline's bootstrap interval."""
    cols = ["used_ci_low", "random_ci_high"]
    return all(c in merged for c in cols) and bool(merged[cols].notna().all().all())


def _better_than_random(g: pd.DataFrame, tol: float) -> pd.Series:
    """The rule: a ranking's top-k beat random-k iff its interval's lower bound lies above the random interval's
    upper bound (no overlap); tables without intervals fall back to a point margin of ``tol``."""
    if _has_intervals(g):
        return g["used_ci_low"] > g["random_ci_high"]
    return g["used_minus_random"] > tol


def _random_rule(merged: pd.DataFrame, tol: float) -> str:
    """The rule of :func:`_better_than_random`, in words for the summary."""
    if _has_intervals(merged):
        return ("(better than random means the ranking's bootstrap interval lies wholly above the random "
                "neurons' interval: its lower bound above their upper bound)")
    return f"(the tables have no intervals: better than random means more than {tol} above the random neurons)"


def _merge(enc: pd.DataFrame, used: pd.DataFrame, rand: pd.DataFrame | None) -> pd.DataFrame:
    enc = enc.drop(columns=["ci_low", "ci_high"], errors="ignore")
    used = used.rename(columns={"ci_low": "used_ci_low", "ci_high": "used_ci_high"})
    merged = enc.merge(used, on=["ranking", "k"], suffixes=("_encoded", "_used"))
    if merged.empty:
        raise ValueError("the encoded and used tables share no (ranking, k): rankings "
                         f"{sorted(set(enc['ranking']))} vs {sorted(set(used['ranking']))}, "
                         f"k {sorted(set(enc['k']))} vs {sorted(set(used['k']))}")
    merged = merged.rename(columns={"value_encoded": "encoded", "value_used": "used"})
    if rand is not None:
        merged = merged.merge(rand, on="k", how="left")
        merged["used_minus_random"] = merged["used"] - merged["random"]
    merged["encoded_rank"] = merged.groupby("k")["encoded"].rank(ascending=False, method="min")
    merged["used_rank"] = merged.groupby("k")["used"].rank(ascending=False, method="min")
    return merged


def _attribute(encoded_table: pd.DataFrame, used_table: pd.DataFrame, attribute: str | None) -> str | None:
    """The attribute to compare: ``attribute`` if given, else the used table's own; it must be in every table
    that has an ``attribute`` column (a KeyError names it and the ones there), never averaged over."""
    if attribute is None:
        attribute = attribute_of(used_table)
    for what, t in (("used", used_table), ("encoded", encoded_table)):
        if "attribute" not in t.columns:
            continue
        have = sorted(set(t["attribute"].astype(str)))
        if attribute is None and len(have) > 1:
            raise ValueError(f"the {what} table holds several attributes {have}; pass attribute= to pick one")
        if attribute is not None and attribute not in have:
            raise KeyError(f"attribute {attribute!r} is not in the {what} table; it has {have}")
    return attribute


def _table(result: Any, what: str) -> pd.DataFrame:
    """The table of a result (a DataFrame is taken as it is)."""
    table = result if isinstance(result, pd.DataFrame) else getattr(result, "table", None)
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"{what} must be a {'EncodedResult' if what == 'encoded' else 'UsedResult'} (or its "
                        f"table), got {type(result).__name__}")
    return table


def compare_encoded_used(encoded: Any, used: Any, config: CompareConfig | None = None) -> Comparison:
    """Put encoded (probing) and used (intervention) curves side by side and say where they disagree.

    Parameters
    ----------
    encoded : EncodedResult
        From :func:`~tl_neuronprobe.evaluate_encoded` (or any table with ``ranking``, ``k`` and a metric column
        or ``metric``/``value`` columns).
    used : UsedResult
        From :func:`~tl_neuronprobe.evaluate_used` (or its table).
    config : CompareConfig, optional
        Metrics, selection, probe, ``tol``, attribute (default: ``CompareConfig()``).

    Returns
    -------
    Comparison
        Per k present in both, the rankings are ordered by their encoded and by their used score; ``per_k``
        gives the Spearman correlation of the two orderings, the best ranking by each, and which rankings beat
        random-k. A ranking is *better than random* at k iff its bootstrap interval's lower bound lies above the
        random-k interval's upper bound (without intervals: more than ``tol`` above). Encoded and used
        *disagree* at k iff the ranking that changes the model most is not the best encoder and its used
        interval lies wholly above the best encoder's (without intervals: by more than ``tol``). An attribute
        missing from a table is a KeyError (never averaged over).

    Examples
    --------
    >>> import pandas as pd
    >>> import tl_neuronprobe as tnp
    >>> encoded = pd.DataFrame(dict(attribute="Number", ranking=["a", "b"], probe="logistic", selection="top",
    ...                             k=1, accuracy=[0.9, 0.6]))
    >>> used = pd.DataFrame(dict(attribute="Number", ranking=["a", "b"], selection="top", k=1, metric="kl",
    ...                          value=[0.01, 0.05]))
    >>> comparison = tnp.compare_encoded_used(encoded, used)
    >>> comparison.kind, comparison.attribute, comparison.per_k.loc[0, "best_used"]
    ('compare', 'Number', 'b')
    """
    config = _config(config)
    encoded_table, used_table = _table(encoded, "encoded"), _table(used, "used")
    attribute = config.attribute
    if attribute is None and isinstance(used, TableResult):
        attribute = used.attribute
    attribute = _attribute(encoded_table, used_table, attribute)
    readout = str(used_table["readout"].iloc[0]) if "readout" in used_table.columns and len(used_table) else None
    enc, enc_metric = _curve(encoded_table, config.encoded_metric, _ENCODED_METRICS, "encoded", config.selection,
                             attribute, config.probe)
    used_curve, use_metric = _curve(used_table, config.used_metric, READOUT_METRICS.get(readout, ()), "used",
                                    config.selection, attribute)
    rand = None
    if "selection" in used_table.columns and (used_table["selection"] == "random").any():
        rand, _ = _curve(used_table, use_metric, (), "used", "random", attribute)
        rand = rand.drop(columns="ranking").groupby("k", as_index=False).mean().rename(
            columns={"value": "random", "ci_low": "random_ci_low", "ci_high": "random_ci_high"})
    merged = _merge(enc, used_curve, rand)
    table = merged.sort_values(["k", "ranking"]).reset_index(drop=True)
    return Comparison(table, attribute, config.to_dict(), None,
                      dict(encoded_metric=enc_metric, used_metric=use_metric))


def _summary(per_k: pd.DataFrame, merged: pd.DataFrame, enc_metric: str, use_metric: str,
             attribute: str | None, tol: float) -> str:
    what = f" for {attribute}" if attribute else ""
    lines = [f"Encoded ({enc_metric}) versus used ({use_metric}){what}, {len(set(merged['ranking']))} rankings, "
             f"k in {sorted(set(int(k) for k in merged['k']))}."]
    dis = per_k[per_k["disagree"]]
    rule = ("the most-used ranking's bootstrap interval lies wholly above the best encoder's" if
            _used_intervals(merged) else f"by more than {tol}")
    if len(dis):
        ks = ", ".join(str(k) for k in dis["k"])
        r = dis.iloc[0]
        lines.append(f"Encoded and used disagree at k = {ks}: e.g. at k={r['k']} {r['best_encoded']} encodes best "
                     f"({r['best_encoded_score']:.3g}) but {r['best_used']} changes the model most "
                     f"({r['best_used_score']:.3g}) ({rule}).")
    else:
        lines.append(f"At no k does another ranking change the model more than the one that encodes best ({rule}).")
    rho = per_k["spearman"].dropna()
    if len(rho):
        lines.append(f"Spearman correlation between the encoded and used orderings of the rankings: mean "
                     f"{rho.mean():+.2f} (from {rho.min():+.2f} to {rho.max():+.2f}).")
    if "not_better_than_random" in per_k:
        weak = sorted({n for s in per_k["not_better_than_random"] for n in s.split(", ") if n})
        rule = _random_rule(merged, tol)
        if weak:
            counts = {n: int(sum(n in s.split(", ") for s in per_k["not_better_than_random"])) for n in weak}
            desc = ", ".join(f"{n} ({c}/{len(per_k)} k values)" for n, c in counts.items())
            lines.append(f"No better than random neurons of the same k {rule}: {desc}.")
        else:
            lines.append(f"Every ranking's top-k neurons change the model more than random neurons of the same k "
                         f"{rule}.")
    return " ".join(lines)


def _plot_compare(merged: pd.DataFrame, enc_metric: str, use_metric: str, attribute: str | None, path):
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, g) in enumerate(merged.groupby("ranking", sort=False)):
        g = g.sort_values("k")
        axes[0].plot(g["k"], g["encoded"], "-o", ms=3, color=colors[i % len(colors)], label=name)
        axes[1].plot(g["k"], g["used"], "-o", ms=3, color=colors[i % len(colors)], label=name)
    if "random" in merged:
        r = merged.groupby("k", as_index=False)["random"].mean()
        axes[1].plot(r["k"], r["random"], "--", color="0.45", label=RANDOM_BASELINE)
    axes[0].set_title(f"encoded: {enc_metric}")
    axes[1].set_title(f"used: {use_metric}")
    for ax in axes:
        scale_k_axis(ax, merged["k"])
        ax.set_xlabel("k")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle(f"encoded versus used{': ' + attribute if attribute else ''}")
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        save(fig, path)
    return fig


# ------------------------------------------------------------------------------------------- neuron by neuron
#: the four groups of :class:`NeuronComparison`, in legend order
GROUPS = ("encoded and used", "encoded, not used", "used, not encoded", "neither")
_GROUP_COLORS = {"encoded and used": "#7c3aed", "encoded, not used": "#2563eb", "used, not encoded": "#dc2626",
                 "neither": "#9ca3af"}


@dataclasses.dataclass(frozen=True)
class NeuronCompareConfig(Config):
    """Settings of :func:`compare_per_neuron`.

    Parameters
    ----------
    ranking : str, optional
        Which of the encoded result's rankings (default: its first).
    k : int
        A neuron among the first ``k`` of the encoded ranking counts as *encoded*.
    used_k : int, optional
        A neuron among the first ``used_k`` of the used ranking counts as *used* (default: ``k``).

    Examples
    --------
    >>> from tl_neuronprobe.evaluation.compare import NeuronCompareConfig
    >>> NeuronCompareConfig(k=20, used_k=5).to_dict()
    {'type': 'NeuronCompareConfig', 'ranking': None, 'k': 20, 'used_k': 5}
    """

    ranking: "str | None" = None
    k: int = 50
    used_k: "int | None" = None

    def validate(self) -> None:
        for name in ("k", "used_k"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")


class NeuronComparison(TableResult):
    """What :func:`compare_per_neuron` returns: encoded versus used, one row per neuron.

    ``table`` (kind ``"neuron_comparison"``): ``neuron``, ``layer``, ``encoded_score`` (rank-based: 1 for the
    encoded ranking's first neuron, 0 for its last), ``encoded_rank``, ``used_score`` (the attribution score),
    ``used_rank`` and ``group``: one of ``"encoded and used"``, ``"encoded, not used"``, ``"used, not encoded"``,
    ``"neither"``. Ranks count among the neurons both sides rank (1 = first). ``extra``: the encoded ranking's
    name, the counts per group and the neurons only one side ranked.
    """

    kind = "neuron_comparison"

    def _group(self, group: str, by: str) -> list:
        from ..core.neurons import Neuron

        t = self.table[self.table["group"] == group].sort_values(by, kind="stable")
        return [Neuron.parse(str(n)) for n in t["neuron"]]

    def encoded_not_used(self) -> list:
        """The neurons the encoded ranking puts first that the model does not use, best encoded first."""
        return self._group("encoded, not used", "encoded_rank")

    def used_not_encoded(self) -> list:
        """The neurons the model uses that the encoded ranking does not put first, most used first."""
        return self._group("used, not encoded", "used_rank")

    def counts(self) -> dict[str, int]:
        """Neurons per group (every group, zeros included)."""
        have = self.table["group"].value_counts()
        return {g: int(have.get(g, 0)) for g in GROUPS}

    def __str__(self) -> str:
        c, settings = self.counts(), NeuronCompareConfig.from_dict(self.config) if self.config else None
        k = settings.k if settings else "k"
        used_k = (settings.used_k or settings.k) if settings else "k"
        what = f" for {self.attribute}" if self.attribute else ""
        return (f"Encoded ({self.extra.get('ranking', 'ranking')}, first {k}) versus used (attribution, first "
                f"{used_k}){what}, {len(self.table)} neurons: {c['encoded and used']} encoded and used, "
                f"{c['encoded, not used']} encoded but not used, {c['used, not encoded']} used but not encoded.")

    def plot(self, path: "str | Path | None" = None):
        """Encoded score against |used score| (the attribution ranks by magnitude), one panel per layer, the four
        groups coloured. Returns the Figure (saved to ``path`` and closed if given)."""
        return _plot_neurons(self.table, self.extra.get("ranking", "encoded"), self.attribute, path)


def _neuron_config(config: Any) -> NeuronCompareConfig:
    if config is None or config == {}:
        return NeuronCompareConfig()
    if isinstance(config, NeuronCompareConfig):
        return config
    if isinstance(config, dict):
        return NeuronCompareConfig.from_dict(config)
    raise TypeError(f"config must be a NeuronCompareConfig, got {type(config).__name__}")


def _encoded_order(encoded: Any, ranking: "str | None") -> tuple[str, list]:
    """(name, neurons best first) of the chosen encoded ranking (an EncodedResult or a mapping name -> neurons)."""
    from ..core.neurons import parse_neurons

    rankings = encoded.rankings if hasattr(encoded, "rankings") else encoded
    if not isinstance(rankings, Mapping) or not rankings:
        raise TypeError(f"encoded must be an EncodedResult (or a mapping ranking name -> neurons) with rankings, "
                        f"got {type(encoded).__name__}")
    name = ranking if ranking is not None else next(iter(rankings))
    if name not in rankings:
        raise KeyError(f"the encoded result has no ranking {name!r}; it has {sorted(rankings)}")
    return str(name), parse_neurons([str(n) for n in rankings[name]])


def _used_order(used: Any) -> tuple[list, dict]:
    """(neurons most used first, neuron -> score) of an Attribution."""
    table = getattr(used, "table", None)
    if getattr(used, "kind", None) != "attribution" or not isinstance(table, pd.DataFrame):
        raise TypeError(f"used must be an Attribution (from attribute_used), got {type(used).__name__}")
    from ..core.neurons import Neuron

    t = table.sort_values("rank", kind="stable")
    neurons = [Neuron.parse(str(n)) for n in t["neuron"]]
    return neurons, dict(zip(neurons, t["score"].astype(float)))


def _group_of(encoded: bool, used: bool) -> str:
    return GROUPS[0] if encoded and used else GROUPS[1] if encoded else GROUPS[2] if used else GROUPS[3]


def compare_per_neuron(encoded: Any, used: Any, config: "NeuronCompareConfig | None" = None) -> NeuronComparison:
    """Encoded versus used neuron by neuron: which neurons a probe ranking puts first, which ones the model uses.

    Parameters
    ----------
    encoded : EncodedResult
        From :func:`~tl_neuronprobe.evaluate_encoded` (or a mapping ranking name -> neurons, best first).
    used : Attribution
        From :func:`~tl_neuronprobe.attribute_used`: every neuron's estimated effect on the model.
    config : NeuronCompareConfig, optional
        The encoded ranking, and how many of each ranking count as encoded / used (default:
        ``NeuronCompareConfig()``: the first ranking, 50 each).

    Returns
    -------
    NeuronComparison
        One row per neuron that both sides rank (the attributed sites and layers present in the encoded
        ranking), each ranked again among those neurons: a neuron is *encoded* when it is among the first ``k``
        of the encoded ranking and *used* when among the first ``used_k`` of the attribution. The encoded
        score is rank-based (1 = first, 0 = last: a ranking's order is all an encoded result keeps); the used
        score is the attribution's. ``encoded_not_used()`` and ``used_not_encoded()`` list the disagreements.

    Examples
    --------
    >>> import pandas as pd
    >>> import tl_neuronprobe as tnp
    >>> from tl_neuronprobe.evaluation.attribution import Attribution
    >>> used = Attribution(pd.DataFrame(dict(neuron=["L0.N0", "L0.N1", "L0.N2"], layer=0, site="mlp.post",
    ...                                      score=[0.0, 2.0, 0.5], rank=[3, 1, 2], exact=float("nan"),
    ...                                      verified=False)), "Number")
    >>> encoded = {"probeless": tnp.parse_neurons("L0.N0,L0.N1,L0.N2")}
    >>> per_neuron = compare_per_neuron(encoded, used, NeuronCompareConfig(k=1))
    >>> per_neuron.encoded_not_used(), per_neuron.used_not_encoded()
    ([Neuron(layer=0, index=0, site='mlp.post')], [Neuron(layer=0, index=1, site='mlp.post')])
    """
    config = _neuron_config(config)
    attributes = {a for a in (getattr(encoded, "attribute", None), getattr(used, "attribute", None)) if a}
    if len(attributes) > 1:
        raise ValueError(f"the encoded result is about {encoded.attribute!r} and the attribution about "
                         f"{used.attribute!r}: compare the same attribute")
    name, enc_order = _encoded_order(encoded, config.ranking)
    used_order, scores = _used_order(used)
    shared = set(enc_order) & set(used_order)
    if not shared:
        raise ValueError(f"the encoded ranking {name!r} and the attribution share no neuron (encoded e.g. "
                         f"{[str(n) for n in enc_order[:3]]}, attributed e.g. {[str(n) for n in used_order[:3]]}): "
                         "attribute the sites and layers the activations hold")
    enc_rank = {n: i + 1 for i, n in enumerate(n for n in enc_order if n in shared)}
    used_rank = {n: i + 1 for i, n in enumerate(n for n in used_order if n in shared)}
    used_k = config.used_k or config.k
    total = len(shared)
    rows = [dict(neuron=str(n), layer=n.layer, encoded_score=1.0 - (enc_rank[n] - 1) / max(total - 1, 1),
                 encoded_rank=enc_rank[n], used_score=scores[n], used_rank=used_rank[n],
                 group=_group_of(enc_rank[n] <= config.k, used_rank[n] <= used_k))
            for n in sorted(shared, key=lambda n: enc_rank[n])]
    attribute = next(iter(attributes), None)
    extra = dict(ranking=name, encoded_score="rank-based", n_neurons=total,
                 encoded_only=len(set(enc_order) - shared), used_only=len(set(used_order) - shared))
    return NeuronComparison(pd.DataFrame(rows), attribute, config.to_dict(), None, extra)


def _plot_neurons(table: pd.DataFrame, ranking: str, attribute: "str | None", path):
    plt = pyplot()
    layers = sorted(set(int(x) for x in table["layer"])) or [0]
    fig, axes = plt.subplots(1, len(layers), figsize=(3.6 * len(layers) + 1.6, 3.6), squeeze=False, sharey=True)
    for ax, layer in zip(axes[0], layers):
        t = table[table["layer"] == layer]
        for group in reversed(GROUPS):  # "neither" first, under the others
            g = t[t["group"] == group]
            if len(g):
                ax.scatter(g["encoded_score"], g["used_score"].abs(), s=10 if group == "neither" else 22,
                           color=_GROUP_COLORS[group], alpha=0.5 if group == "neither" else 0.9,
                           label=f"{group} ({len(g)})")
        ax.set_title(f"layer {layer}")
        ax.set_xlabel(f"encoded: {ranking} (rank-based)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("used: |attribution score|")
    fig.suptitle(f"encoded versus used, neuron by neuron{': ' + attribute if attribute else ''}")
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        save(fig, path)
    return fig
