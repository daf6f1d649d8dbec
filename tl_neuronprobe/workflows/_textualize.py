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
from ..core.neurons import Neuron, parse_neurons
from ..data.activations import Activations
from ..data.extraction import extract
from ..rankers import Probeless
from ..textualization import TextualizeError, corpus_top_windows, textualize, words_needed

__all__ = ["textualize_job", "demo_textualize", "top_neurons", "words_only", "markdown_table", "SHOWN"]

SHOWN = ["neuron", "method", "text", "activation", "corpus_max", "ratio", "fluency", "similarity", "corpus_text"]
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


def textualize_job(model: str, neurons: str, out: "str | Path | None" = None, corpus: str | None = "ud-english",
                   device: str | None = None, seed: int = 0, progress: bool = True, **options):
    """:func:`~tl_neuronprobe.textualize` from names (``corpus``: the baseline corpus spec, or None for none);
    prints the table and, with ``out``, writes ``textualize.csv`` and ``textualize.md``. Returns the result."""
    loaded = models.load(model, device=device)
    result = textualize(loaded, parse_neurons(neurons), seed=seed, corpus=corpus, progress=progress, **options)
    table = result.table
    print(table[SHOWN].to_string(index=False))
    minutes = result.seconds / 60
    print(f"{len(result)} neurons in {result.seconds:.1f} s ({len(result) / minutes if minutes else float('nan'):.1f} "
          f"neurons/min); win rate vs corpus max: {result.win_rate:.2f}")
    if out:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        table.to_csv(out / "textualize.csv", index=False)
        (out / "textualize.md").write_text(markdown_table(table[SHOWN]))
        result.save(out / "result")  # reloadable: TextualizeResult.load (dense results keep their vectors)
        if options.get("method") == "dense":
            for text in result:
                result.plot_nearest(text.neuron, path=out / f"nearest_{text.neuron}.png")
        print(f"written to {out}")
    return result


def words_needed_job(model: str, words: Sequence[str], layers: Sequence[int], ks: Sequence[int],
                     out: "str | Path | None" = None, device: str | None = None, seed: int = 0, **options):
    """:func:`~tl_neuronprobe.textualization.words_needed` from names; with ``out`` writes ``words_needed.csv``,
    ``words_needed_curve.csv`` and ``words_needed.png``. Returns the result."""
    loaded = models.load(model, device=device)
    result = words_needed(loaded, list(words), list(layers), ks=list(ks), seed=seed, **options)
    print(result.curve.to_string(index=False))
    if out:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        result.table.to_csv(out / "words_needed.csv", index=False)
        result.curve.to_csv(out / "words_needed_curve.csv", index=False)
        result.plot(out / "words_needed.png")
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
        acts = extract(model, corpus, site="mlp.post", progress=False)
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


def demo_textualize(model, neurons, corpus, out_dir: "str | Path", seed: int = 0, method: str = "discrete",
                    length: int = 4, steps: int = 30, per_attribute: int = 2, vocab=words_only,
                    acts: Activations | None = None, attributes: Sequence[str] = ("upos", "Number"),
                    progress: bool = False) -> pd.DataFrame:
    """Textualize the top neurons of each attribute and write them beside their top corpus windows.

    ``neurons``: None (the top ``per_attribute`` Probeless neurons of each attribute, from ``acts`` or extracted
    here), a list, or ``{attribute: [neurons]}``. Writes ``textualize.md`` and ``textualize.csv`` under
    ``out_dir``; returns the table.
    """
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
    windows = corpus_top_windows(model, corpus, chosen, window=length, k=3)
    torch.manual_seed(seed)
    np.random.seed(seed)
    result = textualize(model, chosen, method=method, length=length, seed=seed, steps=steps, restarts=2,
                        candidates=16, corpus_max=_corpus_maxima(windows), vocab=vocab, progress=progress)
    table = result.table
    table.insert(1, "attribute", [attribute_of[Neuron.parse(n)] for n in table.neuron])
    top3 = _top_windows_text(windows)
    table["top_corpus_windows"] = [top3.get(n, "") for n in table.neuron]
    table.to_csv(out / "textualize.csv", index=False)
    name = "/".join(Path(ModelAdapter.wrap(model).name).parts[-2:])
    lines = ["# Textualization: optimized text beside the top corpus windows", "",
             f"Model {name}, method {method}, {length} tokens, {steps} iterations, seed {seed}; win rate vs corpus "
             f"max {result.win_rate:.2f}; {time.perf_counter() - t0:.1f} s in all.", "",
             markdown_table(table[DEMO_SHOWN])]
    (out / "textualize.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return table
