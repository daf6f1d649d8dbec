"""``describe``: concepts -> association -> significant best concept -> formula search -> held-out scores.

The pipeline of the subpackage; each step lives in its own module. Not for loading models or data (see
:func:`~tl_neuronprobe.workflows.describe_job`). Every step after the concept vocabulary and the held-out split is
per neuron (Benjamini-Hochberg runs across concepts within a neuron), so under ``torchrun`` the ranks take
contiguous shares of the neurons and every rank gathers the single-process result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from ..core import distributed
from ..data.activations import Activations
from ..data.corpus import Corpus
from ..core.neurons import Neuron
from ._associate import associate, intersections_at, refine, shortlist, sparse_t
from ._compose import beam_search, evaluate, formula_text, render
from ._concepts import Concepts, build_concepts
from ._config import DescribeConfig
from ._result import NO_DESCRIPTION, Descriptions
from ._score import codes, lookup_top_forms, score_masks, sentence_split, token_lookup


@dataclass
class _Data:
    X: torch.Tensor
    neurons: list[str]
    layers: list[int]
    words: list[str]
    sentence_ids: np.ndarray
    attributes: dict


def _inputs(acts: Activations, corpus: Corpus | None, neurons) -> _Data:
    if not hasattr(acts, "X") or not hasattr(acts, "neurons"):
        raise TypeError(f"describe() needs Activations (or use Activations.from_array), got {type(acts).__name__}")
    cols = np.arange(acts.n_neurons) if neurons is None else acts.columns(neurons)
    X = acts.X[:, torch.as_tensor(cols)] if neurons is not None else acts.X
    words, sid, attrs = acts.words, acts.sentence_ids, acts.attributes
    if corpus is not None:
        if corpus.n_words != acts.n_words:
            raise ValueError(f"the corpus has {corpus.n_words} words but the activations {acts.n_words} rows")
        words, sid, attrs = corpus.words, corpus.sentence_ids, corpus.attributes()
    ns = [acts.neurons[i] for i in cols]
    if not bool(torch.isfinite(X).all()):
        raise ValueError("the activations contain NaN or inf")
    return _Data(X, [str(n) for n in ns], [n.layer for n in ns], list(words), np.asarray(sid), dict(attrs))


def describe(acts: Activations, corpus: Corpus | None = None, neurons: Sequence["Neuron | str"] | None = None,
             config: DescribeConfig | None = None, *, concepts: Concepts | None = None,
             discovered: Concepts | None = None, device: "str | torch.device | None" = None,
             progress: bool = False) -> Descriptions:
    """Describe neurons in words: the best significant concept or formula of concepts, scored on held-out text.

    A neuron is described when at least one concept is significant after Benjamini-Hochberg at ``config.alpha``
    (within-sentence shuffle null) and reaches ``config.min_iou``; otherwise it gets "no description". Formulas
    have up to ``config.search.max_length`` terms. Descriptions are fit on part of the sentences and scored on
    the held-out ``config.test_size`` beside four baselines (the length-matched lookup among them). Under
    ``torchrun`` the ranks describe shares of the neurons and every rank returns the single-process result.

    Parameters
    ----------
    acts : Activations
        Word activations (``tnp.extract``, or ``Activations.from_array`` for activations computed elsewhere).
    corpus : Corpus, optional
        The corpus of ``acts`` (its words and attributes); default: the words and attributes ``acts`` carries.
    neurons : list of Neuron or str, optional
        Describe only these neurons (default: all of ``acts``).
    config : DescribeConfig, optional
        Concept sources, significance, the formula search, the held-out split (default ``DescribeConfig()``).
    concepts : Concepts, optional
        A ready concept vocabulary instead of building one from ``config.sources``.
    discovered : Concepts, optional
        Extra concepts added to the built vocabulary, e.g. from :func:`latent_concepts`.
    device : str or torch.device, optional
        Run the association of all neurons with all concepts there (e.g. ``"cuda"``), chunk by chunk; the
        default runs it on the CPU's cores.
    progress : bool
        Show progress bars.

    Returns
    -------
    Descriptions
        One row per (neuron, end) in ``.table``, held-out scores with baselines in ``.scores``.

    Examples
    --------
    >>> import tl_neuronprobe as tnp
    >>> from tl_neuronprobe.descriptions import DescribeConfig, Search
    >>> corpus = tnp.Corpus.load("synthetic:40")
    >>> acts = tnp.extract(tnp.models.load("planted"), corpus, progress=False)
    >>> desc = tnp.describe(acts, corpus, config=DescribeConfig(search=Search(max_length=1)))
    >>> len(desc.neurons) == acts.n_neurons, list(desc.to_frame().columns[:3])
    (True, ['neuron', 'layer', 'end'])
    """
    config = DescribeConfig() if config is None else config
    if not isinstance(config, DescribeConfig):
        raise TypeError(f"config must be a DescribeConfig, got {type(config).__name__}")
    data = _inputs(acts, corpus, neurons)
    if concepts is None:
        concepts = build_concepts(data.words, data.sentence_ids, data.attributes, config.sources,
                                  config.word_lists, [discovered] if discovered is not None else [],
                                  config.min_support, config.max_concepts)
    elif discovered is not None:
        raise ValueError("give concepts (a ready vocabulary) or discovered (extra concepts), not both")
    elif concepts.n_words != len(data.words):
        raise ValueError(f"concepts cover {concepts.n_words} words, the activations {len(data.words)}")
    ends, seed = config.ends, config.seed
    fit, test = sentence_split(data.sentence_ids, config.test_size, seed)
    random_concepts = np.random.default_rng(seed).integers(0, len(concepts), len(data.neurons))  # a baseline
    distributed.setup()
    mine = distributed.share(len(data.neurons))
    part = _columns(data, mine) if len(mine) else None
    per_end = []
    for end in ends if part is not None else ():
        fitted = _fit_end(part, concepts, fit, end, config, progress and distributed.is_main(), device)
        scores = _held_out(part, concepts, fit, test, fitted, end, random_concepts[mine.start:mine.stop], seed)
        per_end.append(dict(table=fitted["table"], iou=fitted["iou"], q=fitted["q"], scores=scores))
    table, score_table, iou, q = _gather_ends(distributed.gather(per_end if part is not None else None), ends)
    own = score_table[score_table["method"] == "description"].drop(columns=["method"])
    own = own.rename(columns={"iou": "test_iou", "precision": "test_precision", "recall": "test_recall",
                              "f1": "test_f1"})
    table = table.merge(own, on=["neuron", "end"], how="left")
    meta = dict(config.options(), n_fit_words=len(fit), n_test_words=len(test), config=config.to_dict(),
                level=level_name(config))
    at = {name: describe(acts, corpus, neurons, sub, concepts=concepts, device=device, progress=progress)
          for name, sub in _level_configs(config).items()}
    return _with_levels(Descriptions(table, score_table, concepts, iou, q, meta), at)


def _level_configs(config: DescribeConfig) -> dict[str, DescribeConfig]:
    """The config of each level of ``config.search.levels`` other than the main one, strongest first."""
    out = {}
    for level in sorted(set(map(float, config.search.levels))):
        sub = config.replace(quantile=level, search=config.search.replace(threshold="quantile", levels=()))
        if level_name(sub) != level_name(config):
            out[level_name(sub)] = sub
    return out


def level_name(config: DescribeConfig) -> str:
    """The name of the level a config describes at: ``"adaptive"``, or its quantile (``"0.01"``)."""
    return "adaptive" if config.search.threshold == "adaptive" else f"{float(config.quantile):g}"


def _with_levels(main: Descriptions, at: dict) -> Descriptions:
    """``main`` with the levels ``at`` (strongest first) and each neuron's ``top_level`` / ``top_description`` /
    ``top_formula``: its description at the highest level where it has one, else the main level's."""
    main.levels = dict(at)
    t = main.table
    t["level"] = main.meta["level"]
    t["top_level"], t["top_description"], t["top_formula"] = t["level"], t["description"], t["formula"]
    done = np.zeros(len(t), bool)
    for name, d in at.items():  # strongest first; the main level last
        sub = d.table
        take = ~done & sub["described"].to_numpy(bool)
        t.loc[take, "top_level"] = name
        t.loc[take, "top_description"] = sub.loc[take, "description"].to_numpy()
        t.loc[take, "top_formula"] = sub.loc[take, "formula"].to_numpy()
        done |= take
    return main


