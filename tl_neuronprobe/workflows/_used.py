"""The used jobs: ``evaluate-used`` (intervene on each ranking's top-k) and ``compare`` (encoded versus used),
and reading rankings from files."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pandas as pd

from .. import models
from ..core.neurons import Neuron, parse_neurons
from ..core.plotting import pyplot
from ..data.corpus import Corpus
from ..evaluation.results import load_table, save_table
from ..evaluation.used import compare_encoded_used, evaluate_used, plot_used

__all__ = ["evaluate_used_job", "compare_job", "read_ranking_file", "parse_rankings", "write_comparison"]

RANKING_SUFFIXES = (".txt", ".json", ".csv")


def _read_csv_ranking(path: Path) -> dict[str, list[Neuron]]:
    df = pd.read_csv(path)
    if "neuron" not in df.columns:
        raise ValueError(f"{path}: a ranking CSV needs a 'neuron' column (has {list(df.columns)})")
    group = next((c for c in ("ranking", "ranker") if c in df.columns), None)
    if "rank" in df.columns:
        df = df.sort_values([c for c in (group, "rank") if c], kind="stable")
    if group is None:
        return {path.stem: parse_neurons(df["neuron"].astype(str))}
    return {str(g): parse_neurons(d["neuron"].astype(str)) for g, d in df.groupby(group, sort=False)}


def read_ranking_file(path: "str | Path") -> dict[str, list[Neuron]]:
    """Rankings from a file, best first: ``.txt`` (one neuron per line, or comma-separated), ``.json`` (a list,
    or a dict name -> list) or ``.csv`` (a ``neuron`` column, optionally grouped by ``ranking``/``ranker`` and
    ordered by ``rank``)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"ranking file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".json":
        data = json.loads(path.read_text())
        if isinstance(data, dict):
            return {str(k): parse_neurons(v) for k, v in data.items()}
        return {path.stem: parse_neurons(data)}
    if suffix == ".csv":
        return _read_csv_ranking(path)
    return {path.stem: parse_neurons(path.read_text().replace("\n", ","))}


def parse_rankings(spec: str) -> dict[str, Any]:
    """``probeless,linear`` (ranker names), ``name=path`` or ``path`` (files, see :func:`read_ranking_file`)."""
    out: dict[str, Any] = {}
    for item in [x.strip() for x in spec.split(",") if x.strip()]:
        name, _, target = item.partition("=") if "=" in item else ("", "", item)
        if Path(target).suffix.lower() in RANKING_SUFFIXES or Path(target).exists():
            orders = read_ranking_file(target)
            if name and len(orders) == 1:
                orders = {name: next(iter(orders.values()))}
            out.update(orders)
        else:
            out[name or target.lower()] = target
    if not out:
        raise ValueError("--rankings is empty")
    return out


def evaluate_used_job(model: str, data: str, attribute: str, rankings: str, ks, out: "str | Path",
                      fit_data: str | None = None, device: str | None = None, seed: int = 0,
                      progress: bool = True, **options) -> pd.DataFrame:
    """:func:`~tl_neuronprobe.evaluate_used` from names: ``model`` (see :func:`tnp.models.load`; built-in models
    are built with ``seed``), corpora ``data`` / ``fit_data`` and ``rankings`` (see :func:`parse_rankings`).
    ``options`` go to ``evaluate_used``. Writes ``used_<attribute>.csv``, ``.png`` and ``.json`` under ``out``."""
    loaded = models.load(model, device=device, seed=seed)
    corpus = Corpus.load(data, seed=seed)
    fit = Corpus.load(fit_data, seed=seed + 1) if fit_data else None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    table = evaluate_used(loaded, corpus, attribute, parse_rankings(rankings), ks, seed=seed, fit_corpus=fit,
                          progress=progress, **options)
    stem = f"used_{attribute}"
    save_table(table, out / f"{stem}.csv")
    pyplot().close(plot_used(table, out / f"{stem}.png"))
    info = dict(table.attrs, seconds=round(time.perf_counter() - t0, 2), model=model, data=data)
    (out / f"{stem}.json").write_text(json.dumps(info, indent=2, default=str))
    top = table[table.selection != "bottom"].pivot_table(index=["ranking", "k"], columns=["metric", "selection"],
                                                          values="value")
    print(top.round(3).to_string())
    print(f"{info['readout']} readout, {info['strategy']} strategy, {info['forward_passes']} forward passes, "
          f"{info['seconds']} s; written to {out}")
    return table


def write_comparison(encoded: pd.DataFrame, used: pd.DataFrame, out: Path, stem: str,
                     per_k: str | None = None, **options):
    """Compare the encoded and used curves; write ``<stem>.png``, the per-k table (``per_k``, default
    ``<stem>.csv``) and the plain-English summary ``<stem>.txt``. Returns the comparison."""
    res = compare_encoded_used(encoded, used, path=out / f"{stem}.png", **options)
    pyplot().close(res.figure)
    save_table(res.per_k, out / (per_k or f"{stem}.csv"))
    (out / f"{stem}.txt").write_text(res.summary + "\n")
    return res


def compare_job(encoded: "str | Path", used: "str | Path", out: "str | Path", encoded_metric: str | None = None,
                used_metric: str | None = None, probe: str = "logistic"):
    """Encoded versus used curves from their CSV tables: ``compare.png``, ``compare_per_k.csv``,
    ``compare.txt`` and the merged ``compare.csv`` under ``out``. Returns the comparison."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    res = write_comparison(load_table(encoded), load_table(used), out, "compare", per_k="compare_per_k.csv",
                           encoded_metric=encoded_metric, used_metric=used_metric, probe=probe)
    save_table(res.table, out / "compare.csv")
    print(res.per_k.round(3).to_string(index=False))
    print(res.summary)
    return res
