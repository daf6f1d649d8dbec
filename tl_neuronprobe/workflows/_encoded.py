"""The encoded jobs: ``rank`` and ``evaluate-encoded`` over saved activations, and the demo's encoded stage."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..core.plotting import pyplot
from ..data.activations import Activations
from ..evaluation.encoded import evaluate_encoded, layer_distribution, plot_encoded, ranker_agreement
from ..evaluation.results import save_table
from ..rankers import make_ranker

__all__ = ["rank_job", "evaluate_encoded_job", "demo_encoded", "write_encoded", "plain_table", "top_neurons_table",
           "seeded_ranker", "DEMO_RANKERS"]

#: rankers whose fit can run on an accelerator
DEVICE_RANKERS = ("linear", "gaussian", "l1")


def seeded_ranker(name: str, seed: int = 0, **params: Any):
    """The ranker ``name`` with its seed set."""
    return make_ranker(name, **params).set_params(seed=seed)


def top_neurons_table(neurons: Sequence[Any], orders: dict[str, np.ndarray], n: int = 10,
                      scores: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
    """The ``n`` best neurons of every ranking, as a tidy table (ranker, rank, column, neuron, layer, score)."""
    rows = []
    for name, order in orders.items():
        for r, j in enumerate(order[: min(n, len(order))]):
            nr = neurons[j] if neurons else None
            rows.append(dict(ranking=name, rank=r + 1, column=int(j), neuron=str(nr) if nr is not None else str(j),
                             layer=getattr(nr, "layer", None),
                             score=float(scores[name][j]) if scores and name in scores else np.nan))
    return pd.DataFrame(rows)


def _load(activations: "str | Path", layer: int | None, out: "str | Path") -> tuple[Activations, Path]:
    """Saved activations (one layer if ``layer``) and the output folder, created."""
    acts = Activations.load(activations)
    if layer is not None:
        acts = acts.select(layer=layer)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return acts, out


def _ranking_table(acts: Activations, ranker, classes: Sequence[str]) -> pd.DataFrame:
    order = ranker.order_
    table = pd.DataFrame(dict(rank=np.arange(1, acts.n_neurons + 1), column=order,
                              neuron=[str(acts.neurons[j]) for j in order],
                              layer=[acts.neurons[j].layer for j in order], score=ranker.scores_[order]))
    if getattr(ranker, "driver_class_", None) is not None:  # which class gave the neuron its score (Probeless)
        table["driver_class"] = np.asarray(classes)[np.asarray(ranker.driver_class_, dtype=np.int64)][order]
        table["driver_share"] = np.asarray(ranker.driver_share_)[order]
    return table


def _write_per_class(acts: Activations, ranker, classes: Sequence[str], path: Path) -> None:
    if getattr(ranker, "per_class_", None) is None or np.ndim(ranker.per_class_) != 2:
        return
    table = pd.DataFrame(np.asarray(ranker.per_class_).T, columns=[str(c) for c in classes])
    table.insert(0, "neuron", [str(n) for n in acts.neurons])
    table.to_csv(path, index=False)


def rank_job(activations: "str | Path", attribute: str, out: "str | Path",
             rankers: Sequence[str] = ("linear", "probeless"), k: int = 20, layer: int | None = None,
             min_count: int = 2, device: str | None = None, seed: int = 0) -> dict:
    """Fit each ranker on saved activations; write ``rank_<ranker>.csv`` (every neuron, best first),
    ``per_class_<ranker>.csv`` where the ranker scores classes, and ``rank_summary.json``. Returns the summary."""
    acts, out = _load(activations, layer, out)
    X, y, classes, idx = acts.dataset(attribute, return_index=True, min_count=min_count)
    groups = np.asarray(acts.sentence_ids)[idx]
    summary: dict[str, Any] = dict(attribute=attribute, words=len(idx), neurons=acts.n_neurons, classes=classes,
                                   rankers={})
    for name in rankers:
        params = {"device": device} if device and name.lower() in DEVICE_RANKERS else {}
        ranker = seeded_ranker(name, seed, **params)
        t0 = time.perf_counter()
        ranker.fit(X, y, groups=groups)
        seconds = time.perf_counter() - t0
        _ranking_table(acts, ranker, classes).to_csv(out / f"rank_{name}.csv", index=False)
        _write_per_class(acts, ranker, classes, out / f"per_class_{name}.csv")
        top = [str(acts.neurons[j]) for j in ranker.order_[:k]]
        summary["rankers"][name] = dict(seconds=round(seconds, 2), top=top)
        print(f"{name}: {seconds:.1f}s  top {k}: {' '.join(top[:10])}{' ...' if k > 10 else ''}")
    (out / "rank_summary.json").write_text(json.dumps(summary, indent=2))
    print(f"rankings written to {out}")
    return summary


def evaluate_encoded_job(activations: "str | Path", attribute: str, out: "str | Path",
                         rankers: Sequence[str] | None = None, ks: Sequence[int] | None = None,
                         probes: Sequence[str] = ("logistic", "gaussian"), control: bool = True,
                         test_size: float = 0.3, min_count: int = 10, layer: int | None = None, k: int = 50,
                         device: str | None = None, seed: int = 0, progress: bool = True,
                         test_activations: "str | Path | None" = None) -> pd.DataFrame:
    """:func:`~tl_neuronprobe.evaluate_encoded` on saved activations, its files written by
    :func:`write_encoded` under ``out`` with the prefix ``encoded``. ``test_activations``: saved activations of
    held-out words (same neurons) to score on instead of a split of ``activations``. Returns the table."""
    acts, out = _load(activations, layer, out)
    test = None
    if test_activations is not None:
        test = Activations.load(test_activations)
        test = test.select(layer=layer) if layer is not None else test
    table = evaluate_encoded(acts, attribute, rankers=list(rankers) if rankers else None, ks=ks, probes=probes,
                             control=control, seed=seed, test_size=test_size, device=device or "cpu",
                             min_count=min_count, progress=progress, test=test)
    write_encoded(acts, table, out, prefix="encoded", k_layers=k)
    print(plain_table(table).to_string(index=False, max_rows=60))
    print(f"encoded evaluation written to {out}")
    return table


def plain_table(table: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``table`` without its ``attrs``: pandas deep-copies ``attrs`` (fitted orders, thousands of
    neurons) on every operation, which made plotting an encoded table take minutes."""
    attrs, table.attrs = table.attrs, {}
    try:
        return table.copy()
    finally:
        table.attrs = attrs