def formula_length(formula, concepts: Concepts) -> int:
    """A description's length: one per concept of the formula, a word set (family ``set``) counted by its
    members, so "one of {clothes, shirt, pants, wear}" is as long as a lookup of four forms."""
    size = concepts.table["size"].to_numpy() if "size" in concepts.table else None
    total = 0
    for _, c in formula:
        s = size[c] if size is not None else np.nan
        total += int(s) if np.isfinite(s) else 1
    return total


def _columns(data: _Data, cols: range) -> _Data:
    """The neurons ``cols`` (a contiguous range) of ``data``."""
    sl = slice(cols.start, cols.stop)
    return _Data(data.X[:, sl], data.neurons[sl], data.layers[sl], data.words, data.sentence_ids, data.attributes)


def _gather_ends(parts: list, ends: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray, np.ndarray]:
    """The ranks' shares (in rank order; ``None`` for a rank without neurons) as one process makes them: the table
    end by end, the scores end by end and method by method, the first end's IoU and q-values."""
    parts = [p for p in parts if p is not None]
    tables, scores = [], []
    for e, end in enumerate(ends):
        tables.append(pd.concat([p[e]["table"] for p in parts], ignore_index=True))
        methods = range(len(parts[0][e]["scores"]))
        by_method = [p[e]["scores"][m] for m in methods for p in parts]
        scores.append(pd.concat(by_method, ignore_index=True).assign(end=end))
    iou = np.concatenate([p[0]["iou"] for p in parts])
    q = np.concatenate([p[0]["q"] for p in parts])
    return pd.concat(tables, ignore_index=True), pd.concat(scores, ignore_index=True), iou, q


