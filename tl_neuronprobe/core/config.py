"""Stage configs: frozen dataclasses, validated on construction, that round-trip through JSON.

Every stage takes its data plus one config (``UsedConfig``, ``TextualizeConfig``, ``DescribeConfig``,
``ExtractConfig``, ...); the parts of a config that are choices of kind (an edit, a readout, an optimizer) are
configs themselves. ``to_dict`` writes a nested config as ``{"type": "<ClassName>", ...fields}``, so
``Config.from_dict`` rebuilds any config from a ``summary.json`` without knowing its class in advance; a key the
class does not have is a ``ValueError`` naming it (never dropped).

>>> from dataclasses import dataclass
>>> from tl_neuronprobe.core.config import Config
>>> @dataclass(frozen=True)
... class Toy(Config):
...     k: int = 3
...     layers: tuple = ()
...     def validate(self):
...         if self.k < 1:
...             raise ValueError(f"k must be at least 1, got {self.k}")
>>> Toy(layers=[1, 2]).to_dict()
{'type': 'Toy', 'k': 3, 'layers': [1, 2]}
>>> Config.from_dict({"type": "Toy", "k": 5})
Toy(k=5, layers=())
>>> Toy(k=0)
Traceback (most recent call last):
ValueError: k must be at least 1, got 0
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from pathlib import Path
from typing import Any, ClassVar, TypeVar

__all__ = ["Config", "config_class", "write_summary", "read_summary"]

C = TypeVar("C", bound="Config")
_REGISTRY: dict[str, type["Config"]] = {}


def _freeze(value: Any) -> Any:
    """Lists (from JSON, say) become tuples so a frozen config hashes and compares by value."""
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict) and "type" in value and value["type"] in _REGISTRY:
        return Config.from_dict(value)
    if isinstance(value, dict) and value.get("type") == "callable" and isinstance(value.get("name"), str):
        return _named_callable(value["name"])
    return value


def _named_callable(name: str) -> Any:
    """The module-level function ``module.qualname`` that ``to_dict`` recorded; a lambda or a local function
    cannot be found again, which is a ``ValueError`` saying so."""
    module, _, qualname = name.rpartition(".")
    found: Any = None
    if "<" not in name and module:
        try:
            found = getattr(importlib.import_module(module), qualname, None)
        except ImportError:
            found = None
    if not callable(found):
        raise ValueError(f"a config field was the Python callable {name}, which cannot be imported again: pass it "
                         "anew (only module-level functions round-trip through JSON)")
    return found


def _plain(value: Any) -> Any:
    """A config field as JSON: configs nest as dicts with their ``type``, tuples become lists."""
    if isinstance(value, Config):
        return value.to_dict()
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if callable(value):
        name = getattr(value, "__qualname__", type(value).__name__)
        return {"type": "callable", "name": f"{getattr(value, '__module__', '?')}.{name}"}
    return str(value)


@dataclasses.dataclass(frozen=True)
class Config:
    """Base of every config: subclass it as a frozen dataclass and check fields in :meth:`validate`."""

    #: the key ``to_dict`` writes the class name under
    TYPE_KEY: ClassVar[str] = "type"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.__name__] = cls

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            frozen = _freeze(value)
            if frozen is not value:
                object.__setattr__(self, field.name, frozen)
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field when a value is out of range (called on construction)."""

    def to_dict(self) -> dict[str, Any]:
        """The config as JSON-able data, with its class name under ``"type"``."""
        out: dict[str, Any] = {self.TYPE_KEY: type(self).__name__}
        for field in dataclasses.fields(self):
            out[field.name] = _plain(getattr(self, field.name))
        return out

    @classmethod
    def from_dict(cls: type[C], values: dict[str, Any]) -> C:
        """Rebuild a config written by :meth:`to_dict`; ``Config.from_dict`` picks the class from ``"type"``.

        A callable field comes back when it was a module-level function (recorded by its import path)."""
        values = dict(values)
        name = values.pop(cls.TYPE_KEY, None)
        target = cls
        if name is not None:
            target = config_class(name)
            if not issubclass(target, cls):
                raise ValueError(f"{name} is not a {cls.__name__}")
        elif cls is Config:
            raise ValueError("a config dict needs a 'type' key naming its class")
        names = {f.name for f in dataclasses.fields(target) if f.init}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"{target.__name__} has no field(s) {unknown}; its fields are {sorted(names)}")
        return target(**values)

    def replace(self: C, **changes: Any) -> C:
        """A copy with ``changes`` (validated again)."""
        return dataclasses.replace(self, **changes)


def config_class(name: str) -> type[Config]:
    """The config class registered under ``name`` (its class name)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown config type {name!r}; known: {sorted(_REGISTRY)}") from None


def write_summary(out_dir: "str | Path", stage: str, config: Config, inputs: dict[str, Any],
                  **extra: Any) -> Path:
    """``<out_dir>/summary.json``: the stage, its inputs (model, corpus, files; JSON-able) and ``config.to_dict()``,
    enough for ``tl-neuronprobe rerun`` to run the stage again; ``extra`` (timings, counts) is kept beside."""
    path = Path(out_dir) / "summary.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"stage": stage, "inputs": _plain(inputs), "config": config.to_dict(), **_plain(extra)}
    path.write_text(json.dumps(body, indent=2) + "\n")
    return path


def read_summary(path: "str | Path") -> tuple[str, dict[str, Any], Config]:
    """``(stage, inputs, config)`` of a ``summary.json`` written by :func:`write_summary`."""
    path = Path(path)
    if path.is_dir():
        path = path / "summary.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        body = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    missing = [k for k in ("stage", "inputs", "config") if k not in body]
    if missing:
        raise ValueError(f"{path} has no {missing}: it was not written by write_summary")
    return body["stage"], body["inputs"], Config.from_dict(body["config"])
