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
from ..core.config import write_summary
from ..evaluation.used import UsedConfig, UsedResult, evaluate_used

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


def evaluate_used_job(model: str, corpus: str, attribute: str, rankings: str, out_dir: "str | Path",
                      fit_corpus: str | None = None, config: UsedConfig | None = None, device: str | None = None,
                      progress: bool = True) -> UsedResult:
    """:func:`~tl_neuronprobe.evaluate_used` from names: ``model`` (see :func:`tnp.models.load`; built-in models
    are built with ``config.seed``), corpora ``corpus`` / ``fit_corpus`` (:meth:`Corpus.load` specs; with
    ``fit_corpus``, rankers and class means are fitted on it and ``corpus`` is evaluated, as ``test=``) and
    ``rankings`` (see :func:`parse_rankings`).

    Writes ``used_<attribute>.csv`` (+ ``.meta.json``: reload with ``load_result``), ``.png``, ``.json`` (the
    readout, strategy, forward passes, seconds) and ``summary.json`` (stage ``"used"``) under ``out_dir``;
    returns the result.
    """
    config = config if config is not None else UsedConfig()
    inputs = dict(model=model, corpus=corpus, attribute=attribute, rankings=rankings, out_dir=str(out_dir),
                  fit_corpus=fit_corpus)
    loaded = models.load(model, device=device, seed=config.seed)
    evaluated = Corpus.load(corpus, seed=config.seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if fit_corpus:
        result = evaluate_used(loaded, Corpus.load(fit_corpus, seed=config.seed + 1), attribute,
                               parse_rankings(rankings), config, test=evaluated, progress=progress)
    else:
        result = evaluate_used(loaded, evaluated, attribute, parse_rankings(rankings), config, progress=progress)
    stem = f"used_{attribute}"
    result.save(out / f"{stem}.csv")
    pyplot().close(result.plot(out / f"{stem}.png"))
    info = dict(result.extra, attribute=attribute, edit=config.edit.name,
                seconds=round(time.perf_counter() - t0, 2), model=model, corpus=corpus)
    (out / f"{stem}.json").write_text(json.dumps(info, indent=2, default=str))
    write_summary(out, "used", config, inputs)
    if progress:
        table = result.table
        top = table[table.selection != "bottom"].pivot_table(index=["ranking", "k"],
                                                              columns=["metric", "selection"], values="value")
        print(top.round(3).to_string())
        print(f"{info['readout']} readout, {info['strategy']} strategy, {info['forward_passes']} forward passes, "
              f"{info['seconds']} s; written to {out}")
    return result


def write_comparison(encoded, used, out_dir: "str | Path", stem: str, per_k: str | None = None, config=None):
    """Compare the encoded and used results (or tables); write ``<stem>.png``, the per-k table (``per_k``,
    default ``<stem>.csv``) and the plain-English summary ``<stem>.txt`` under ``out_dir``. Returns the
    :class:`~tl_neuronprobe.evaluation.compare.Comparison`."""
    from ..evaluation.compare import compare_encoded_used as _compare
    from ..evaluation.results import save_table as _save_table

    out = Path(out_dir)

    res = _compare(encoded, used, config)
    pyplot().close(res.plot(out / f"{stem}.png"))
    _save_table(res.per_k, out / (per_k or f"{stem}.csv"))
    (out / f"{stem}.txt").write_text(res.summary + "\n")
    return res


def _read_result(path: "str | Path"):
    """A saved result (its kind in ``.meta.json``), else the CSV as a plain table."""
    from ..evaluation.results import load_result, load_table as _load_table

    try:
        return load_result(path)
    except ValueError:  # no kind recorded: any ranking/k/metric table
        return _load_table(path)


def compare_job(encoded: "str | Path", used: "str | Path", out_dir: "str | Path", config=None,
                device: str | None = None, progress: bool = True):
    """Encoded versus used from their saved results (CSV + ``.meta.json``): ``compare.csv`` (the per-(ranking, k)
    table, reloadable with ``load_result``), ``compare.png``, ``compare_per_k.csv``, ``compare.txt`` and
    ``summary.json`` (stage ``"compare"``) under ``out_dir``. ``config``: a ``CompareConfig``; ``device`` is
    unused (nothing runs on a model). Returns the comparison."""
    from ..core.config import write_summary
    from ..evaluation.compare import CompareConfig

    config = config if config is not None else CompareConfig()
    inputs = dict(encoded=str(encoded), used=str(used), out_dir=str(out_dir))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    res = write_comparison(_read_result(encoded), _read_result(used), out, "compare", per_k="compare_per_k.csv",
                           config=config)
    res.save(out / "compare.csv")
    write_summary(out, "compare", config, inputs)
    if progress:
        print(res.per_k.round(3).to_string(index=False))
        print(res.summary)
    return res
