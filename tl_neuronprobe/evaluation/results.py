"""What a result table is: its kind and attribute(s) in ``DataFrame.attrs``, kept beside its CSV; not for computing.

``evaluate_encoded``, ``evaluate_used`` and ``compare_encoded_used`` mark their tables with :func:`mark`
(``attrs["tnp_kind"]``: one of :data:`KINDS`, ``attrs["attribute"]``), so a reader (the report, the ``compare``
command) asks a table what it is instead of guessing from its columns. A CSV drops ``attrs``: :func:`save_table`
writes them to ``<stem>.meta.json`` beside the CSV and :func:`load_table` puts them back. The typed results
(:class:`TableResult` and its subclasses ``EncodedResult``, ``UsedResult``, ``Comparison``) carry the same kind and
attribute, plus their config and rankings, and :func:`load_result` reads a saved one back as its own class.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["KINDS", "TableResult", "load_result"]

#: the ``attrs`` key that names a table's kind
KIND = "tnp_kind"
#: the kinds of result table: ``compare`` is the comparison's per-(ranking, k) table, ``compare_per_k`` its per-k one
KINDS = ("encoded", "used", "compare", "compare_per_k", "layer_stats", "top_neurons", "textualize", "descriptions",
         "attribution", "neuron_comparison")
_SCALARS = (str, int, float, bool, type(None))


def mark(table: pd.DataFrame, kind: str, attribute: str | None = None, **extra: Any) -> pd.DataFrame:
    """Record in ``table.attrs`` that ``table`` is a result of ``kind`` about ``attribute``; returns ``table``."""
    if kind not in KINDS:
        raise ValueError(f"unknown result kind {kind!r}; one of {list(KINDS)}")
    table.attrs[KIND] = kind
    if attribute is not None:
        table.attrs["attribute"] = str(attribute)
    table.attrs.update(extra)
    return table


def kind_of(table: pd.DataFrame) -> str | None:
    """The kind ``table`` was marked with (None: an unmarked table, e.g. a CSV written before the marks)."""
    return table.attrs.get(KIND)


def attribute_of(table: pd.DataFrame) -> str | None:
    """The attribute a table is about: its mark, else its ``attribute`` column when that holds one value."""
    if table.attrs.get("attribute") is not None:
        return str(table.attrs["attribute"])
    if "attribute" in table.columns and table["attribute"].nunique() == 1:
        return str(table["attribute"].iloc[0])
    return None


def meta_path(csv: "str | Path") -> Path:
    """``used_m_Number.csv`` -> ``used_m_Number.meta.json``: where a CSV's ``attrs`` are kept."""
    csv = Path(csv)
    return csv.with_name(csv.stem + ".meta.json")


def _jsonable(value: Any) -> bool:
    if isinstance(value, _SCALARS):
        return True
    if isinstance(value, (list, tuple)):
        return len(value) <= 1000 and all(isinstance(v, _SCALARS) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and isinstance(v, _SCALARS) for k, v in value.items())
    return False


def save_table(table: pd.DataFrame, path: "str | Path") -> Path:
    """``table`` as a CSV at ``path`` and its JSON-able ``attrs`` (kind, attribute, settings; not fitted orders
    or neuron objects) at :func:`meta_path`; returns ``path``."""
    path = Path(path)
    attrs, table.attrs = table.attrs, {}
    try:
        table.to_csv(path, index=False)
    finally:
        table.attrs = attrs
    meta = {k: v for k, v in attrs.items() if _jsonable(v)}
    meta_path(path).write_text(json.dumps(meta, indent=2) + "\n")
    return path


def load_table(path: "str | Path") -> pd.DataFrame:
    """A CSV written by :func:`save_table`, with its ``attrs`` back (a CSV without ``.meta.json``: no attrs)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"table {path} does not exist")
    table = pd.read_csv(path)
    meta = meta_path(path)
    if meta.exists():
        try:
            table.attrs.update(json.loads(meta.read_text()))
        except json.JSONDecodeError as err:
            raise ValueError(f"{meta}: not valid JSON ({err})") from err
    return table


class TableResult:
    """Base of the typed table results (``EncodedResult``, ``UsedResult``, ``Comparison``): one tidy table, the
    attribute it is about, the config that made it (``config.to_dict()``) and, where the stage fitted rankers,
    their ``rankings`` (ranking name -> neurons in order, best first). Subclasses set :attr:`kind` and
    :meth:`plot`; the report and ``compare`` ask a result what it is instead of reading its columns.

    ``save(path)`` writes ``<path>`` (CSV) and ``<stem>.meta.json`` (kind, attribute, config, rankings as
    ``L3.N1207`` strings); ``load(path)`` (or :func:`load_result`, which picks the class from the kind) reads both.
    """

    kind: str = ""

    def __init__(self, table: pd.DataFrame, attribute: "str | None" = None, config: "dict | None" = None,
                 rankings: "dict[str, list] | None" = None, extra: "dict | None" = None) -> None:
        self.table = table
        self.attribute = attribute
        self.config = dict(config or {})
        self.rankings = dict(rankings or {})
        self.extra = dict(extra or {})
        mark(self.table, self.kind, attribute)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            _RESULTS[cls.kind] = cls

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(attribute={self.attribute!r}, rows={len(self.table)}, "
                f"columns={list(self.table.columns)})")

    def __len__(self) -> int:
        return len(self.table)

    def to_frame(self) -> pd.DataFrame:
        """The table (a copy, with the kind and attribute in ``attrs``)."""
        return self.table.copy()

    def plot(self, path: "str | Path | None" = None):  # pragma: no cover - every subclass draws its own
        raise NotImplementedError(f"{type(self).__name__} has no plot")

    def save(self, path: "str | Path") -> Path:
        """The table as CSV at ``path`` and everything else at ``<stem>.meta.json``; returns ``path``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_table(self.table, path)
        meta = json.loads(meta_path(path).read_text())
        meta.update(config=self.config, extra=self.extra,
                    rankings={name: [str(n) for n in order] for name, order in self.rankings.items()})
        meta_path(path).write_text(json.dumps(meta, indent=2, default=str) + "\n")
        return path

    @classmethod
    def load(cls, path: "str | Path") -> "TableResult":
        """A result written by :meth:`save` (``TableResult.load`` picks the subclass from the saved kind)."""
        table = load_table(path)
        kind = kind_of(table)
        target = cls
        if cls is TableResult or not cls.kind:
            if kind not in _RESULTS:
                raise ValueError(f"{path}: no result kind recorded (kind {kind!r}); known {sorted(_RESULTS)}")
            target = _RESULTS[kind]
        elif kind is not None and kind != cls.kind:
            raise ValueError(f"{path} holds a {kind!r} result, not {cls.kind!r}")
        from ..core.neurons import Neuron
        attrs = dict(table.attrs)
        rankings = {name: [Neuron.parse(n) for n in order] for name, order in attrs.get("rankings", {}).items()}
        table.attrs = {k: v for k, v in attrs.items() if k not in ("config", "extra", "rankings")}
        return target(table, attrs.get("attribute"), attrs.get("config"), rankings, attrs.get("extra"))


_RESULTS: dict[str, type[TableResult]] = {}


def load_result(path: "str | Path") -> TableResult:
    """Any typed table result saved with ``save``, as its own class."""
    return TableResult.load(path)
