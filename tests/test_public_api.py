"""The public surface a researcher holds in their head (issue 22): how wide each call is, how many names the top
level exports, one word per concept, no shims, and every entry point's example runs.

"Public" is every name in the ``__all__`` of the package and of each of its modules and subpackages; for a class,
its constructor and its public methods. ``python scripts/api_surface.py`` prints the same counts.
"""

from __future__ import annotations

import argparse
import dataclasses
import doctest
import importlib
import inspect
import pkgutil

import pytest

import tl_neuronprobe as tnp
from tl_neuronprobe.core.config import Config

MAX_PARAMETERS = 12
MAX_TOP_LEVEL = 42  # 40, ``units`` (dictionaries of latents) and ``export`` (Neuronpedia): issue 24

#: parameter (and config field) names the glossary in docs/contract.md bans, with the word to use instead
BANNED = {
    "n": "k / ks (neurons) or a descriptive name", "topk": "k / ks or a descriptive name", "top_n": "k",
    "n_neurons": "k", "max_features": "k", "method": "edit / optimizer", "out": "out_dir", "data": "corpus",
    "fit_data": "fit_corpus", "sentences": "n_sentences", "max_sentences": "n_sentences", "epochs": "max_steps",
    "max_epochs": "max_steps", "steps": "max_steps", "max_iter": "max_steps", "chunk": "chunk_rows",
    "chunk_size": "chunk_rows", "random_state": "seed", "verbose": "progress", "stop_after_layer": "stop_at_layer",
    "label": "attribute", "property": "attribute", "preset": "a from_preset() / preset constructor",
}
#: command line flags the glossary bans (argparse spelling)
BANNED_FLAGS = {"--data": "--corpus", "--method": "--edit / --optimizer", "--steps": "--max-steps",
                "--epochs": "--max-steps", "--verbose": "--progress / --no-progress", "--topk": "--k",
                "--out": "--out-dir", "--sentences": "--n-sentences", "--max-sentences": "--n-sentences"}
#: every stage entry point documents a runnable example
ENTRY_POINTS = ("extract", "evaluate_encoded", "evaluate_used", "compare_encoded_used", "textualize", "describe",
                "report")


def modules():
    yield tnp
    for info in pkgutil.walk_packages(tnp.__path__, "tl_neuronprobe."):
        if info.name.endswith("__main__"):
            continue
        yield importlib.import_module(info.name)


def public_objects():
    """``(qualified name, object)`` for every function and class named in some ``__all__``, once each."""
    seen: dict[int, str] = {}
    for module in modules():
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and id(obj) not in seen:
                seen[id(obj)] = f"{module.__name__}.{name}"
                yield seen[id(obj)], obj


def callables():
    """``(qualified name, callable)``: public functions, constructors and public methods of public classes."""
    for qual, obj in public_objects():
        if inspect.isfunction(obj):
            yield qual, obj
            continue
        init = obj.__dict__.get("__init__") or next((c.__dict__["__init__"] for c in obj.__mro__
                                                      if "__init__" in c.__dict__), None)
        if init is not None and getattr(init, "__module__", "").startswith("tl_neuronprobe"):
            yield f"{qual}()", init
        for name, member in vars(obj).items():
            if name.startswith("_"):
                continue
            fn = member.__func__ if isinstance(member, (classmethod, staticmethod)) else member
            if inspect.isfunction(fn):
                yield f"{qual}.{name}", fn


