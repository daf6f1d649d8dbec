"""Neurons beside latents: the demo's SAE (trained on held-out text apart from the demo's own, cached) and the
stage that compares one layer's best neurons with its best latents (encoded accuracy, used effect, description
F1), written under ``units/``.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..core import units
from ..core.adapter import ModelAdapter
from ..data.activations import Activations
from ..data.corpus import Corpus
from ..data.extraction import ExtractConfig, extract
from ..data.treebank import document_of
from ..descriptions import DescribeConfig, Search, describe
from ..evaluation.encoded import EncodedConfig, evaluate_encoded
from ..evaluation.used import UsedConfig, evaluate_used

__all__ = ["demo_sae", "units_stage", "compare_units", "SAE_TRAIN_FROM", "UNITS_KS"]

#: the demo's SAE trains on the shipped slice from the first document boundary at or after this sentence (the demo,
#: and the neurons-versus-latents measurements, read sentences before it)
SAE_TRAIN_FROM = 1000
UNITS_KS = (1, 5, 20)


def _cache_dir() -> Path:
    return Path(os.environ.get("TNP_CACHE", Path.home() / ".cache" / "tl_neuronprobe"))


def _train_part(corpus_spec: str, corpus: Corpus) -> Corpus:
    """What the demo's SAE trains on: the shipped slice past :data:`SAE_TRAIN_FROM` (cut at a document boundary)
    for ``ud-english``; for any other corpus the demo's own sentences (a testbed, not a measurement)."""
    if not corpus_spec.startswith("ud-english"):
        return corpus
    full = Corpus.load("ud-english")
    docs = [document_of(s.id) for s in full.sentences]
    start = SAE_TRAIN_FROM
    while start < len(docs) and docs[start] == docs[start - 1]:
        start += 1
    return full.subset(range(start, len(full)))