def _fit_end(data: _Data, concepts: Concepts, fit, end: str, config: DescribeConfig, progress: bool,
             device=None) -> dict:
    alpha, min_iou, search = config.alpha, config.min_iou, config.search
    max_length, beam, min_gain, ops, n_candidates = (search.max_length, search.beam, search.min_gain, search.ops,
                                                     search.n_candidates)
    X = data.X[torch.as_tensor(fit)].float()
    C = concepts.rows(fit).matrix
    assoc = associate(X, C, data.sentence_ids[fit], config.quantile, config.chunk_neurons, end, progress,
                      device=device)
    cand = shortlist(assoc, min(n_candidates, len(concepts)))
    ref = refine(X, C, cand, end=end)
    sig = np.take_along_axis(assoc.q, cand, 1) <= alpha
    pick = np.argmax(np.where(sig, ref.best_iou, -1.0), axis=1)
    rows = np.arange(len(cand))
    sign = 1.0 if end == "top" else -1.0
    if search.threshold == "quantile":  # a fixed level: the neuron's top `quantile` of fit words
        thr = sign * np.asarray(assoc.quantile_threshold, dtype=np.float64)
    else:
        thr = np.where(sig.any(1), ref.threshold[rows, pick], sign * assoc.quantile_threshold)
    inter, n_fire = intersections_at(X, C, thr, end=end)
    c = np.asarray(C.sum(0)).ravel().astype(np.float32)
    iou = inter / np.maximum(n_fire[:, None] + c[None] - inter, 1)
    ok = (assoc.q <= alpha) & (iou >= min_iou)
    described = ok.any(1)
    best = np.argmax(np.where(ok, iou, -1.0), axis=1)
    formulas = [((None, int(b)),) for b in best]
    f_iou = iou[rows, best]
    idx = np.flatnonzero(described)
    if max_length > 1 and len(idx):
        fire = (sign * X[:, torch.as_tensor(idx)] > torch.from_numpy(sign * thr[idx]).float()).contiguous()
        found, found_iou = beam_search(C, fire, inter[idx], beam, max_length, min_gain, ops, CT=sparse_t(C))
        for k, i in enumerate(idx):
            formulas[i], f_iou[i] = found[k], found_iou[k]
    table = _table(data, concepts, assoc, ref, cand, iou, inter, n_fire, best, described, formulas, f_iou, thr, end,
                   alpha, len(fit), c)
    return dict(table=table, iou=iou.astype(np.float32), q=assoc.q, thr=thr, formulas=formulas,
                described=described)