def parameters(fn) -> list[inspect.Parameter]:
    return [p for p in inspect.signature(fn).parameters.values()
            if p.name not in ("self", "cls") and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def test_no_public_call_takes_more_than_twelve_parameters():
    wide = sorted((len(parameters(fn)), qual) for qual, fn in callables() if len(parameters(fn)) > MAX_PARAMETERS)
    assert not wide, f"public calls over {MAX_PARAMETERS} parameters: {wide}"


def test_stage_entry_points_take_data_and_one_config():
    for name in ("extract", "evaluate_encoded", "evaluate_used", "textualize", "describe"):
        params = parameters(getattr(tnp, name))
        assert len(params) <= 8, (name, [p.name for p in params])
        assert "config" in [p.name for p in params], name


def test_top_level_is_small_and_every_name_exists():
    assert len(tnp.__all__) <= MAX_TOP_LEVEL, len(tnp.__all__)
    assert len(set(tnp.__all__)) == len(tnp.__all__)
    for name in tnp.__all__:
        assert hasattr(tnp, name), name


def test_every_subpackage_says_what_is_public():
    for module in modules():
        if module.__name__.count(".") == 1 and hasattr(module, "__path__"):  # a subpackage
            assert module.__doc__, f"{module.__name__} has no docstring saying what it holds"
            assert hasattr(module, "__all__") or "namespace" in module.__doc__.lower(), module.__name__


def _a_list_of_sentences(p: inspect.Parameter) -> bool:
    """``sentences`` is banned as a count (``n_sentences``), not as the sentences themselves."""
    return p.name == "sentences" and any(w in str(p.annotation) for w in ("list", "Sequence", "Iterable"))


def test_glossary_one_word_per_concept():
    found = []
    for qual, fn in callables():
        for p in parameters(fn):
            if p.name in BANNED and not _a_list_of_sentences(p):
                found.append(f"{qual}({p.name}=): use {BANNED[p.name]}")
            if p.name == "layer" and "Sequence" in str(p.annotation):
                found.append(f"{qual}(layer=): a list is `layers`")
    for qual, obj in public_objects():
        if inspect.isclass(obj) and dataclasses.is_dataclass(obj):
            for field in dataclasses.fields(obj):
                if field.name in BANNED:
                    found.append(f"{qual}.{field.name}: use {BANNED[field.name]}")
    assert not found, "\n".join(found)


def test_glossary_command_line_flags():
    from tl_neuronprobe.cli.main import build_parser
    parser = build_parser()
    found = []
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for command, p in sub.choices.items():
        for action in p._actions:
            for flag in action.option_strings:
                if flag in BANNED_FLAGS:
                    found.append(f"tl-neuronprobe {command} {flag}: use {BANNED_FLAGS[flag]}")
    assert not found, "\n".join(found)


def test_glossary_is_written_down():
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / "docs" / "contract.md").read_text()
    for word in ("`k`", "`edit`", "`optimizer`", "`out_dir`", "`corpus`", "`layers`", "`n_sentences`",
                 "`max_steps`", "`chunk_rows`", "`device`", "`seed`", "`progress`"):
        assert word in text, word


def test_no_shims_are_left():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("tl_neuronprobe.textualize")
    assert not hasattr(tnp.interventions, "set")
    assert callable(tnp.textualize)
    with pytest.raises(ValueError):
        tnp.rankers.make_ranker("iou")


def test_configs_round_trip_through_json():
    import json
    configs = [obj for _, obj in public_objects() if inspect.isclass(obj) and issubclass(obj, Config)
               and obj is not Config and all(f.default is not dataclasses.MISSING
                                             or f.default_factory is not dataclasses.MISSING
                                             for f in dataclasses.fields(obj))]
    assert len(configs) >= 6, configs
    for cls in configs:
        config = cls()
        again = Config.from_dict(json.loads(json.dumps(config.to_dict())))
        assert again == config, cls
        with pytest.raises(ValueError, match="no_such_field"):
            cls.from_dict({**config.to_dict(), "no_such_field": 1})


def test_every_entry_point_has_an_example():
    for name in ENTRY_POINTS:
        doc = getattr(tnp, name).__doc__ or ""
        assert ">>>" in doc, f"tnp.{name} has no runnable example"


def docstring_examples():
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = {}
    for qual, obj in public_objects():
        for test in finder.find(obj, qual):  # the globals of the module that defines obj
            if test.examples and test.name not in tests:
                tests[test.name] = test
    for module in modules():  # module-level examples
        for test in finder.find(module, module.__name__):
            if test.examples and test.name == module.__name__:
                tests.setdefault(test.name, test)
    return [tests[k] for k in sorted(tests)]


@pytest.mark.parametrize("example", docstring_examples(), ids=lambda t: t.name)
def test_docstring_example_runs(example):
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    example.globs.setdefault("tnp", tnp)
    report: list[str] = []
    result = runner.run(example, out=report.append)
    assert result.failed == 0, "".join(report)
