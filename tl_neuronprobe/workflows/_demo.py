"""The demo: every stage of the package on one model and one corpus, written to one folder.

Stages run in order and share what they can (the activations extracted first feed the encoded, used and
textualization stages); a stage that raises stops the demo with its error. ``summary.json`` records the
:class:`DemoConfig` (``tl-neuronprobe rerun <out_dir>/summary.json`` runs it again), the corpus and each stage's time.
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
from ..core.adapter import ModelAdapter
from ..core.config import Config, write_summary
from ..data.activations import Activations
from ..data.corpus import Corpus
from ..data.extraction import ExtractConfig, extract
from ..descriptions import DescribeConfig, Search
from ..evaluation.encoded import EncodedConfig
from ..evaluation.used import UsedConfig
from ..interventions import Identity
from ..textualization import TextualizeConfig
from ._demo_used import USED_CONFIG, demo_used
from ._describe import describe_stage
from ._encoded import DEMO_KS, DEMO_RANKERS, demo_encoded
from ._report import report_job
from ._stats import layer_statistics, plot_layer_statistics
from ._textualize import demo_textualize, demo_textualize_config
from ._units import units_stage

__all__ = ["DemoConfig", "demo", "demo_corpus", "STAGES", "DEFAULT_SENTENCES"]

#: the demo's default corpus size: about 5 minutes for the whole demo on MiniLM and 2 CPU cores
DEFAULT_SENTENCES = 200
#: the stages after extraction, in order; ``agreement`` is the used stage's agreement-decoder part; ``units`` (neurons
#: beside a dictionary's latents) runs with ``demo(units="sae")`` or a dictionary folder
STAGES = ("encoded", "used", "agreement", "textualize", "describe", "units", "report")
#: the layer whose neurons the demo compares with its SAE's latents (a middle layer of MiniLM's six)
UNITS_LAYER = 3


@dataclasses.dataclass(frozen=True)
class DemoConfig(Config):
    """Everything that decides what the demo computes (``summary.json`` stores it with the results).

    Parameters
    ----------
    model : str
        ``minilm`` (default), ``planted``, ``tiny`` or a Hugging Face folder (see :func:`tl_neuronprobe.models.load`).
    corpus : str
        ``ud-english`` (the shipped held-out EWT slice), ``synthetic``, or a ``.conllu`` path such as the full
        treebank.
    n_sentences : int or None
        Use the first ``n_sentences`` sentences of the corpus (None: all).
    attributes : tuple of str
        The attributes ranked, intervened on and textualized.
    rankers : tuple of str
        Rankers of the encoded stage (names of :func:`tl_neuronprobe.rankers.make_ranker`).
    encoded : EncodedConfig
        The encoded stage (its ``ks`` above the number of neurons are left out).
    used : UsedConfig
        The used stage; its ``n_sentences`` (default 48) first sentences are fitted and evaluated.
    used_rankers : tuple of str
        The rankings the used stage edits.
    textualize : TextualizeConfig
        The textualization search (default :func:`~tl_neuronprobe.workflows.demo_textualize_config`).
    describe : DescribeConfig
        The description search.
    skip : tuple of str
        Stages (of :data:`STAGES`) not to run.
    seed : int
        The one seed of the demo: corpus order, torch and NumPy, and the ``seed`` of every stage config (which it
        replaces, so that one number reproduces the run).

    Examples
    --------
    >>> from tl_neuronprobe.workflows import DemoConfig
    >>> config = DemoConfig.quick(model="planted", corpus="synthetic")
    >>> config.n_sentences, config.used.ks
    (40, (1, 10))
    >>> DemoConfig.from_dict(config.to_dict()) == config
    True
    """

    model: str = "minilm"
    corpus: str = "ud-english"
    n_sentences: "int | None" = DEFAULT_SENTENCES
    attributes: "tuple[str, ...]" = ("upos", "Number", "VerbForm")
    rankers: "tuple[str, ...]" = DEMO_RANKERS
    encoded: EncodedConfig = EncodedConfig(ks=DEMO_KS)
    used: UsedConfig = USED_CONFIG.replace(ks=(1, 5, 20, 100), n_sentences=48)
    used_rankers: "tuple[str, ...]" = ("probeless", "linear")
    textualize: TextualizeConfig = demo_textualize_config(max_steps=30)
    describe: DescribeConfig = DescribeConfig(search=Search(max_length=2))
    skip: "tuple[str, ...]" = ()
    seed: int = 0

    @classmethod
    def quick(cls, **changes: Any) -> "DemoConfig":
        """A complete, smaller run (every file, less data and fewer fits): well under a minute on MiniLM."""
        small = dict(n_sentences=40, rankers=("probeless", "linear", "random"), encoded=EncodedConfig(ks=(1, 2, 5, 10)),
                     used=USED_CONFIG.replace(ks=(1, 10), n_sentences=16), used_rankers=("probeless",),
                     textualize=demo_textualize_config(max_steps=5), skip=("agreement",))
        return cls(**{**small, **changes})

    def validate(self) -> None:
        unknown = set(self.skip) - set(STAGES)
        if unknown:
            raise ValueError(f"unknown demo stages {sorted(unknown)} to skip; the stages are {list(STAGES)}")
        if self.n_sentences is not None and self.n_sentences < 1:
            raise ValueError(f"DemoConfig.n_sentences must be positive, got {self.n_sentences}")
        for name, cls in (("encoded", EncodedConfig), ("used", UsedConfig), ("textualize", TextualizeConfig),
                          ("describe", DescribeConfig)):
            if not isinstance(getattr(self, name), cls):
                raise ValueError(f"DemoConfig.{name} must be a {cls.__name__}, got {getattr(self, name)!r}")

    def seeded(self, name: str) -> Config:
        """The config of stage ``name`` with the demo's seed."""
        return getattr(self, name).replace(seed=self.seed)


