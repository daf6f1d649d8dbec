"""Descriptions at several activation levels read together: a graded simulation of each neuron's activation.

Each level's description (``Search(threshold="quantile")`` at its quantile, or the adaptive one) is a boolean
mask over words; together they split the words into cells (which of the levels' descriptions hold), and a word's
simulated activation is the mean activation of its cell on the fit words. A single description predicts two
values (matching or not); the levels together predict the activation's *level*. Scored on the held-out words like
every other description, beside the length-matched lookup of as many forms as the levels' descriptions have
concepts in all. Not for finding descriptions (:func:`~tl_neuronprobe.describe` does).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd
import torch

from ..data.activations import Activations
from ._compose import evaluate, parse_formula
from ._describe import formula_length
from ._result import Descriptions
from ._score import codes, lookup_top_forms, pearson, sentence_split, top_and_random_corr, two_level_prediction

__all__ = ["level_simulation"]


def _masks(d: Descriptions, fit: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each neuron's description as masks over the fit and the held-out words (top end), and its length."""
    top = d.table[d.table["end"] == "top"].reset_index(drop=True)
    c_fit, c_test = d.concepts.rows(fit), d.concepts.rows(test)
    out_fit = np.zeros((len(fit), len(top)), bool)
    out_test = np.zeros((len(test), len(top)), bool)
    length = np.zeros(len(top), dtype=np.int64)
    cache: dict = {}
    for j, (formula, described) in enumerate(zip(top["formula"], top["described"])):
        if not described:
            continue
        if formula not in cache:
            terms = parse_formula(formula)
            idx = tuple((op, d.concepts.index(name)) for op, name in terms)
            cache[formula] = (evaluate(terms, c_fit), evaluate(terms, c_test), formula_length(idx, d.concepts))
        out_fit[:, j], out_test[:, j], length[j] = cache[formula]
    return out_fit, out_test, length


def level_simulation(levels: "Descriptions | Mapping[str, Descriptions]", acts: Activations) -> pd.DataFrame:
    """The graded simulation of descriptions at several levels of the same activations, on held-out words.

    ``levels``: a name (e.g. ``"0.01"``, ``"adaptive"``) -> the :class:`Descriptions` of ``acts`` at that level,
    all made with the same ``seed`` and ``test_size`` (so the same held-out sentences; checked); or one
    :class:`Descriptions` made with ``Search(levels=...)``: its levels and its main level. Returns one row
    per (neuron, method): ``graded`` (each word's simulated activation is the fit mean of the cell of levels whose
    descriptions it matches) and ``lookup_matched`` (the neuron's m most active fit forms, m = the levels'
    descriptions' total length), with ``simulation_corr`` (all held-out words), ``simulation_top_random`` (each
    neuron's 20 most active held-out sentences and 20 random ones) and ``length``.

    Examples
    --------
    >>> import tl_neuronprobe as tnp
    >>> from tl_neuronprobe.descriptions import DescribeConfig, Search, describe, level_simulation
    >>> corpus = tnp.Corpus.load("synthetic:60")
    >>> acts = tnp.extract(tnp.models.load("planted"), corpus, tnp.ExtractConfig(layers=(1,)), progress=False)
    >>> d = describe(acts, corpus, config=DescribeConfig(search=Search(max_length=1, levels=(0.05, 0.2))))
    >>> list(d.levels), d.meta["level"]
    (['0.05', '0.2'], 'adaptive')
    >>> sorted(set(level_simulation(d, acts)["method"]))
    ['graded', 'lookup_matched']
    """
    if isinstance(levels, Descriptions):
        levels = {**levels.levels, levels.meta.get("level", "main"): levels}
    if not levels:
        raise ValueError("level_simulation needs descriptions at one level or more")
    splits = {(d.meta.get("seed"), d.meta.get("test_size")) for d in levels.values()}
    if len(splits) != 1:
        raise ValueError(f"the levels' descriptions were split differently (seed, test_size): {sorted(splits)}")
    seed, test_size = splits.pop()
    neurons = [list(d.table.loc[d.table["end"] == "top", "neuron"]) for d in levels.values()]
    if any(n != neurons[0] for n in neurons):
        raise ValueError("the levels' descriptions cover different neurons")
    if acts.n_words != next(iter(levels.values())).concepts.n_words:
        raise ValueError(f"the activations have {acts.n_words} words, the descriptions' concepts "
                         f"{next(iter(levels.values())).concepts.n_words}")
    fit, test = sentence_split(acts.sentence_ids, test_size, seed)
    X = acts.X[:, torch.as_tensor(acts.columns(neurons[0]))].float().numpy()
    x_fit, x_test = X[fit], X[test]
    cells_fit = np.zeros((len(fit), X.shape[1]), dtype=np.int64)
    cells_test = np.zeros((len(test), X.shape[1]), dtype=np.int64)
    total = np.zeros(X.shape[1], dtype=np.int64)
    for bit, d in enumerate(levels.values()):
        m_fit, m_test, length = _masks(d, fit, test)
        cells_fit |= m_fit.astype(np.int64) << bit
        cells_test |= m_test.astype(np.int64) << bit
        total += length
    n_cells = 1 << len(levels)
    pred = np.empty_like(x_test, dtype=np.float64)
    for j in range(X.shape[1]):
        sums = np.bincount(cells_fit[:, j], weights=x_fit[:, j], minlength=n_cells)
        counts = np.bincount(cells_fit[:, j], minlength=n_cells)
        means = np.where(counts > 0, sums / np.maximum(counts, 1), x_fit[:, j].mean())
        pred[:, j] = means[cells_test[:, j]]
    forms = codes([w.lower() for w in acts.words])
    matched = np.maximum(total, 1)
    lf, lt = lookup_top_forms(forms, fit, test, x_fit, matched)
    lookup = two_level_prediction(lf, x_fit, lt)
    sentences = np.asarray(acts.sentence_ids)[test]
    rows = []
    for method, p, length in (("graded", pred, total), ("lookup_matched", lookup, matched)):
        rows.append(pd.DataFrame({"neuron": neurons[0], "method": method, "simulation_corr": pearson(p, x_test),
                                  "simulation_top_random": top_and_random_corr(p, x_test, sentences, seed=seed),
                                  "length": length}))
    return pd.concat(rows, ignore_index=True)
