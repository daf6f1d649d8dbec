"""The demo: every stage of the package on one model and one corpus, written to one folder.

Stages run in order and share what they can (the activations extracted first feed the encoded, used and
textualization stages); a stage that raises stops the demo with its error. ``summary.json`` records the settings,
the seed and each stage's time, enough to re-run it.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .. import models
from ..data.activations import Activations
from ..data.corpus import Corpus
from ..data.extraction import extract
from ._demo_used import demo_used
from ._describe import describe_stage
from ._encoded import demo_encoded
from ._report import report_job
from ._stats import layer_statistics, plot_layer_statistics
from ._textualize import demo_textualize

__all__ = ["DemoSettings", "demo", "demo_corpus", "STAGES", "DEFAULT_SENTENCES"]

#: the demo's default corpus size: about 5 minutes for the whole demo on MiniLM and 2 CPU cores
DEFAULT_SENTENCES = 200
STAGES = ("encoded", "used", "textualize", "describe", "report")


@dataclasses.dataclass
class DemoSettings:
    """Everything that decides what the demo computes (``summary.json`` stores it with the results).

    ``corpus``: ``ud-english`` (the shipped held-out EWT slice), ``synthetic``, or a ``.conllu`` path such as the
    full treebank; its first ``sentences`` sentences are used (None: all). ``quick`` keeps every output but
    shrinks the work (fewer sentences, rankers, k values and iterations) to well under a minute.
    """

    out: str = "tnp-demo"
    model: str = "minilm"
    corpus: str = "ud-english"
    sentences: int | None = DEFAULT_SENTENCES
    attributes: tuple[str, ...] = ("upos", "Number", "VerbForm")
    rankers: tuple[str, ...] = ("linear", "gaussian", "probeless", "mean_difference", "f_statistic",
                                "average_precision", "random")
    ks: tuple[int, ...] = (1, 2, 5, 10, 20, 50, 100, 200)
    used_rankers: tuple[str, ...] = ("probeless", "linear")
    used_ks: tuple[int, ...] = (1, 5, 20, 100)
    used_sentences: int = 48
    agreement: bool = True
    textualize_steps: int = 30
    describe_max_length: int = 2
    skip: tuple[str, ...] = ()
    quick_mode: bool = False
    seed: int = 0
    device: str | None = None
    progress: bool = True

    @classmethod
    def quick(cls, **changes: Any) -> "DemoSettings":
        """Settings for a complete, smaller run (every file, less data and fewer fits)."""
        small = dict(sentences=40, rankers=("probeless", "linear", "random"), ks=(1, 2, 5, 10),
                     used_rankers=("probeless",), used_ks=(1, 10), used_sentences=16, agreement=False,
                     textualize_steps=5, quick_mode=True)
        return cls(**{**small, **changes})

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):  # lists (from summary.json, say) become tuples
            if isinstance(getattr(self, field.name), list):
                setattr(self, field.name, tuple(getattr(self, field.name)))
        unknown = set(self.skip) - set(STAGES)
        if unknown:
            raise ValueError(f"unknown demo stages {sorted(unknown)} to skip; the stages are {list(STAGES)}")
        if self.sentences is not None and self.sentences < 1:
            raise ValueError(f"sentences must be positive, got {self.sentences}")


def demo_corpus(spec: str, sentences: int | None = None, seed: int = 0) -> Corpus:
    """The first ``sentences`` sentences of the corpus ``spec`` (see :meth:`Corpus.load`; None: all of it)."""
    if spec in ("ud-english", "synthetic") and sentences is not None:
        return Corpus.load(f"{spec}:{sentences}", seed=seed)
    corpus = Corpus.load(spec, seed=seed)
    return corpus[:sentences] if sentences is not None else corpus


def _stage_activations(settings: DemoSettings, model, corpus: Corpus, out: Path, summary: dict) -> Activations:
    acts = extract(model, corpus, site="mlp.post", progress=settings.progress, out_dir=out / "activations")
    stats = layer_statistics(acts)
    stats.to_csv(out / "layer_stats.csv", index=False)
    plot_layer_statistics(acts, out / "layer_stats.png")
    print(stats.to_string(index=False))
    summary.update(neurons=acts.n_neurons)
    return acts


def _stages(settings: DemoSettings, model, corpus: Corpus, acts: Activations, out: Path) -> dict[str, Callable]:
    s = settings
    used_corpus = corpus[: s.used_sentences]
    return {
        "encoded": lambda: demo_encoded(acts, out / "encoded", attributes=s.attributes, seed=s.seed,
                                        rankers=s.rankers, ks=[k for k in s.ks if k <= acts.n_neurons]),
        "used": lambda: demo_used(out / "used", model, used_corpus, attributes=s.attributes,
                                  model_name=Path(s.model).name, seed=s.seed, ks=s.used_ks, rankers=s.used_rankers,
                                  acts=acts if len(used_corpus) == len(corpus) else None, agreement=s.agreement,
                                  progress=s.progress),
        "textualize": lambda: demo_textualize(model, None, corpus, out / "textualize", seed=s.seed,
                                              steps=s.textualize_steps, acts=acts, attributes=s.attributes),
        "describe": lambda: describe_stage(acts, corpus, out / "describe", model=model, seed=s.seed,
                                           progress=s.progress, max_length=s.describe_max_length),
        "report": lambda: report_job(out, out / "report"),
    }


def demo(settings: DemoSettings | None = None, **changes: Any) -> dict:
    """Run the demo (``settings``, or :class:`DemoSettings` built from ``changes``) and return its summary.

    Writes ``activations/``, ``layer_stats.csv/png``, ``encoded/``, ``used/``, ``textualize/``, ``describe/``,
    ``summary.json`` and the HTML neuron browser ``report/index.html`` under ``settings.out``.
    """
    settings = settings or DemoSettings(**changes)
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(settings.seed)
    np.random.seed(settings.seed)
    model = models.load(settings.model, device=settings.device)
    corpus = demo_corpus(settings.corpus, settings.sentences, settings.seed)
    summary: dict[str, Any] = dict(model=settings.model, corpus=corpus.name, sentences=len(corpus),
                                   words=corpus.n_words, seed=settings.seed)
    t0 = time.perf_counter()
    acts = _stage_activations(settings, model, corpus, out, summary)
    summary["extract_seconds"] = round(time.perf_counter() - t0, 2)
    summary["settings"] = dataclasses.asdict(settings)
    (out / "summary.json").unlink(missing_ok=True)  # never a stale one from an earlier run beside new results
    for name, run in _stages(settings, model, corpus, acts, out).items():
        if name in settings.skip:
            continue
        if name == "report":  # the report reads the settings from summary.json
            (out / "summary.json").write_text(json.dumps(summary, indent=2))
        t = time.perf_counter()
        run()
        summary[f"demo_{name}_seconds"] = round(time.perf_counter() - t, 2)
    summary["total_seconds"] = round(time.perf_counter() - t0, 2)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    print(f"demo results in {out}")
    return summary
