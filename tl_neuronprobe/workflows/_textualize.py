"""The textualize jobs: ``textualize`` on named neurons, and the demo's stage that shows optimized text for the
top neurons of each attribute beside their top corpus windows."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from .. import models
from ..core.adapter import ModelAdapter
from ..core.config import write_summary
from ..core.neurons import Neuron, parse_neurons
from ..data.activations import Activations
from ..data.extraction import ExtractConfig, extract
from ..rankers import Probeless
from ..textualization import (Dense, Discrete, TextualizeConfig, TextualizeError, TextualizeResult, WordsNeeded,
                              WordsNeededConfig, corpus_top_windows, textualize, words_needed)

__all__ = ["textualize_job", "words_needed_job", "demo_textualize", "demo_textualize_config", "top_neurons",
           "words_only", "markdown_table", "SHOWN"]

SHOWN = ["neuron", "optimizer", "text", "activation", "corpus_max", "ratio", "fluency", "similarity", "corpus_text"]
DEMO_SHOWN = ["attribute", "neuron", "text", "activation", "corpus_max", "ratio", "top_corpus_windows"]


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub markdown table of ``frame`` (floats to three decimals, lists joined by spaces)."""
    def cell(v) -> str:
        if isinstance(v, float):
            return f"{v:.3f}"
        if isinstance(v, (tuple, list)):
            v = " ".join(map(str, v))
        return str(v).replace("|", "\\|").replace("\n", " ")
    cols = list(frame.columns)
    rows = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    rows += ["| " + " | ".join(cell(v) for v in rec) + " |" for rec in frame.itertuples(index=False)]
    return "\n".join(rows) + "\n"


def textualize_job(model: str, neurons: str, out_dir: "str | Path | None" = None,
                   config: TextualizeConfig | None = None, device: str | None = None,
                   progress: bool = True) -> TextualizeResult:
    """:func:`~tl_neuronprobe.textualize` from names: ``model`` (a :func:`~tl_neuronprobe.models.load` name) and
    ``neurons`` (``"L3.N1207,L5.N88"``); the baseline corpus is ``config.corpus``. Prints the table and, with
    ``out_dir``, writes ``textualize.csv``, ``textualize.md``, the saved result (``result/``; ``Dense()``: a
    nearest-token plot per neuron) and ``summary.json`` (stage ``"textualize"``). Returns the result."""
    config = TextualizeConfig() if config is None else config
    loaded = models.load(model, device=device)
    result = textualize(loaded, parse_neurons(neurons), config, progress=progress)
    table = result.table
    print(table[SHOWN].to_string(index=False))
    minutes = result.seconds / 60
    print(f"{len(result)} neurons in {result.seconds:.1f} s ({len(result) / minutes if minutes else float('nan'):.1f} "
          f"neurons/min); win rate vs corpus max: {result.win_rate:.2f}")
    if out_dir:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        table.to_csv(out / "textualize.csv", index=False)
        (out / "textualize.md").write_text(markdown_table(table[SHOWN]))
        result.save(out / "result")  # reloadable: TextualizeResult.load (dense results keep their vectors)
        if isinstance(config.optimizer, Dense):
            for text in result:
                result.plot_nearest(text.neuron, path=out / f"nearest_{text.neuron}.png")
        write_summary(out, "textualize", config, dict(model=model, neurons=neurons, out_dir=str(out_dir)),
                      seconds=result.seconds, win_rate=result.win_rate)
        print(f"written to {out}")
    return result


def words_needed_job(model: str, words: Sequence[str], layers: Sequence[int], out_dir: "str | Path | None" = None,
                     config: WordsNeededConfig | None = None, device: str | None = None,
                     progress: bool = True) -> WordsNeeded:
    """:func:`~tl_neuronprobe.textualization.words_needed` from names; with ``out_dir`` writes
    ``words_needed.csv``, ``words_needed_curve.csv``, ``words_needed.png`` and ``summary.json`` (stage
    ``"words_needed"``). Returns the result."""
    config = WordsNeededConfig() if config is None else config
    loaded = models.load(model, device=device)
    result = words_needed(loaded, list(words), list(layers), config, progress=progress)
    print(result.curve.to_string(index=False))
    if out_dir:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        result.table.to_csv(out / "words_needed.csv", index=False)
        result.curve.to_csv(out / "words_needed_curve.csv", index=False)
        result.plot(out / "words_needed.png")
        write_summary(out, "words_needed", config,
                      dict(model=model, words=list(words), layers=[int(x) for x in layers], out_dir=str(out_dir)))
        print(f"written to {out}")
    return result


