"""Gather what a report shows, from a results folder written by the demo or from result objects; not for rendering.

A results folder holds ``activations/`` (safetensors + meta), ``layer_stats.csv``/``.png``, ``summary.json``,
``encoded/`` (``encoded_{attr}.csv``/``.png``, ``encoded_{attr}_top_neurons.csv``, ``encoded_summary.json``),
``used/`` (``used_{model}_{attr}.csv``/``.png``, ``compare_{model}_{attr}.csv``/``.png``/``.txt``,
``used_{model}_{attr}_top_neurons.csv``), ``textualize/textualize.csv`` and optionally ``descriptions.csv``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from ..data.activations import META_FILE, TENSOR_FILE, Activations
from ..evaluation.results import attribute_of, kind_of, load_table

__all__ = ["ReportData", "UsedResult", "collect", "is_activations_folder"]

#: the fallback for tables that do not say what they are (``attrs["tnp_kind"]``, see
#: :mod:`tl_neuronprobe.evaluation.results`): CSVs written before the marks, read with ``pd.read_csv``. The
#: first kind whose columns a table has is its guessed kind; a marked table is never guessed.
_KINDS = (
    ("encoded", {"ranking", "probe", "selection", "k", "accuracy"}),
    ("used", {"ranking", "selection", "k", "metric", "value"}),
    ("textualize", {"neuron", "text", "activation", "corpus_max"}),
    ("descriptions", {"neuron", "description"}),
    ("layer_stats", {"site", "layer", "mean", "std"}),
    ("top_neurons", {"ranking", "rank", "neuron"}),
    ("compare", {"k", "best_encoded", "best_used"}),
)


@dataclass
class UsedResult:
    """Encoded versus used for one (model, attribute): the tables, the plain-English summary and figures."""

    model: str
    attribute: str
    used: pd.DataFrame | None = None
    per_k: pd.DataFrame | None = None
    summary: str = ""
    top_neurons: pd.DataFrame | None = None
    images: list[Path] = field(default_factory=list)
    #: whether the rankings rank the activations' neurons (None: decide by the model's name)
    own: bool | None = None


@dataclass
class ReportData:
    """Everything a report can show; any part may be missing."""

    acts: Activations | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    layer_stats: pd.DataFrame | None = None
    encoded: dict[str, pd.DataFrame] = field(default_factory=dict)
    top_neurons: dict[str, pd.DataFrame] = field(default_factory=dict)
    orders: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    used: list[UsedResult] = field(default_factory=list)
    textualize: pd.DataFrame | None = None
    descriptions: pd.DataFrame | None = None
    images: dict[str, Path] = field(default_factory=dict)
    source: str = ""

    @property
    def model_name(self) -> str:
        return str(self.settings.get("model") or (self.acts.meta.get("model", "") if self.acts else ""))


def collect(results: Any) -> ReportData:
    """A :class:`ReportData` from a folder path, or a mapping / list of result objects (or folders)."""
    data = ReportData()
    if isinstance(results, (str, Path)):
        _read_folder(Path(results), data)
        return data
    items: Iterable[tuple[str | None, Any]]
    if isinstance(results, (Mapping, list, tuple)) and not results:
        raise ValueError(f"no results to report: got an empty {type(results).__name__}; pass a results folder, "
                         "or result objects (Activations, evaluate_encoded / evaluate_used tables, "
                         "compare_encoded_used results, ...)")
    if isinstance(results, Mapping):
        items = [(str(k), v) for k, v in results.items()]
    elif isinstance(results, (list, tuple)):
        items = [(None, v) for v in results]
    else:
        items = [(None, results)]
    for name, obj in items:
        _add_object(data, name, obj)
    _used_neurons_from_orders(data)
    data.source = "objects"
    return data


def _used_neurons_from_orders(data: ReportData) -> None:
    """A used table whose rankings are an encoded table's (same attribute and names) intervened on that table's
    top neurons: record them, so neuron pages can show the effect."""
    for res in data.used:
        orders = data.orders.get(res.attribute)
        if res.top_neurons is not None or res.used is None or not orders:
            continue
        names = set(res.used["ranking"].astype(str))
        if names <= set(orders):
            n = int(res.used["k"].max())
            res.top_neurons = pd.DataFrame([dict(ranking=r, rank=i + 1, neuron=x) for r in sorted(names)
                                            for i, x in enumerate(orders[r][:n])])
            res.own = True


# ------------------------------------------------------------------------------------------------ folders
def _read_csv(path: Path) -> pd.DataFrame | None:
    return _glossary(pd.read_csv(path)) if path.exists() else None


def _glossary(table: pd.DataFrame) -> pd.DataFrame:
    """Tables written before the glossary named the ordering column ``ranker``; it is ``ranking`` now."""
    return table.rename(columns={"ranker": "ranking"}) if "ranker" in table and "ranking" not in table else table


def _read_folder(root: Path, data: ReportData) -> None:
    if not root.is_dir():
        raise FileNotFoundError(f"results folder {root} does not exist (expected what `tl-neuronprobe demo` writes)")
    data.source = str(root)
    if is_activations_folder(root):
        data.acts = Activations.load(root)
        return
    if (root / "activations").is_dir():
        data.acts = Activations.load(root / "activations")
    if (root / "summary.json").exists():
        data.settings.update(json.loads((root / "summary.json").read_text()))
    data.layer_stats = _read_csv(root / "layer_stats.csv")
    if (root / "layer_stats.png").exists():
        data.images["layer_stats"] = root / "layer_stats.png"
    _read_encoded(root / "encoded", data)
    _read_used(root / "used", data)
    data.textualize = _read_csv(root / "textualize" / "textualize.csv")
    for cand in (root / "descriptions.csv", root / "descriptions" / "descriptions.csv",
                 root / "describe" / "descriptions" / "descriptions.csv"):
        if cand.exists():
            data.descriptions = _check_descriptions(pd.read_csv(cand), cand)
            break
    if data.acts is None and not (data.encoded or data.used or data.textualize is not None):
        raise FileNotFoundError(f"{root} holds no activations/, encoded/, used/ or textualize/ results")


def is_activations_folder(root: "str | Path") -> bool:
    """Whether ``root`` is an activations folder (what ``acts.save`` / ``tl-neuronprobe extract`` write) rather
    than a results folder holding one."""
    return (Path(root) / META_FILE).exists() and (Path(root) / TENSOR_FILE).exists()


def _read_encoded(folder: Path, data: ReportData) -> None:
    for csv in sorted(folder.glob("encoded_*.csv")):
        m = re.fullmatch(r"encoded_(.+)\.csv", csv.name)
        attr = m.group(1)
        if any(attr.endswith(s) for s in ("_top_neurons", "_layers", "_agreement")):
            continue
        table = _glossary(load_table(csv))
        data.encoded[attribute_of(table) or attr] = table
        top = _read_csv(folder / f"encoded_{attr}_top_neurons.csv")
        if top is not None:
            data.top_neurons[attr] = top
        if (folder / f"encoded_{attr}.png").exists():
            data.images[f"encoded_{attr}"] = folder / f"encoded_{attr}.png"
    if (folder / "encoded_summary.json").exists():
        data.settings["encoded"] = json.loads((folder / "encoded_summary.json").read_text())


def _read_used(folder: Path, data: ReportData) -> None:
    for csv in sorted(folder.glob("used_*.csv")):
        if csv.name.endswith("_top_neurons.csv"):
            continue
        stem = csv.stem[len("used_"):]
        model, _, attr = stem.rpartition("_")
        used = _glossary(load_table(csv))
        attr = attribute_of(used) or attr  # the file name splits at the last "_": wrong for "Number_Type"
        if attr in stem and stem.endswith(attr):
            model = stem[: -len(attr)].rstrip("_")
        per_k = folder / f"compare_{stem}.csv"
        res = UsedResult(model=model or "model", attribute=attr, used=used,
                         per_k=load_table(per_k) if per_k.exists() else None,
                         top_neurons=_read_csv(folder / f"used_{stem}_top_neurons.csv"))
        txt = folder / f"compare_{stem}.txt"
        res.summary = txt.read_text().strip() if txt.exists() else ""
        res.images = [p for p in (folder / f"compare_{stem}.png", folder / f"used_{stem}.png") if p.exists()]
        data.used.append(res)
    if (folder / "used_summary.json").exists():
        data.settings["used"] = json.loads((folder / "used_summary.json").read_text())


def _check_descriptions(table: pd.DataFrame, where: Any) -> pd.DataFrame:
    missing = {"neuron", "description"} - set(table.columns)
    if missing:
        raise ValueError(f"descriptions {where}: missing column(s) {sorted(missing)}; has {list(table.columns)}")
    return table


# ------------------------------------------------------------------------------------------------ objects
def _kind(table: pd.DataFrame) -> str | None:
    cols = set(table.columns)
    return next((kind for kind, need in _KINDS if need <= cols), None)


def _add_object(data: ReportData, name: str | None, obj: Any) -> None:
    """Route one result object to its place in ``data``; an unknown object is an error naming its type."""
    if isinstance(obj, (str, Path)):
        _read_folder(Path(obj), data)
    elif isinstance(obj, Activations):
        data.acts = obj
    elif isinstance(obj, pd.DataFrame):
        _add_table(data, name, obj)
    elif hasattr(obj, "per_k") and hasattr(obj, "summary"):  # compare_encoded_used's EncodedUsed
        _add_comparison(data, name, obj)
    elif hasattr(obj, "table") and hasattr(obj, "win_rate"):  # textualize's TextualizeResult
        data.textualize = obj.table
    elif isinstance(obj, Mapping):
        data.settings.update({str(k): v for k, v in obj.items()})
    else:
        raise TypeError(f"cannot add {type(obj).__name__} {'(' + name + ') ' if name else ''}to a report; expected "
                        "Activations, a results folder, an encoded/used/textualize/descriptions table, a "
                        "compare_encoded_used or textualize result, or a dict of settings")


def _model_of(name: str | None) -> str:
    """The model of a result keyed ``"model/attribute ..."`` (a key without ``/`` is the model's name)."""
    return (name or "model").split("/", 1)[0]


def _attribute_of(table: "pd.DataFrame | None", name: str | None, what: str) -> str:
    """The attribute a result says it is about; for an unmarked table without an ``attribute`` column, the word
    after ``/`` in its key. None of these: a ValueError naming the key."""
    attr = attribute_of(table) if table is not None else None
    if attr is None and name and "/" in name and name.split("/", 1)[1].split():
        attr = name.split("/", 1)[1].split()[0]
    if attr is None:
        raise ValueError(f"the {what} {name or ''} does not say which attribute it is about (no "
                         "attrs['attribute'], no attribute column); key it 'model/attribute'")
    return attr


def _table_kind(table: pd.DataFrame, name: str | None) -> str:
    """The kind a table says it is (``attrs["tnp_kind"]``); unmarked tables: guessed from the columns."""
    kind = kind_of(table)
    if kind is not None:
        return kind
    kind = _kind(table)
    if kind is None:
        raise ValueError(f"table {name or ''} with columns {list(table.columns)} is not a known result table "
                         f"({', '.join(k for k, _ in _KINDS)}) and has no attrs['tnp_kind']")
    return kind


def _add_table(data: ReportData, name: str | None, table: pd.DataFrame) -> None:
    attrs, table = table.attrs, _glossary(table)
    table.attrs = attrs
    kind = _table_kind(table, name)
    if kind == "encoded":
        attr = attribute_of(table) or (name or "attribute")
        data.encoded[attr] = table
        orders, neurons = table.attrs.get("orders"), table.attrs.get("neurons")
        if orders is not None and neurons:
            data.orders[attr] = {r: [str(neurons[j]) for j in o] for r, o in orders.items()}
            data.top_neurons[attr] = pd.DataFrame(
                [dict(ranking=r, rank=i + 1, neuron=n) for r, o in data.orders[attr].items() for i, n in
                 enumerate(o[:10])])
    elif kind == "used":
        _used_slot(data, _model_of(name), _attribute_of(table, name, "used table")).used = table
    elif kind == "textualize":
        data.textualize = table
    elif kind == "descriptions":
        data.descriptions = _check_descriptions(table, name or "table")
    elif kind == "layer_stats":
        data.layer_stats = table
    elif kind in ("compare", "compare_per_k"):
        if kind == "compare" and "best_encoded" not in table.columns:
            raise ValueError(f"table {name or ''} is compare_encoded_used's per-(ranking, k) table; pass the "
                             "comparison itself (or its per_k table)")
        _used_slot(data, _model_of(name), _attribute_of(table, name, "comparison table")).per_k = table
    elif kind == "top_neurons":
        data.top_neurons[attribute_of(table) or name or "attribute"] = table
    else:
        raise ValueError(f"table {name or ''} says it is a {kind!r} result, which a report does not show")


def _used_slot(data: ReportData, model: str, attribute: str) -> UsedResult:
    """The (model, attribute) entry of the used section: a used table and its comparison meet here."""
    for res in data.used:
        if res.model == model and res.attribute == attribute:
            return res
    data.used.append(UsedResult(model=model, attribute=attribute))
    return data.used[-1]


def _add_comparison(data: ReportData, name: str | None, cmp: Any) -> None:
    """A ``compare_encoded_used`` result under the attribute it says it compares (its ``attribute``, else its
    tables' marks), never under whichever entry came first."""
    attr = getattr(cmp, "attribute", None)
    if attr is None:
        for t in (getattr(cmp, "per_k", None), getattr(cmp, "table", None)):
            if isinstance(t, pd.DataFrame) and attribute_of(t) is not None:
                attr = attribute_of(t)
                break
    slot = _used_slot(data, _model_of(name), str(attr) if attr is not None else
                      _attribute_of(None, name, "comparison"))
    slot.per_k, slot.summary = cmp.per_k, str(cmp.summary)
