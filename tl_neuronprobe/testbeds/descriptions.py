"""A planted testbed for descriptions: activations built from known concepts and formulas, with flipped firing.

Neurons fire on one concept (a range of sparsity, two neurons per concept, 0-30% of the firing flipped), on
AND / OR / AND NOT formulas of two or three concepts, on a context concept ("ADJ after DET"), or on nothing
(noise only). Also the label-free control that describes a neuron by frequency alone. Not a model: the
activations are a matrix over the synthetic corpus (see :meth:`Activations.from_array`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..data.activations import Activations
from ..data.corpus import Corpus
from ..descriptions import build_concepts, evaluate, formula_text, parse_formula
from ..descriptions import Concepts


@dataclass
class PlantedDescriptions:
    """The testbed: activations, corpus, its concepts, the truth per neuron and the clean planted masks."""

    acts: Activations
    corpus: Corpus
    concepts: Concepts
    truth: pd.DataFrame  # neuron, kind, formula, noise, support, gold ("|"-joined concept names)
    masks: np.ndarray    # [n_words, n_neurons] clean planted masks


def _overlaps(concepts: Concepts, mask: np.ndarray) -> np.ndarray:
    """IoU of ``mask`` with every concept."""
    inter = np.asarray(concepts.matrix[mask].sum(0)).ravel()
    sup = concepts.table["support"].to_numpy()
    return inter / np.maximum(sup + mask.sum() - inter, 1)


def _fire(mask: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Activations: ~1 where firing, ~0 elsewhere, after flipping ``noise`` of the firing words off (and as
    many silent words on, so the sparsity stays)."""
    on = mask.copy()
    k = int(round(noise * on.sum()))
    if k:
        on[rng.choice(np.flatnonzero(mask), k, replace=False)] = False
        on[rng.choice(np.flatnonzero(~mask), k, replace=False)] = True
    return np.where(on, 1.0 + 0.2 * rng.standard_normal(len(on)), 0.1 * rng.standard_normal(len(on)))


def _singles(concepts: Concepts, n: int, lo: float, hi: float) -> list[int]:
    frac = concepts.table["support"].to_numpy() / concepts.n_words
    elig = np.flatnonzero((frac >= lo) & (frac <= hi))
    elig = elig[np.argsort(frac[elig], kind="stable")]
    chosen: list[int] = []
    for start in np.linspace(0, len(elig) - 1, n).round().astype(int):  # spread over the sparsity range
        for j in map(int, elig[start:]):
            if j not in chosen and all(_overlaps(concepts, concepts.mask(j))[c] < 0.9 for c in chosen):
                chosen.append(j)
                break
    return chosen


def _formula(concepts: Concepts, ops: tuple[str, ...], rng: np.random.Generator, lo: float, hi: float):
    """A random formula whose mask has support in [lo, hi] and matches no single concept (IoU < 0.8).

    Each next term is drawn among the concepts that overlap the formula so far by 10-90% of their words
    (AND, AND NOT) or by less than 10% (OR), so that every term changes the mask.
    """
    names = concepts.names
    sup = concepts.table["support"].to_numpy()
    elig = np.flatnonzero((sup / concepts.n_words >= 0.01) & (sup / concepts.n_words <= 0.4))
    for _ in range(500):
        first = int(rng.choice(elig))
        terms, mask = ((None, names[first]),), concepts.mask(first)
        for op in ops:
            share = np.asarray(concepts.matrix[mask].sum(0)).ravel() / np.maximum(sup, 1)
            ok = (share >= 0.1) & (share <= 0.9) if op != "OR" else share < 0.1
            ok[[concepts.index(t) for _, t in terms]] = False
            pool = np.intersect1d(np.flatnonzero(ok), elig)
            if len(pool) == 0:
                break
            k = int(rng.choice(pool))
            terms = terms + ((op, names[k]),)
            mask = evaluate(terms, concepts)
        if len(terms) != len(ops) + 1:
            continue
        f = mask.mean()
        if lo <= f <= hi and _overlaps(concepts, mask).max() < 0.8 and _terms_needed(terms, concepts, mask):
            return terms, mask
    raise RuntimeError(f"no formula with operators {ops} found; use a larger corpus")