def demo_corpus(spec: str, n_sentences: int | None = None, seed: int = 0) -> Corpus:
    """The first ``n_sentences`` sentences of the corpus ``spec`` (see :meth:`Corpus.load`; None: all of it)."""
    if spec in ("ud-english", "synthetic") and n_sentences is not None:
        return Corpus.load(f"{spec}:{n_sentences}", seed=seed)
    corpus = Corpus.load(spec, seed=seed)
    return corpus[:n_sentences] if n_sentences is not None else corpus


def _stage_activations(model, corpus: Corpus, out: Path, progress: bool) -> Activations:
    acts = extract(model, corpus, ExtractConfig(site="mlp.post"), out_dir=out / "activations", progress=progress)
    stats = layer_statistics(acts)
    stats.to_csv(out / "layer_stats.csv", index=False)
    plot_layer_statistics(acts, out / "layer_stats.png")
    if progress:
        print(stats.to_string(index=False))
    return acts


def _dictionary(units_spec: str, config: DemoConfig, model, corpus: Corpus, progress: bool):
    """The dictionary ``units`` names: the demo's SAE (``"sae"``, trained once and cached) or a folder in SAELens's
    layout; None for ``"neurons"``."""
    from ..core import units as units_mod
    from ._units import demo_sae

    if units_spec == "neurons":
        return None
    if units_spec == "sae":
        layer = min(UNITS_LAYER, ModelAdapter.wrap(model).n_layers - 1)
        return demo_sae(model, config.corpus, corpus, layer, seed=config.seed, progress=progress)
    if not Path(units_spec).is_dir():
        raise ValueError(f"units must be 'neurons', 'sae' or a dictionary folder (cfg.json + "
                         f"sae_weights.safetensors), got {units_spec!r}")
    return units_mod.load(units_spec)