def demo_sae(model, corpus_spec: str, corpus: Corpus, layer: int, *, max_steps: int = 1000, seed: int = 0,
             cache_dir: "str | Path | None" = None, progress: bool = False) -> units.Dictionary:
    """The demo's small SAE at ``layer``'s ``mlp.post``: as many latents as neurons, TopK with
    ``k = max(4, width // 48)``, trained (:func:`~tl_neuronprobe.units.train_sae`) on text the demo does not read
    (see :func:`_train_part`), saved in SAELens's layout under ``cache_dir`` (default ``$TNP_CACHE`` or
    ``~/.cache/tl_neuronprobe``) and loaded from there next time (the folder name holds every setting and a
    digest of the model's weights)."""
    from ..data.extraction import model_digest

    adapter = ModelAdapter.wrap(model)
    width = adapter.site_width("mlp.post")
    k = max(4, width // 48)
    short = re.sub(r"\W+", "_", Path(str(adapter.name)).name)[:40]
    spec = re.sub(r"\W+", "_", Path(corpus_spec).name)[:40]
    key = f"{short}-L{layer}-mlp.post-{width}-k{k}-s{max_steps}-seed{seed}-{spec}-{model_digest(adapter.model)[:12]}"
    folder = Path(cache_dir) if cache_dir is not None else _cache_dir() / "sae" / key
    if not (folder / units.CONFIG_FILE).exists():
        _train(model, corpus_spec, corpus, layer, width, k, max_steps, seed, folder, progress)
    d = units.load(folder)  # the same object whether just trained or cached: with the training's figures
    if (folder / "training.json").exists():
        d.meta.update({key: v for key, v in json.loads((folder / "training.json").read_text()).items()
                       if key not in ("path",)})
    return d


def _train(model, corpus_spec, corpus, layer, width, k, max_steps, seed, folder: Path, progress: bool) -> None:
    """Train the demo's SAE and write it to ``folder`` (SAELens's layout, and ``training.json``)."""
    part = _train_part(corpus_spec, corpus)
    X = extract(model, part, ExtractConfig(layers=(layer,), long_sentences="skip"), progress=progress).X
    d = units.train_sae(X, width, f"blocks.{layer}.mlp.hook_post", k=k, max_steps=max_steps, batch_size=512,
                        lr=2e-3, seed=seed, progress=progress)
    d.meta.update(name=f"demo SAE ({part.name}, {part.n_words} words)", trained_on=part.name)
    units.save(d, folder, model_name=str(ModelAdapter.wrap(model).name))
    (folder / "training.json").write_text(json.dumps(d.meta, indent=1, default=str))


def _score_at(encoded, ranking: str, ks: Sequence[int]) -> dict[int, float]:
    t = encoded.table
    t = t[(t["selection"] == "top") & (t["probe"] == t["probe"].iloc[0]) & (t["ranking"] == ranking)]
    return {int(k): float(t[t["k"] == k]["accuracy"].mean()) for k in ks}


def compare_units(encoded: dict, used, descriptions: dict, ks: Sequence[int]) -> pd.DataFrame:
    """One row per (attribute, units, ranking, k): the encoded accuracy of the top-k units (the first probe), the
    used effect of editing them (every metric of the readout, ``used_<metric>``) and the description of the top-k
    units (held-out F1 averaged over them, undescribed counted 0; the share described).

    ``encoded``: ``{(attribute, units): EncodedResult}``; ``used``: ``{attribute: UsedResult}`` whose rankings are
    named ``"<units> <ranker>"``; ``descriptions``: ``{units: Descriptions}``."""
    rows = []
    for (attr, kind), enc in encoded.items():
        ut = used[attr].table if attr in used else None
        table = descriptions[kind].table if kind in descriptions else None
        if table is not None:
            table = table[table["end"] == "top"].set_index("neuron")
        for ranker, order in enc.rankings.items():
            acc = _score_at(enc, ranker, ks)
            for k in ks:
                top = [str(n) for n in order[:k]]
                row: dict[str, Any] = dict(attribute=attr, units=kind, ranking=ranker, k=int(k),
                                           encoded_accuracy=acc.get(int(k), np.nan))
                if ut is not None:
                    sel = ut[(ut["ranking"] == f"{kind} {ranker}") & (ut["selection"] == "top") & (ut["k"] == k)]
                    for metric, value in zip(sel["metric"], sel["value"]):
                        row[f"used_{metric}"] = float(value)
                if table is not None:
                    t = table.reindex(top)
                    described = t["described"].fillna(False).astype(bool)
                    f1 = t["test_f1"].where(described, 0.0).fillna(0.0)
                    row.update(description_f1=float(f1.mean()), described=float(described.mean()))
                rows.append(row)
    return pd.DataFrame(rows)


def units_stage(model, corpus: Corpus, dictionary: units.Dictionary, out_dir: "str | Path", *,
                attributes: Sequence[str] = ("upos", "Number"), rankers: Sequence[str] = ("probeless", "linear"),
                ks: Sequence[int] = UNITS_KS, used: UsedConfig | None = None, used_sentences: int = 48,
                describe_config: DescribeConfig | None = None, progress: bool = False) -> pd.DataFrame:
    """The best k neurons of the dictionary's layer against its best k latents, for each attribute.

    Writes ``units/``-style files under ``out_dir``: ``activations/`` (the latents, for the report's latent pages),
    ``encoded_<attr>_<units>.csv`` (with ``.meta.json``), ``used_<attr>.csv`` (neurons and latents edited in one
    sweep, rankings ``"neurons probeless"``, ``"latents probeless"``, ...), ``describe_<units>/``
    (:class:`~tl_neuronprobe.descriptions.Descriptions`), ``compare.csv`` (:func:`compare_units`),
    ``dictionary.json`` (which dictionary) and ``units_summary.json`` (timings).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    used = used if used is not None else UsedConfig()
    describe_config = describe_config or DescribeConfig(search=Search(max_length=2, levels=()))
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    layer, site = dictionary.layer, dictionary.site
    with units.using(dictionary):
        acts = extract(model, corpus, ExtractConfig(site=("mlp.post", site), layers=(layer,),
                                                    long_sentences="skip"), progress=progress)
        kinds = {"neurons": acts.select(site="mlp.post"), "latents": acts.select(site=site)}
        fewest = min(a.n_neurons for a in kinds.values())
        ks = tuple(k for k in ks if k <= fewest) or (fewest,)
        kinds["latents"].save(out / "activations")
        timings["extract"] = time.perf_counter() - t0
        encoded, used_results, descriptions = {}, {}, {}
        for attr in attributes:
            if attr not in acts.attributes:
                continue
            t1 = time.perf_counter()
            for kind, a in kinds.items():
                enc = evaluate_encoded(a, attr, list(rankers), EncodedConfig(ks=tuple(ks), probes=("logistic",),
                                                                             control=False, seed=used.seed))
                enc.save(out / f"encoded_{attr}_{kind}.csv")
                encoded[(attr, kind)] = enc
            timings[f"encoded_{attr}"] = time.perf_counter() - t1
            t1 = time.perf_counter()
            rankings = {f"{kind} {r}": encoded[(attr, kind)].rankings[r] for kind in kinds for r in rankers}
            res = evaluate_used(model, corpus[:used_sentences], attr, rankings, used.replace(ks=tuple(ks)),
                                progress=progress)
            res.save(out / f"used_{attr}.csv")
            used_results[attr] = res
            timings[f"used_{attr}"] = time.perf_counter() - t1
        t1 = time.perf_counter()
        for kind, a in kinds.items():
            descriptions[kind] = describe(a, corpus, config=describe_config)
            descriptions[kind].save(out / f"describe_{kind}")
        timings["describe"] = time.perf_counter() - t1
    table = compare_units(encoded, used_results, descriptions, ks)
    table.to_csv(out / "compare.csv", index=False)
    info = dict(layer=layer, site=site, kind=dictionary.kind, units=dictionary.n_units, k=dictionary.k,
                activation=dictionary.activation, hook=dictionary.hook, name=dictionary.name,
                path=dictionary.meta.get("path"), **{k: v for k, v in dictionary.meta.items()
                                                    if k in ("fvu", "dead", "l0", "trained_on", "n_rows")})
    (out / "dictionary.json").write_text(json.dumps(info, indent=1, default=str))
    (out / "units_summary.json").write_text(json.dumps({k: round(v, 1) for k, v in timings.items()}, indent=1))
    return table