def _terms_needed(terms, concepts: Concepts, mask: np.ndarray) -> bool:
    """Every prefix differs from the whole (each term changes the mask)."""
    return all((evaluate(terms[:k], concepts) != mask).mean() > 0.002 for k in range(1, len(terms)))


def planted_descriptions(n_sentences: int = 600, seed: int = 0, noises=(0.0, 0.1, 0.2, 0.3), n_single: int = 12,
                         n_per_formula: int = 4, n_noise: int = 20, sparsity=(0.01, 0.3),
                         formula_noise: float = 0.1, min_support: int = 5) -> PlantedDescriptions:
    """Build the testbed over the synthetic corpus (seeded: same seed, same testbed)."""
    rng = np.random.default_rng(seed)
    corpus = Corpus.synthetic(n_sentences, seed=seed)
    concepts = build_concepts(corpus.words, corpus.sentence_ids, corpus.attributes(), min_support=min_support)
    rows, cols = [], []

    def plant(kind, terms, mask, noise):
        cols.append((_fire(mask, noise, rng), mask))
        gold = [name for op, name in terms if op != "AND NOT"]
        rows.append(dict(kind=kind, formula=formula_text(terms), noise=noise, support=int(mask.sum()),
                         gold="|".join(gold)))

    for i, j in enumerate(_singles(concepts, n_single, *sparsity)):
        terms = ((None, concepts.names[j]),)
        for noise in (noises[i % len(noises)], noises[(i + 1) % len(noises)]):
            plant("single", terms, concepts.mask(j), noise)
    for ops in (("AND",), ("OR",), ("AND NOT",), ("AND", "AND NOT"), ("OR", "AND"), ("AND", "OR")):
        for _ in range(n_per_formula):
            terms, mask = _formula(concepts, ops, rng, *sparsity)
            plant("formula" if len(ops) == 1 else "formula3", terms, mask, formula_noise)
    context = parse_formula("upos=ADJ AND prev.upos=DET")
    for noise in (0.0, formula_noise):
        plant("context", context, evaluate(context, concepts), noise)
    for _ in range(n_noise):
        cols.append((0.1 * rng.standard_normal(concepts.n_words), np.zeros(concepts.n_words, bool)))
        rows.append(dict(kind="noise", formula="", noise=1.0, support=0, gold=""))
    X = np.stack([c[0] for c in cols], 1).astype(np.float32)
    acts = Activations.from_array(X, corpus, meta={"testbed": "planted descriptions", "seed": seed})
    truth = pd.DataFrame(rows).assign(neuron=[str(n) for n in acts.neurons])
    return PlantedDescriptions(acts, corpus, concepts, truth, np.stack([c[1] for c in cols], 1))


def recovery(formulas, planted: PlantedDescriptions, min_iou: float = 0.9) -> pd.DataFrame:
    """Per planted neuron: IoU of the description's mask with the clean planted mask, over the whole corpus.

    ``formulas``: per neuron (testbed order), a formula string, or "" for no description. Recovered: IoU >=
    ``min_iou`` (an equivalent concept counts); a noise neuron counts as wrongly described if it has any.
    """
    out = planted.truth.copy()
    ious, described = [], []
    for j, f in enumerate(formulas):
        if not f:
            ious.append(0.0)
            described.append(False)
            continue
        m = evaluate(parse_formula(f), planted.concepts)
        t = planted.masks[:, j]
        union = (m | t).sum()
        ious.append(float((m & t).sum() / union) if union else 0.0)
        described.append(True)
    out["described"], out["mask_iou"] = described, ious
    out["recovered"] = out["described"] & (out["mask_iou"] >= min_iou) & (out["kind"] != "noise")
    return out


def describe_by_frequency(acts: Activations, concepts: Concepts, quantile: float = 0.05) -> list[str]:
    """Label-free control: each neuron gets the concept most frequent among its top-quantile words (raw counts,
    no base rate, no significance)."""
    X = acts.X.float().numpy()
    k = max(1, int(np.ceil(quantile * len(X))))
    out = []
    for j in range(X.shape[1]):
        top = np.argsort(-X[:, j], kind="stable")[:k]
        counts = np.asarray(concepts.matrix[top].sum(0)).ravel()
        out.append(concepts.names[int(np.argmax(counts))])
    return out
