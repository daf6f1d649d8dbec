"""``describe_job``: model + corpus -> activations -> descriptions -> a folder of tables (what the CLI calls).

Also the two reports it writes beside the descriptions: each neuron's top contexts and the agreement of the
descriptions with the Probeless and Linear rankings per tag. Not for argument parsing (the CLI does that).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from ..core.config import Config, write_summary
from ..data.activations import Activations
from ..data.corpus import Corpus
from ..data.extraction import ExtractConfig
from ..descriptions import DescribeConfig, Descriptions, describe

__all__ = ["DescribeJobConfig", "describe_job", "describe_stage", "best_described", "description_agreement",
           "top_contexts"]


def top_contexts(acts: Activations, neuron: str, n_contexts: int = 3, window: int = 4) -> list[str]:
    """The ``n_contexts`` words where ``neuron`` fires most, each in its sentence window, the word in brackets."""
    x = acts.X[:, int(acts.columns([neuron])[0])].float().numpy()
    sid, words = acts.sentence_ids, acts.words
    out = []
    for i in np.argsort(-x, kind="stable")[:n_contexts]:
        lo, hi = i, i
        while lo > 0 and sid[lo - 1] == sid[i] and i - lo < window:
            lo -= 1
        while hi + 1 < len(words) and sid[hi + 1] == sid[i] and hi - i < window:
            hi += 1
        out.append(" ".join(f"[{w}]" if j == i else w for j, w in zip(range(lo, hi + 1), words[lo:hi + 1])))
    return out


def best_described(desc: Descriptions, acts: Activations, k: int = 10, per_layer: bool = True) -> pd.DataFrame:
    """The ``k`` best described neurons by held-out F1 (spread over the layers by default) with their top
    contexts."""
    t = desc.table[(desc.table["end"] == "top") & desc.table["described"]].copy()
    t = t.sort_values(["test_f1", "formula_iou"], ascending=False)
    t = t.groupby("layer").head(max(1, k // max(t["layer"].nunique(), 1))) if per_layer else t.head(k)
    t["contexts"] = [" | ".join(top_contexts(acts, nr)) for nr in t["neuron"]]
    cols = ["neuron", "layer", "top_level", "top_description", "description", "formula", "test_f1",
            "simulation_corr", "contexts"]
    return t[[c for c in cols if c in t]]


def description_agreement(desc: Descriptions, acts: Activations, attribute: str = "upos",
                     rankers: Sequence[str] = ("probeless", "linear"), k: int = 10, min_count: int = 50,
                     seed: int = 0) -> pd.DataFrame:
    """Per tag: P@k of the neurons the descriptions rank first for ``attribute=tag`` against each ranker's top k.

    Gold: the top ``k`` neurons of the ranker's per-class scores for the tag (fitted on all words carrying the
    attribute). Also the share of the ranker's top ``k`` that are described by a formula naming the tag.
    """
    from ..rankers import Linear, Probeless

    X, y, classes = acts.dataset(attribute, min_count=min_count)
    fitted = {}
    for name in rankers:
        est = {"probeless": Probeless, "linear": Linear}[name](seed=seed)
        fitted[name] = est.fit(X.numpy(), y.numpy())
    names = desc.neurons
    top = desc.table[desc.table["end"] == "top"]
    rows = []
    for ci, tag in enumerate(classes):
        concept = f"{attribute}={tag}"
        if concept not in desc.concepts.names:
            continue
        ours = desc.ranked_neurons(concept)[:k]
        for name, est in fitted.items():
            gold = [names[j] for j in np.argsort(-est.per_class_[ci], kind="stable")[:k]]
            mentions = top.set_index("neuron").loc[gold, "formula"].str.contains(concept, regex=False)
            rows.append(dict(tag=tag, ranking=name, k=k, p_at_k=len(set(ours) & set(gold)) / k,
                             ranker_top_described_as_tag=float(mentions.mean())))
    return pd.DataFrame(rows)


@dataclasses.dataclass(frozen=True)
class DescribeJobConfig(Config):
    """What :func:`describe_job` computes: the extraction, the descriptions and the extra reports.

    Parameters
    ----------
    extract : ExtractConfig
        Site and layers read (long sentences skipped by default).
    describe : DescribeConfig
        The descriptions; its ``seed`` also loads a synthetic corpus and fits the agreement rankers.
    agreement : bool
        Write ``agreement.csv`` (descriptions against Probeless / Linear per UPOS tag) when the corpus has
        ``upos``.
    effects : int
        Ablate this many best described neurons and write ``effects.csv`` (0: none).
    batch_size : int
        Sentences per forward pass of the ablations.

    Examples
    --------
    >>> from tl_neuronprobe.workflows import DescribeJobConfig
    >>> DescribeJobConfig().extract.long_sentences
    'skip'
    """

    extract: ExtractConfig = dataclasses.field(default_factory=lambda: ExtractConfig(long_sentences="skip"))
    describe: DescribeConfig = dataclasses.field(default_factory=DescribeConfig)
    agreement: bool = True
    effects: int = 0
    batch_size: int = 32

    def validate(self) -> None:
        if not isinstance(self.extract, ExtractConfig) or not isinstance(self.describe, DescribeConfig):
            raise ValueError("extract must be an ExtractConfig and describe a DescribeConfig")
        if int(self.effects) < 0 or int(self.batch_size) < 1:
            raise ValueError(f"effects must be >= 0 and batch_size >= 1, got {self.effects}, {self.batch_size}")


def describe_job(model: Any = "minilm", corpus: str = "ud-english:400", out_dir: "str | Path" = "describe-out",
                 n_sentences: int | None = None, config: DescribeJobConfig | None = None, *,
                 device: str | None = None, progress: bool = True) -> Descriptions:
    """Load ``model`` (a name for ``tnp.models.load``, or a model) and ``corpus`` (a ``Corpus.load`` spec; its first
    ``n_sentences`` when given), extract activations, describe every neuron and write the results to ``out_dir``
    (see :func:`describe_stage`) with ``summary.json`` (stage ``"describe"``: ``tl-neuronprobe rerun`` runs it
    again)."""
    from .. import models
    from ..data.extraction import extract

    config = DescribeJobConfig() if config is None else config
    seed = config.describe.seed
    t0 = time.perf_counter()
    mdl = models.load(model, device=device) if isinstance(model, str) else model
    loaded = Corpus.load(corpus, seed=seed)
    if n_sentences is not None:
        loaded = loaded[: int(n_sentences)]
    acts = extract(mdl, loaded, config.extract, device=device, progress=progress)
    extract_s = time.perf_counter() - t0
    desc = describe_stage(acts, loaded, out_dir, config.describe, model=mdl, agreement=config.agreement,
                          effects=config.effects, batch_size=config.batch_size, progress=progress)
    inputs = dict(model=model if isinstance(model, str) else type(model).__name__, corpus=str(corpus),
                  out_dir=str(out_dir), n_sentences=n_sentences)
    run = dict(desc.meta.get("run", {}))
    run["timings"] = dict(run.get("timings", {}), load_and_extract_s=extract_s)
    write_summary(out_dir, "describe", config, inputs, **run)
    return desc


def describe_stage(acts: Activations, corpus: Corpus, out_dir: "str | Path", config: DescribeConfig | None = None,
                   *, model: Any = None, agreement: bool = True, effects: int = 0, batch_size: int = 32,
                   progress: bool = True) -> Descriptions:
    """Describe every neuron of ``acts`` over ``corpus`` with ``config`` and write the results to ``out_dir``.

    Writes ``descriptions/`` (see :class:`Descriptions`), ``coverage.csv`` (per layer), ``methods.csv``
    (description vs baselines), ``methods_by_level.csv`` (the same at every level of ``config.search.levels``),
    ``best.csv`` (best described neurons with contexts), ``agreement.csv``
    (P@k against Probeless / Linear per UPOS tag, when the corpus has ``upos`` and ``agreement``),
    ``effects.csv`` (the ``effects`` best described neurons ablated; needs ``model``) and
    ``describe_summary.json`` (counts, timings, notes; also in ``descriptions.meta["run"]``).
    """
    from ..descriptions import description_effects

    config = DescribeConfig() if config is None else config
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    desc = describe(acts, corpus, config=config, progress=progress)
    timings["describe_s"] = time.perf_counter() - t0
    desc.coverage("layer").to_csv(out / "coverage.csv", index=False)
    desc.compare_methods().to_csv(out / "methods.csv", index=False)
    if desc.levels:
        desc.compare_levels().to_csv(out / "methods_by_level.csv", index=False)
    best_described(desc, acts).to_csv(out / "best.csv", index=False)
    notes = []
    if agreement and "upos" in acts.attributes:
        counts = Counter(v for v in acts.attributes["upos"] if v is not None)
        if max(counts.values(), default=0) >= 50:
            t0 = time.perf_counter()
            description_agreement(desc, acts, seed=config.seed).to_csv(out / "agreement.csv", index=False)
            timings["agreement_s"] = time.perf_counter() - t0
        else:
            notes.append("agreement with the rankers skipped: no upos tag has 50 words")
            print(f"[describe] {notes[-1]}")
    if effects and model is not None:
        top = best_described(desc, acts, k=effects, per_layer=False)["neuron"]
        description_effects(model, corpus, desc, list(top), batch_size=batch_size).to_csv(out / "effects.csv",
                                                                                         index=False)
    run = dict(n_sentences=len(corpus), n_words=corpus.n_words, n_neurons=acts.n_neurons,
               n_concepts=len(desc.concepts), timings=timings, notes=notes, torch_threads=torch.get_num_threads())
    desc.meta["run"] = run
    desc.save(out / "descriptions")
    (out / "describe_summary.json").write_text(json.dumps(dict(run, config=config.to_dict()), indent=1,
                                                          default=str))
    return desc
