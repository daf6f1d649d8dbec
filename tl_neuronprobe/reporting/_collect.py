"""Gather what a report shows, from a results folder written by the demo or from result objects; not for rendering.

A results folder holds ``activations/`` (safetensors + meta), ``layer_stats.csv``/``.png``, ``summary.json``,
``encoded/`` (``encoded_{attr}.csv``/``.png``, ``encoded_{attr}_top_neurons.csv``, ``encoded_summary.json``),
``used/`` (``used_{model}_{attr}.csv``/``.png``, ``compare_{model}_{attr}.csv``/``.png``/``.txt``,
``used_{model}_{attr}_top_neurons.csv``), ``textualize/textualize.csv`` and optionally ``descriptions.csv``;
an attribution (``attribution.csv``) and a per-neuron comparison, saved with ``.save`` in the folder or one
folder below it, are found by the kind their ``.meta.json`` records, whatever their file names.

Each result says what it is (its ``kind``: ``EncodedResult`` "encoded", ``UsedResult`` "used", ``Comparison``
"compare", ``Attribution`` "attribution", ``NeuronComparison`` "neuron_comparison", or ``attrs["tnp_kind"]`` on a
marked table) and which attribute it is about; a report never guesses a
table's kind from its columns, and a key in a mapping only names the model (``"model/..."``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from ..data.activations import META_FILE, TENSOR_FILE, Activations
from ..evaluation.results import KIND, KINDS, attribute_of, kind_of, load_result, load_table

__all__ = ["ReportData", "UnitsSection", "UsedSection", "PerNeuronSection", "collect", "is_activations_folder"]

#: the kinds the "encoded versus used, neuron by neuron" section shows
PER_NEURON_KINDS = ("attribution", "neuron_comparison")


@dataclass
class UsedSection:
    """The report's section for one (model, attribute): the used table, the comparison's per-k table and
    plain-English summary, the top neurons intervened on and the figures."""

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
class PerNeuronSection:
    """The report's "encoded versus used, neuron by neuron" for one attribute: the attribution (a used ranking of
    every neuron) and/or the per-neuron comparison with an encoded ranking."""

    attribute: str
    attribution: Any = None
    comparison: Any = None


@dataclass
class UnitsSection:
    """Neurons beside a dictionary's latents: the comparison table (``units/compare.csv``), what each dictionary
    site reads (``{"sae@L3": {"hook": ...}}``) and the latents that get a page of their own (each latent ranking's
    first ones)."""

    compare: pd.DataFrame | None = None
    dictionaries: dict[str, dict] = field(default_factory=dict)
    extra_pages: list[str] = field(default_factory=list)


@dataclass
class ReportData:
    """Everything a report can show; any part may be missing."""

    acts: Activations | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    layer_stats: pd.DataFrame | None = None
    encoded: dict[str, pd.DataFrame] = field(default_factory=dict)
    top_neurons: dict[str, pd.DataFrame] = field(default_factory=dict)
    orders: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    used: list[UsedSection] = field(default_factory=list)
    textualize: pd.DataFrame | None = None
    descriptions: pd.DataFrame | None = None
    images: dict[str, Path] = field(default_factory=dict)
    #: attribute -> its per-neuron section (attribution and comparison)
    per_neuron: dict[str, PerNeuronSection] = field(default_factory=dict)
    source: str = ""
    #: neurons beside a dictionary's latents (``units/``): filled by the reader, not a constructor argument
    units: "UnitsSection" = field(default_factory=lambda: UnitsSection(), init=False)

    @property
    def model_name(self) -> str:
        return str(self.settings.get("model") or (self.acts.meta.get("model", "") if self.acts else ""))


def collect(results: Any) -> ReportData:
    """A :class:`ReportData` from a folder path, or a mapping / list of result objects (or folders)."""
    data = ReportData()
    if isinstance(results, (str, Path)):
        _read_folder(Path(results), data)
        _compare_per_neuron(data)
        return data
    items: Iterable[tuple[str | None, Any]]
    if isinstance(results, (Mapping, list, tuple)) and not results:
        raise ValueError(f"no results to report: got an empty {type(results).__name__}; pass a results folder, "
                         "or result objects (Activations, EncodedResult, UsedResult, Comparison, TextualizeResult, "
                         "Descriptions, ...)")
    if isinstance(results, Mapping):
        items = [(str(k), v) for k, v in results.items()]
    elif isinstance(results, (list, tuple)):
        items = [(None, v) for v in results]
    else:
        items = [(None, results)]
    for name, obj in items:
        _add_object(data, name, obj)
    _used_neurons_from_orders(data)
    _compare_per_neuron(data)
    data.source = "objects"
    return data


def _compare_per_neuron(data: ReportData) -> None:
    """An attribution without its per-neuron comparison, beside an encoded result of the same attribute: compare
    them with the encoded result's first ranking (the default :class:`NeuronCompareConfig`)."""
    from ..evaluation.compare import compare_per_neuron

    for attr, section in data.per_neuron.items():
        orders = data.orders.get(attr)
        if section.attribution is None or section.comparison is not None or not orders:
            continue
        try:
            section.comparison = compare_per_neuron(orders, section.attribution)
        except ValueError:  # the encoded ranking holds none of the attributed neurons: nothing to set beside
            continue


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
    return pd.read_csv(path) if path.exists() else None


