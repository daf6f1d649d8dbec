"""What a result table is: its kind and attribute(s) in ``DataFrame.attrs``, kept beside its CSV; not for computing.

``evaluate_encoded``, ``evaluate_used`` and ``compare_encoded_used`` mark their tables with :func:`mark`
(``attrs["tnp_kind"]``: one of :data:`KINDS`, ``attrs["attribute"]``), so a reader (the report, the ``compare``
command) asks a table what it is instead of guessing from its columns. A CSV drops ``attrs``: :func:`save_table`
writes them to ``<stem>.meta.json`` beside the CSV and :func:`load_table` puts them back. Typed result classes
can later hold these same two fields.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["KINDS", "KIND", "mark", "kind_of", "attribute_of", "save_table", "load_table", "meta_path"]

#: the ``attrs`` key that names a table's kind
KIND = "tnp_kind"
#: the kinds of result table: ``compare`` is the comparison's per-(ranking, k) table, ``compare_per_k`` its per-k one
KINDS = ("encoded", "used", "compare", "compare_per_k", "layer_stats", "top_neurons", "textualize", "descriptions")
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