def _stages(config: DemoConfig, model, corpus: Corpus, acts: Activations, out: Path, progress: bool,
            dictionary=None) -> dict[str, Callable]:
    c = config
    used = c.seeded("used")
    if isinstance(used.readout, Identity) and used.readout.lexicon is None:
        # predicted words are judged with the whole demo corpus's lexicon, not only the used stage's sentences
        used = used.replace(readout=Identity(lexicon=c.corpus))
    used_corpus = corpus[: used.n_sentences]
    return {
        "encoded": lambda: demo_encoded(acts, out / "encoded", c.seeded("encoded"), attributes=c.attributes,
                                        rankers=c.rankers, progress=progress),
        "used": lambda: demo_used(out / "used", model, used_corpus, attributes=c.attributes,
                                  model_name=Path(c.model).name, config=used, rankers=c.used_rankers,
                                  acts=acts if len(used_corpus) == len(corpus) else None,
                                  agreement="agreement" not in c.skip, progress=progress),
        "textualize": lambda: demo_textualize(model, None, corpus, out / "textualize", c.seeded("textualize"),
                                              acts=acts, attributes=c.attributes, progress=progress),
        "describe": lambda: describe_stage(acts, corpus, out / "describe", c.seeded("describe"), model=model,
                                           progress=progress),
        "units": lambda: None if dictionary is None else units_stage(
            model, corpus, dictionary, out / "units", attributes=[a for a in ("upos", "Number") if a in c.attributes],
            used=used.replace(n_sentences=None), used_sentences=len(used_corpus),
            describe_config=c.seeded("describe").replace(search=c.describe.search.replace(levels=())),
            progress=progress),
        "report": lambda: report_job(out, out / "report"),
    }


def demo(config: DemoConfig | None = None, *, out_dir: "str | Path" = "tnp-demo", units: str = "neurons",
         device: str | None = None, progress: bool = True) -> dict:
    """Run the demo with ``config`` (default :class:`DemoConfig`) into ``out_dir``; returns its summary.

    Writes ``activations/``, ``layer_stats.csv/png``, ``encoded/``, ``used/``, ``textualize/``, ``describe/``,
    ``summary.json`` and the HTML neuron browser ``report/index.html`` under ``out_dir``. With ``progress``, progress
    bars and each layer's activation statistics and the timings are printed. ``units="sae"`` also trains (once;
    cached) a small SAE at layer 3's ``mlp.post`` on held-out text the demo does not read and compares that
    layer's best neurons with its best latents for UPOS and Number (``units/``, a report section and latent
    pages); a folder in SAELens's layout uses that dictionary instead.

    Examples
    --------
    >>> from tl_neuronprobe.workflows import DemoConfig, demo
    >>> config = DemoConfig.quick(model="planted", corpus="synthetic", n_sentences=20, attributes=("upos",),
    ...                           skip=("used", "agreement", "textualize", "describe", "report"))
    >>> import tempfile
    >>> summary = demo(config, out_dir=tempfile.mkdtemp(), progress=False)
    >>> summary["n_sentences"], summary["stage"]
    (20, 'demo')
    """
    config = config if config is not None else DemoConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    model = models.load(config.model, device=device)
    corpus = demo_corpus(config.corpus, config.n_sentences, config.seed)
    facts: dict[str, Any] = dict(model=config.model, corpus=corpus.name, n_sentences=len(corpus),
                                 words=corpus.n_words, seed=config.seed)
    (out / "summary.json").unlink(missing_ok=True)  # never a stale one from an earlier run beside new results
    inputs = {"out_dir": str(out), "units": units}
    t0 = time.perf_counter()
    acts = _stage_activations(model, corpus, out, progress)
    facts.update(neurons=acts.n_neurons, extract_seconds=round(time.perf_counter() - t0, 2))
    t = time.perf_counter()
    dictionary = _dictionary(units, config, model, corpus, progress) if "units" not in config.skip else None
    if dictionary is not None:
        facts.update(dictionary=dictionary.name, dictionary_seconds=round(time.perf_counter() - t, 2))
    for name, run in _stages(config, model, corpus, acts, out, progress, dictionary).items():
        if name in config.skip or (name == "units" and dictionary is None):
            continue
        if name == "report":  # the report reads the run's config and corpus from summary.json
            write_summary(out, "demo", config, inputs, **facts)
        t = time.perf_counter()
        run()
        facts[f"demo_{name}_seconds"] = round(time.perf_counter() - t, 2)
    facts["total_seconds"] = round(time.perf_counter() - t0, 2)
    path = write_summary(out, "demo", config, inputs, **facts)
    summary = json.loads(path.read_text())
    if progress:
        print(json.dumps(facts, indent=2))
        print(f"demo results in {out}")
    return summary