def _load(path: Path) -> tuple[pd.DataFrame, str | None, dict]:
    """A saved result's table, attribute and rankings (a CSV without a result kind: its table and marks)."""
    try:
        result = load_result(path)
    except ValueError:
        table = load_table(path)
        return table, attribute_of(table), {}
    return result.table, result.attribute or attribute_of(result.table), result.rankings


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
    _read_per_neuron(root, data)
    data.textualize = _read_csv(root / "textualize" / "textualize.csv")
    if (root / "units" / "compare.csv").exists():
        _read_units(root / "units", data)
    for cand in (root / "descriptions.csv", root / "descriptions" / "descriptions.csv",
                 root / "describe" / "descriptions" / "descriptions.csv"):
        if cand.exists():  # every level of every neuron when the descriptions were made at several
            levels = cand.with_name("levels.csv")
            table = _check_descriptions(pd.read_csv(levels if levels.exists() else cand), cand)
            data.descriptions = table if data.descriptions is None else pd.concat([table, data.descriptions],
                                                                                  ignore_index=True)
            break
    if data.acts is None and not (data.encoded or data.used or data.textualize is not None or data.per_neuron):
        raise FileNotFoundError(f"{root} holds no activations/, encoded/, used/, textualize/ or attribution "
                                "results")


def _read_units(folder: Path, data: ReportData, per_ranking: int = 10) -> None:
    """``units/`` (the demo's neurons-versus-latents stage): the comparison table, the latents' activations joined
    to the neurons' (same words) for their pages, their descriptions, and pages for each latent ranking's first
    ``per_ranking`` latents."""
    import torch

    data.units.compare = pd.read_csv(folder / "compare.csv")
    if (folder / "dictionary.json").exists():
        info = json.loads((folder / "dictionary.json").read_text())
        data.units.dictionaries[f"{info.get('site')}@L{info.get('layer')}"] = info
    if (folder / "activations").is_dir():
        latents = Activations.load(folder / "activations")
        data.units.dictionaries.update(latents.meta.get("dictionaries", {}))
        acts = data.acts
        if acts is None:
            data.acts = latents
        elif list(acts.words) == list(latents.words):
            data.acts = Activations(torch.cat([acts.X.float(), latents.X.float()], dim=1),
                                    list(acts.neurons) + list(latents.neurons), acts.words, acts.sentence_ids,
                                    acts.attributes, {**acts.meta, "dictionaries": data.units.dictionaries})
    for csv in sorted(folder.glob("encoded_*_latents.csv")):
        for order in load_result(csv).rankings.values():
            data.units.extra_pages += [str(n) for n in order[:per_ranking]]
    table = folder / "describe_latents" / "descriptions.csv"
    if table.exists():
        rows = pd.read_csv(table)
        rows = rows[rows["end"] == "top"] if "end" in rows else rows
        data.descriptions = rows if data.descriptions is None else pd.concat([data.descriptions, rows],
                                                                             ignore_index=True)