def _table(data, concepts, assoc, ref, cand, iou, inter, n_fire, best, described, formulas, f_iou, thr, end, alpha,
           n_fit, c) -> pd.DataFrame:
    names, t = concepts.names, concepts.table
    labels, keys = dict(zip(t["name"], t["label"])), dict(zip(t["name"], t["key"]))
    rows = np.arange(len(best))
    named = [tuple((op, names[c]) for op, c in f) for f in formulas]
    ap = np.where(cand == best[:, None], ref.ap, np.nan)
    ap = np.nanmax(np.where(np.isnan(ap).all(1, keepdims=True), -1, ap), axis=1)
    return pd.DataFrame({
        "neuron": data.neurons, "layer": data.layers, "end": end, "described": described,
        "description": [render(f, labels, keys) if d else NO_DESCRIPTION for f, d in zip(named, described)],
        "formula": [formula_text(f) if d else "" for f, d in zip(named, described)],
        "n_terms": [len(f) if d else 0 for f, d in zip(named, described)],
        "concept": [names[b] for b in best], "family": list(t["family"].to_numpy()[best]),
        "iou": iou[rows, best], "precision": inter[rows, best] / np.maximum(n_fire, 1),
        "recall": inter[rows, best] / np.maximum(c[best], 1),
        "auroc": assoc.auroc[rows, best], "ap": np.where(ap < 0, np.nan, ap), "mean_diff": assoc.mean_diff[rows, best],
        "z": assoc.z[rows, best], "q": assoc.q[rows, best], "n_significant": (assoc.q <= alpha).sum(1),
        "formula_iou": f_iou, "threshold": thr, "fire_rate": n_fire / n_fit})



def _held_out(data: _Data, concepts: Concepts, fit, test, fitted: dict, end: str, random_concepts: np.ndarray,
              seed: int = 0) -> list[pd.DataFrame]:
    """Held-out scores of the descriptions and of the four baselines, one table per method with a row per
    neuron; ``random_concepts``: the random baseline's concept per neuron. Every method's ``length``: concepts
    in the formula (0 for no description), lookup entries for the lookups."""
    sign = 1.0 if end == "top" else -1.0
    x = sign * data.X.float().numpy()
    x_fit, x_test = x[fit], x[test]
    thr = sign * fitted["thr"]
    c_fit, c_test = concepts.rows(fit), concepts.rows(test)
    groups = [codes(data.attributes[a])[test] for a in ("lemma", "upos") if a in data.attributes]
    groups = groups or [codes([w.lower() for w in data.words])[test]]
    names = concepts.names
    cache_fit: dict = {}
    cache_test: dict = {}

    def masks(formulas, described=None):
        out_fit = np.zeros((len(fit), len(formulas)), bool)
        out_test = np.zeros((len(test), len(formulas)), bool)
        for j, f in enumerate(formulas):
            if described is not None and not described[j]:
                continue
            key = tuple((op, names[cc]) for op, cc in f)
            if key not in cache_fit:
                cache_fit[key], cache_test[key] = evaluate(key, c_fit), evaluate(key, c_test)
            out_fit[:, j], out_test[:, j] = cache_fit[key], cache_test[key]
        return out_fit, out_test

    common = dict(neurons=data.neurons, x_fit=x_fit, x_test=x_test, thresholds=thr, groups=groups,
                  sentences=data.sentence_ids[test], seed=seed)
    n = len(data.neurons)
    length = np.where(fitted["described"], [formula_length(f, concepts) for f in fitted["formulas"]], 0)
    m = masks(fitted["formulas"], fitted["described"])
    parts = [score_masks("description", desc_fit=m[0], desc_test=m[1], length=length, **common)]
    frequent = int(np.argmax(c_fit.table["support"].to_numpy()))
    m = masks([((None, frequent),)] * n)
    parts.append(score_masks("most_frequent_concept", desc_fit=m[0], desc_test=m[1], length=np.ones(n), **common))
    m = masks([((None, int(r)),) for r in random_concepts])
    parts.append(score_masks("random_concept", desc_fit=m[0], desc_test=m[1], length=np.ones(n), **common))
    forms = codes([w.lower() for w in data.words])
    lf, lt, pred, entries = token_lookup(forms, fit, test, x_fit, thr)
    parts.append(score_masks("token_lookup", desc_fit=lf, desc_test=lt, pred_test=pred, length=entries, **common))
    matched = np.maximum(length, 1)
    mf, mt = lookup_top_forms(forms, fit, test, x_fit, matched)
    parts.append(score_masks("lookup_matched", desc_fit=mf, desc_test=mt, length=matched, **common))
    return parts