def write_encoded(acts, table: pd.DataFrame, out: Path, prefix: str, k_layers: int = 50) -> dict[str, list[str]]:
    """``<prefix>.csv`` and ``.png`` (the curves), ``_layers.csv`` (where the top ``k_layers`` neurons live),
    ``_agreement.csv`` (ranker overlap) and ``_top_neurons.csv``; returns each ranking's top ten neurons."""
    orders = table.attrs["orders"]
    save_table(table, out / f"{prefix}.csv")  # with .meta.json: what the table is, for the report
    table = plain_table(table)
    pyplot().close(plot_encoded(table, out / f"{prefix}.png"))
    n_neurons = len(next(iter(orders.values())))
    layer_distribution(acts, orders, min(k_layers, n_neurons)).to_csv(out / f"{prefix}_layers.csv", index=False)
    ks = sorted({k for k in (10, 50, 100) if k <= n_neurons} or {n_neurons})
    ranker_agreement(orders, ks).to_csv(out / f"{prefix}_agreement.csv", index=False)
    top_neurons_table(acts.neurons, orders, n=10).to_csv(out / f"{prefix}_top_neurons.csv", index=False)
    return {name: [str(acts.neurons[j]) for j in o[:10]] for name, o in orders.items()}


DEMO_RANKERS = ("linear", "gaussian", "probeless", "mean_difference", "f_statistic", "average_precision", "random")


def _accuracy_at(table: pd.DataFrame, ks: Sequence[int]) -> dict:
    """Each ranker's logistic-probe accuracy on its top-k at the fourth smallest k (the demo's headline)."""
    table = plain_table(table)
    best = (table[(table.selection == "top") & (table.probe == "logistic")].sort_values("k")
            .groupby("ranking").apply(lambda d: d.iloc[min(3, len(d) - 1)].accuracy, include_groups=False))
    return dict(k=sorted(set(ks))[min(3, len(ks) - 1)], **{k: round(float(v), 3) for k, v in best.items()})


def demo_encoded(acts, out_dir: "str | Path", attributes: Sequence[str] = ("upos", "Number"), seed: int = 0,
                 rankers: Sequence[str] = DEMO_RANKERS, ks: Sequence[int] | None = None,
                 probes: Sequence[str] = ("logistic", "gaussian")) -> dict:
    """The demo's encoded stage: for each attribute, the encoded curves (CSV + PNG), where the top neurons live,
    ranker agreement and every ranker's top neurons; ``encoded_summary.json`` (an attribute the corpus lacks is
    recorded there as such)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {}
    for attr in attributes:
        if attr not in acts.attributes:
            summary[attr] = "not in these activations"
            continue
        t0 = time.perf_counter()
        kk = list(ks or [k for k in (1, 2, 5, 10, 20, 50, 100, 200) if k <= acts.n_neurons])
        table = evaluate_encoded(acts, attr, rankers=list(rankers), ks=kk, probes=probes, seed=seed)
        top = write_encoded(acts, table, out, prefix=f"encoded_{attr}")
        summary[attr] = dict(seconds=round(time.perf_counter() - t0, 1), top_neurons=top,
                             fit_seconds={k: round(v, 2) for k, v in table.attrs["fit_seconds"].items()},
                             logistic_accuracy_at_k=_accuracy_at(table, kk))
    (out / "encoded_summary.json").write_text(json.dumps(summary, indent=2))
    return summary