def top_neurons(acts: Activations, attribute: str, k: int = 2, exclude: "set[Neuron] | None" = None
                ) -> list[Neuron]:
    """The ``k`` best neurons for ``attribute`` by :class:`~tl_neuronprobe.rankers.Probeless` (classes with
    fewer than two words dropped), skipping those in ``exclude``."""
    X, y, _ = acts.dataset(attribute, min_count=2)
    order = Probeless().fit(X.numpy(), y.numpy()).order_
    exclude = exclude or set()
    return [acts.neurons[j] for j in order if acts.neurons[j] not in exclude][:k]


def words_only(token: str) -> bool:
    """Vocabulary filter for readable demo text: whole alphabetic tokens (no sub-word pieces, digits or
    punctuation)."""
    return token.isalpha()


def _neuron_groups(model, corpus, acts: Activations | None, attributes: Sequence[str], per_attribute: int
                   ) -> dict[str, list[Neuron]]:
    """Distinct top neurons per attribute the corpus has, from ``acts`` (extracted here when None)."""
    if acts is None or len(acts.words) != corpus.n_words:
        acts = extract(model, corpus, ExtractConfig(site="mlp.post"), progress=False)
    groups: dict[str, list[Neuron]] = {}
    for attr in attributes:
        if attr in acts.attributes:
            groups[attr] = top_neurons(acts, attr, per_attribute, {n for g in groups.values() for n in g})
    return groups


def _as_groups(neurons) -> dict[str, list[Neuron]]:
    if isinstance(neurons, Mapping):
        return {k: parse_neurons(v) for k, v in neurons.items()}
    return {"": parse_neurons(neurons)}


def _corpus_maxima(windows: pd.DataFrame) -> dict[Neuron, tuple[float, str]]:
    return {Neuron.parse(k): (float(g.activation.iloc[0]), str(g.text.iloc[0]))
            for k, g in windows.groupby("neuron", sort=False)}


def _top_windows_text(windows: pd.DataFrame) -> pd.Series:
    return windows.groupby("neuron")[["text", "activation"]].apply(
        lambda g: " / ".join(f"{t} ({a:.2f})" for t, a in zip(g.text, g.activation)))


def demo_textualize_config(max_steps: int = 30, length: int = 4, seed: int = 0) -> TextualizeConfig:
    """The demo's search: ``Discrete(max_steps, restarts=2, candidates=16)`` over whole alphabetic tokens
    (:func:`words_only`), ``length`` tokens; the corpus maximum comes from the demo's own windows."""
    return TextualizeConfig(optimizer=Discrete(max_steps=max_steps, restarts=2, candidates=16), length=length,
                            seed=seed, vocab=words_only, corpus=None)


def demo_textualize(model, neurons, corpus, out_dir: "str | Path", config: TextualizeConfig | None = None,
                    per_attribute: int = 2, acts: Activations | None = None,
                    attributes: Sequence[str] = ("upos", "Number"), progress: bool = False) -> pd.DataFrame:
    """Textualize the top neurons of each attribute and write them beside their top corpus windows.

    ``neurons``: None (the top ``per_attribute`` Probeless neurons of each attribute, from ``acts`` or extracted
    here), a list, or ``{attribute: [neurons]}``. ``config``: the search (default
    :func:`demo_textualize_config`); its corpus maximum is always the best window of ``corpus`` (three windows
    per neuron are shown). Writes ``textualize.md`` and ``textualize.csv`` under ``out_dir``; returns the table.
    """
    config = demo_textualize_config() if config is None else config
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    groups = _neuron_groups(model, corpus, acts, attributes, per_attribute) if neurons is None else _as_groups(neurons)
    attribute_of: dict[Neuron, str] = {}
    for attr, group in groups.items():
        for n in group:
            attribute_of.setdefault(n, attr)
    if not attribute_of:
        raise TextualizeError("no neurons to textualize in the demo")
    chosen = list(attribute_of)
    windows = corpus_top_windows(model, corpus, chosen, length=config.length, n_windows=3)
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    result = textualize(model, chosen, config, corpus_max=_corpus_maxima(windows), progress=progress)
    table = result.table
    table.insert(1, "attribute", [attribute_of[Neuron.parse(n)] for n in table.neuron])
    top3 = _top_windows_text(windows)
    table["top_corpus_windows"] = [top3.get(n, "") for n in table.neuron]
    table.to_csv(out / "textualize.csv", index=False)
    name = "/".join(Path(ModelAdapter.wrap(model).name).parts[-2:])
    opt = config.optimizer
    lines = ["# Textualization: optimized text beside the top corpus windows", "",
             f"Model {name}, optimizer {opt.name}, {config.length} tokens, {opt.max_steps} steps, seed "
             f"{config.seed}; win rate vs corpus max {result.win_rate:.2f}; {time.perf_counter() - t0:.1f} s in all.",
             "", markdown_table(table[DEMO_SHOWN])]
    (out / "textualize.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return table