def _read_per_neuron(root: Path, data: ReportData) -> None:
    """Attributions and per-neuron comparisons saved in ``root`` or one folder below, found by the kind their
    ``.meta.json`` records (never by file name or columns)."""
    for meta in sorted([*root.glob("*.meta.json"), *root.glob("*/*.meta.json")]):
        try:
            kind = json.loads(meta.read_text()).get(KIND)
        except (json.JSONDecodeError, AttributeError):
            continue
        csv = meta.with_name(meta.name[: -len(".meta.json")] + ".csv")
        if kind in PER_NEURON_KINDS and csv.exists():
            result = load_result(csv)
            _per_neuron_slot(data, _attribute(result, str(csv), f"{kind} result"), kind, result)


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
        table, attribute, rankings = _load(csv)
        attribute = attribute or attr
        data.encoded[attribute] = table
        if rankings:
            data.orders[attribute] = {r: [str(n) for n in o] for r, o in rankings.items()}
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
        used, attribute, _ = _load(csv)
        attr = attribute or attr  # the file name splits at the last "_": wrong for "Number_Type"
        if attr in stem and stem.endswith(attr):
            model = stem[: -len(attr)].rstrip("_")
        per_k = folder / f"compare_{stem}.csv"
        res = UsedSection(model=model or "model", attribute=attr, used=used,
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
def _result_kind(obj: Any) -> str | None:
    """The kind a result object says it is: a typed result's ``kind``, a marked table's ``attrs["tnp_kind"]``."""
    if isinstance(obj, pd.DataFrame):
        return kind_of(obj)
    kind = getattr(obj, "kind", None)
    return kind if isinstance(kind, str) and kind in KINDS and hasattr(obj, "table") else None


def _add_object(data: ReportData, name: str | None, obj: Any) -> None:
    """Route one result object to its place in ``data`` by what it says it is; anything else is an error naming
    its type."""
    from ..descriptions import Descriptions
    from ..textualization import TextualizeResult

    if isinstance(obj, (str, Path)):
        _read_folder(Path(obj), data)
    elif isinstance(obj, Activations):
        data.acts = obj
    elif isinstance(obj, TextualizeResult):
        data.textualize = obj.table
    elif isinstance(obj, Descriptions):
        table = obj.levels_frame() if obj.levels else obj.table[obj.table["end"] == "top"]
        data.descriptions = _check_descriptions(table, name)
    elif _result_kind(obj) is not None:
        _add_result(data, name, obj, _result_kind(obj))
    elif isinstance(obj, pd.DataFrame):
        raise ValueError(f"table {name or ''} with columns {list(obj.columns)} does not say what it is (no "
                         "attrs['tnp_kind']): pass the result object itself (EncodedResult, UsedResult, Comparison, "
                         "...), or read a saved one with load_result")
    elif isinstance(obj, Mapping):
        data.settings.update({str(k): v for k, v in obj.items()})
    else:
        raise TypeError(f"cannot add {type(obj).__name__} {'(' + name + ') ' if name else ''}to a report; expected "
                        "Activations, a results folder, an EncodedResult, UsedResult, Comparison, Attribution, "
                        "NeuronComparison, TextualizeResult or Descriptions, a marked table, or a dict of settings")


def _model_of(name: str | None) -> str:
    """The model of a result keyed ``"model/attribute ..."`` (a key without ``/`` is the model's name)."""
    return (name or "model").split("/", 1)[0]


def _attribute(obj: Any, name: str | None, what: str) -> str:
    """The attribute a result says it is about (its ``attribute``, else its table's mark); none: a ValueError
    naming the key (never a guess from the key or from which entry came first)."""
    if isinstance(obj, pd.DataFrame):
        attr, tables = None, (obj,)
    else:
        attr, tables = getattr(obj, "attribute", None), (getattr(obj, "table", None), getattr(obj, "per_k", None))
    for table in tables:
        if attr is None and isinstance(table, pd.DataFrame):
            attr = attribute_of(table)
    if attr is None:
        raise ValueError(f"the {what} {name or ''} does not say which attribute it is about (no attribute, no "
                         "attrs['attribute'], no attribute column)")
    return str(attr)


def _add_result(data: ReportData, name: str | None, obj: Any, kind: str) -> None:
    table = obj if isinstance(obj, pd.DataFrame) else obj.table
    if kind == "encoded":
        attr = _attribute(obj, name, "encoded result")
        data.encoded[attr] = table
        rankings = None if isinstance(obj, pd.DataFrame) else getattr(obj, "rankings", None)
        if rankings:
            data.orders[attr] = {r: [str(n) for n in o] for r, o in rankings.items()}
            data.top_neurons[attr] = pd.DataFrame(
                [dict(ranking=r, rank=i + 1, neuron=n) for r, o in data.orders[attr].items() for i, n in
                 enumerate(o[:10])])
    elif kind == "used":
        _used_slot(data, _model_of(name), _attribute(obj, name, "used result")).used = table
    elif kind == "compare" and hasattr(obj, "per_k"):
        slot = _used_slot(data, _model_of(name), _attribute(obj, name, "comparison"))
        slot.per_k, slot.summary = obj.per_k, str(obj.summary)
    elif kind == "compare":
        raise ValueError(f"table {name or ''} is a comparison's per-(ranking, k) table; pass the Comparison itself")
    elif kind == "compare_per_k":
        _used_slot(data, _model_of(name), _attribute(obj, name, "comparison table")).per_k = table
    elif kind in PER_NEURON_KINDS:
        if isinstance(obj, pd.DataFrame):  # a marked table: its typed result
            from ..evaluation.attribution import Attribution
            from ..evaluation.compare import NeuronComparison
            cls = Attribution if kind == "attribution" else NeuronComparison
            obj = cls(table.copy(), attribute_of(table), table.attrs.get("config"), None, table.attrs.get("extra"))
        _per_neuron_slot(data, _attribute(obj, name, f"{kind} result"), kind, obj)
    elif kind == "textualize":
        data.textualize = table
    elif kind == "descriptions":
        data.descriptions = _check_descriptions(table, name or "table")
    elif kind == "layer_stats":
        data.layer_stats = table
    elif kind == "top_neurons":
        data.top_neurons[attribute_of(table) or name or "attribute"] = table
    else:  # pragma: no cover - every kind is handled above
        raise ValueError(f"{name or 'a result'} says it is a {kind!r} result, which a report does not show")


def _per_neuron_slot(data: ReportData, attribute: str, kind: str, result: Any) -> None:
    """File ``result`` (an Attribution or a NeuronComparison) under its attribute's per-neuron section."""
    section = data.per_neuron.setdefault(attribute, PerNeuronSection(attribute))
    if kind == "attribution":
        section.attribution = result
    else:
        section.comparison = result


def _used_slot(data: ReportData, model: str, attribute: str) -> UsedSection:
    """The (model, attribute) entry of the used section: a used result and its comparison meet here."""
    for res in data.used:
        if res.model == model and res.attribute == attribute:
            return res
    data.used.append(UsedSection(model=model, attribute=attribute))
    return data.used[-1]
