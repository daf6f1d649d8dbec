"""``run_describe``: model + data -> activations -> descriptions -> a folder of tables (what a CLI command calls).

Also the two reports it writes beside the descriptions: each neuron's top contexts and the agreement of the
descriptions with the Probeless and Linear rankings per tag. Not for argument parsing (the CLI does that).
"""

from __future__ import annotations

import json
from collections import Counter
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from ..data.activations import Activations
from ..data.corpus import Corpus
from ..descriptions import Descriptions, describe


def top_contexts(acts: Activations, neuron: str, n: int = 3, window: int = 4) -> list[str]:
    """The ``n`` words where ``neuron`` fires most, each in its sentence window, the word in brackets."""
    x = acts.X[:, int(acts.columns([neuron])[0])].float().numpy()
    sid, words = acts.sentence_ids, acts.words
    out = []
    for i in np.argsort(-x, kind="stable")[:n]:
        lo, hi = i, i
        while lo > 0 and sid[lo - 1] == sid[i] and i - lo < window:
            lo -= 1
        while hi + 1 < len(words) and sid[hi + 1] == sid[i] and hi - i < window:
            hi += 1
        out.append(" ".join(f"[{w}]" if j == i else w for j, w in zip(range(lo, hi + 1), words[lo:hi + 1])))
    return out


def best_described(desc: Descriptions, acts: Activations, n: int = 10, per_layer: bool = True) -> pd.DataFrame:
    """The best described neurons by held-out F1 (per layer by default) with their top contexts."""
    t = desc.table[(desc.table["end"] == "top") & desc.table["described"]].copy()
    t = t.sort_values(["test_f1", "formula_iou"], ascending=False)
    t = t.groupby("layer").head(max(1, n // max(t["layer"].nunique(), 1))) if per_layer else t.head(n)
    t["contexts"] = [" | ".join(top_contexts(acts, nr)) for nr in t["neuron"]]
    return t[["neuron", "layer", "description", "formula", "test_f1", "simulation_corr", "contexts"]]


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


def run_describe(model: Any = "minilm", data: str = "ud-english:400", out_dir: "str | Path" = "describe-out",
                 n_sentences: int | None = None, layers: Sequence[int] | None = None, site: str = "mlp.post",
                 sources: "str | Sequence[str]" = "auto", agreement: bool = True, effects: int = 0,
                 device: str | None = None, batch_size: int = 32, progress: bool = True, seed: int = 0,
                 **options: Any) -> Descriptions:
    """Load ``model`` (a name for ``tnp.models.load`` or a model) and ``data`` (``Corpus.load`` spec), extract
    ``site`` activations, describe every neuron and write the results to ``out_dir`` (see
    :func:`describe_stage`, which does the rest)."""
    from .. import models
    from ..data.extraction import extract

    t0 = time.perf_counter()
    mdl = models.load(model, device=device) if isinstance(model, str) else model
    corpus = Corpus.load(data, seed=seed)
    if n_sentences is not None:
        corpus = corpus[: int(n_sentences)]
    acts = extract(mdl, corpus, site=site, layers=layers, progress=progress, device=device, long_sentences="skip")
    extract_s = time.perf_counter() - t0
    return describe_stage(acts, corpus, out_dir, model=mdl, sources=sources, agreement=agreement, effects=effects,
                          batch_size=batch_size, progress=progress, seed=seed,
                          summary=dict(model=model if isinstance(model, str) else type(model).__name__, data=data,
                                       site=site, load_and_extract_s=extract_s), **options)


def describe_stage(acts: Activations, corpus: Corpus, out_dir: "str | Path", model: Any = None,
                   sources: "str | Sequence[str]" = "auto", agreement: bool = True, effects: int = 0,
                   batch_size: int = 32, progress: bool = True, seed: int = 0, summary: dict | None = None,
                   **options: Any) -> Descriptions:
    """Describe every neuron of ``acts`` over ``corpus`` and write the results to ``out_dir``.

    Writes ``descriptions/`` (see :class:`Descriptions`), ``coverage.csv`` (per layer), ``methods.csv``
    (description vs baselines), ``best.csv`` (best described neurons with contexts), ``agreement.csv``
    (P@k against Probeless / Linear per UPOS tag, when the data has ``upos``), ``effects.csv`` (the
    ``effects`` best described neurons ablated; needs ``model``) and ``summary.json`` (timings and options).
    ``options`` go to :func:`describe`.
    """
    from ..descriptions import description_effects

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    desc = describe(acts, corpus, sources=sources, seed=seed, progress=progress, **options)
    timings["describe_s"] = time.perf_counter() - t0
    desc.save(out / "descriptions")
    desc.coverage("layer").to_csv(out / "coverage.csv", index=False)
    desc.compare_methods().to_csv(out / "methods.csv", index=False)
    best_described(desc, acts).to_csv(out / "best.csv", index=False)
    notes = []
    if agreement and "upos" in acts.attributes:
        counts = Counter(v for v in acts.attributes["upos"] if v is not None)
        if max(counts.values(), default=0) >= 50:
            t0 = time.perf_counter()
            description_agreement(desc, acts, seed=seed).to_csv(out / "agreement.csv", index=False)
            timings["agreement_s"] = time.perf_counter() - t0
        else:
            notes.append("agreement with the rankers skipped: no upos tag has 50 words")
            print(f"[describe] {notes[-1]}")
    if effects and model is not None:
        top = best_described(desc, acts, n=effects, per_layer=False)["neuron"]
        description_effects(model, corpus, desc, list(top), batch_size=batch_size).to_csv(out / "effects.csv",
                                                                                         index=False)
    info = dict(summary or {}, n_sentences=len(corpus), n_words=corpus.n_words, n_neurons=acts.n_neurons,
                n_concepts=len(desc.concepts), timings=timings, options=desc.meta, notes=notes,
                torch_threads=torch.get_num_threads())
    (out / "summary.json").write_text(json.dumps(info, indent=1, default=str))
    return desc
