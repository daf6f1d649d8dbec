"""Stage 2 of the used evaluation: labels, tokens and fit-corpus activations, and the batches built from them.

Not for choosing neurons (:func:`~tl_neuronprobe.evaluation.used.plan`) nor for running edits
(:mod:`tl_neuronprobe.interventions.sweep`). Class means come from :func:`tl_neuronprobe.interventions.class_means`
only.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .. import interventions as iv
from ..core.adapter import ModelAdapter, TokenizedSentence
from ..core.neurons import Neuron
from ..data.corpus import Corpus
from ..interventions import Mean, Resample, SetValues, Translate
from ..interventions.sweep import Prepared
from . import _rankings
from ._resolve import Resolved, UsedConfig

__all__ = ["Tables", "build_tables", "Preparer", "sentence_batches"]


# ------------------------------------------------------------------------------------------- 2. tables
@dataclass
class Tables:
    """Per evaluated sentence its tokens and class labels; the fit corpus's word activations ``X`` (rows: words
    with a kept class, labels ``y``) and their ``columns`` lookup; donors for resampling."""

    classes: list[str]
    labels: list[np.ndarray]
    tokenized: list[TokenizedSentence]
    too_long: list[int]
    dropped: list[str]
    X: torch.Tensor | None = None
    y: np.ndarray | None = None
    groups: np.ndarray | None = None
    columns: Any = None
    donor_of_word: np.ndarray | None = None

    @property
    def carries(self) -> list[np.ndarray]:
        return [lab >= 0 for lab in self.labels]


def _distinct_forms(corpus: Corpus, attribute: str) -> dict[str, set]:
    forms: dict[str, set] = {}
    for s in corpus.sentences:
        for w, v in zip(s.words, s.attributes.get(attribute, [None] * len(s))):
            if v is not None:
                forms.setdefault(v, set()).add(w.lower())
    return forms


def _kept_classes(resolved: Resolved, min_forms: int) -> tuple[list[str], list[str]]:
    """Sorted class values of the fit corpus, minus those with fewer than ``min_forms`` distinct forms in the fit
    or the evaluated corpus (a warning names them)."""
    attribute, fit = resolved.attribute, resolved.fit_corpus
    classes = sorted({v for v in fit.attribute(attribute) if v is not None}) if attribute in fit.attribute_names \
        else []
    if min_forms <= 0:
        return classes, []
    counts = [_distinct_forms(c, attribute) for c in (fit, resolved.corpus)]
    dropped = [c for c in classes if min(len(f.get(c, ())) for f in counts) < min_forms]
    if dropped:
        detail = ", ".join(f"{c} ({min(len(f.get(c, ())) for f in counts)})" for c in dropped)
        warnings.warn(f"{attribute}: dropped class values with fewer than {min_forms} distinct word forms: {detail}",
                      stacklevel=3)
    kept = [c for c in classes if c not in dropped]
    if dropped and len(kept) < 2:
        raise ValueError(f"{attribute}: after dropping class values with fewer than {min_forms} distinct word forms "
                         f"({', '.join(dropped)}), {len(kept)} class value(s) remain; an intervention needs two. "
                         "Use a larger corpus or a smaller min_forms")
    return kept, dropped


def _fit_activations(resolved: Resolved, config: UsedConfig, classes: list[str], progress: bool):
    """Word activations of the fit corpus at every site and layer the rankings touch (kept classes only)."""
    from ..data.extraction import ExtractConfig, extract

    blocks = {(n.site, n.layer) for o in resolved.orders.values() if o for n in o}
    if resolved.pending:
        blocks.add((config.fit.site, int(config.fit.layer)))
    extract_config = ExtractConfig(site=tuple(sorted({s for s, _ in blocks})),
                                   layers=tuple(sorted({la for _, la in blocks})),
                                   aggregation=config.fit.aggregation, batch_size=max(config.batching.batch_size, 32))
    acts = extract(resolved.adapter, resolved.fit_corpus, extract_config, device=None, progress=progress)
    X, y, found, idx = acts.dataset(resolved.attribute, return_index=True)
    keep = np.isin(np.asarray(found)[y.numpy()], classes)
    lookup = {c: i for i, c in enumerate(classes)}
    y = np.asarray([lookup[found[j]] for j in y.numpy()[keep]], dtype=np.int64)
    return X[torch.as_tensor(keep)] if not keep.all() else X, y, acts.sentence_ids[idx][keep], acts.columns


def _sentence_labels(corpus: Corpus, attribute: str, classes: list[str]) -> list[np.ndarray]:
    lookup = {c: i for i, c in enumerate(classes)}
    return [np.asarray([lookup.get(v, -1) if v is not None else -1
                        for v in s.attributes.get(attribute, [None] * len(s))], dtype=np.int64)
            for s in corpus.sentences]


def _donors(labels: list[np.ndarray], y: np.ndarray, resample_from: str, seed: int) -> np.ndarray:
    """Per word of the evaluated corpus (flattened), the fit-corpus row it takes its values from (-1: none)."""
    rng = np.random.default_rng(seed)
    donor = np.full(sum(len(lab) for lab in labels), -1, dtype=np.int64)
    offset = 0
    for lab in labels:
        for w in np.flatnonzero(lab >= 0):
            pool = np.flatnonzero(y != lab[w]) if resample_from == "other_class" else np.arange(len(y))
            donor[offset + w] = pool[rng.integers(len(pool))] if len(pool) else -1
        offset += len(lab)
    return donor


def build_tables(resolved: Resolved, config: UsedConfig, progress: bool = False) -> Tables:
    """Tokens and labels of the evaluated corpus; fit-corpus activations where an edit or a ranker needs them.

    Ranker names among the rankings are fitted here (on the fit corpus's words) and their orders filled in.
    """
    adapter, attribute, edit = resolved.adapter, resolved.attribute, config.edit
    classes, dropped = _kept_classes(resolved, config.min_forms)
    tables = Tables(classes, [], [], [], dropped)
    if edit.needs_fit or resolved.pending:
        tables.X, tables.y, tables.groups, tables.columns = _fit_activations(resolved, config, classes, progress)
        _fit_pending(resolved, tables, config)
    if len(classes) < 2 and edit.needs_fit:
        raise ValueError(f"attribute {attribute!r} has fewer than 2 classes in the fit corpus ({classes})")
    tables.tokenized, tables.too_long = adapter.tokenize_checked(resolved.corpus.sentences, long_sentences="skip")
    if tables.too_long:
        warnings.warn(f"{len(tables.too_long)} sentences are longer than the context ({adapter.n_ctx}) and are "
                      "skipped", stacklevel=3)
    tables.labels = _sentence_labels(resolved.corpus, attribute, classes)
    if isinstance(edit, Resample):
        tables.donor_of_word = _donors(tables.labels, tables.y, edit.pool, config.seed)
    return tables


def _fit_pending(resolved: Resolved, tables: Tables, config: UsedConfig) -> None:
    adapter, layer, site = resolved.adapter, config.fit.layer, config.fit.site
    for name, ranker_name in resolved.pending.items():
        cols = tables.columns([Neuron(int(layer), j, site) for j in range(adapter.site_width(site))])
        fitted = _rankings.fit_ranker(ranker_name, tables.X[:, torch.as_tensor(cols)].numpy(), tables.y,
                                      tables.groups, config.seed, config.fit.ranker_params)
        resolved.orders[name] = _rankings.columns_to_neurons(fitted.order_, site, layer, adapter, name)
        _rankings.check_order(adapter, name, resolved.orders[name], max(resolved.ks))


# ------------------------------------------------------------------------------------------- 4. sweep inputs
class Preparer:
    """Builds each sentence batch's :class:`Prepared` (tokens, masks, edit values over ``neurons``)."""

    def __init__(self, adapter: ModelAdapter, tables: Tables, neurons: list[Neuron], config: UsedConfig):
        self.adapter, self.tables, self.edit, self.positions = adapter, tables, config.edit, config.positions
        self.offsets = np.concatenate([[0], np.cumsum([len(lab) for lab in tables.labels])])
        self.table = self.mu = self.XU = self.donor = None
        dev, edit = adapter.device, config.edit
        if isinstance(edit, SetValues):
            self.mu = torch.full((len(neurons),), float(edit.values), device=dev)
        if tables.X is None:
            return
        XU = tables.X[:, torch.as_tensor(tables.columns(neurons))].float()
        if isinstance(edit, (Translate, Mean)):
            means = iv.class_means(XU, torch.as_tensor(tables.y), len(tables.classes))
            nxt = torch.arange(1, len(tables.classes) + 1) % len(tables.classes)  # the next class, cyclic
            if isinstance(edit, Translate):
                self.table = (means[nxt] - means).to(dev)
            else:
                self.table = means[nxt].to(dev) if edit.of == "target" else None
                self.mu = XU.mean(0).to(dev)
        self.XU = XU.to(dev)
        if tables.donor_of_word is not None:
            self.donor = torch.as_tensor(tables.donor_of_word, device=dev)

    def __call__(self, sent_idx: list[int]) -> Prepared:
        batch = self.adapter.collate([self.tables.tokenized[i] for i in sent_idx])
        lab = iv.token_labels(batch.word_of_token, [self.tables.labels[i] for i in sent_idx])
        word_mask = lab >= 0
        mask = word_mask if self.positions == "attribute" else batch.attention_mask.bool()
        values, edit = None, self.edit
        if isinstance(edit, Translate):
            values = self.table[lab.clamp(min=0)] * word_mask[..., None].float()
        elif isinstance(edit, Mean):
            values = self.table[lab.clamp(min=0)] if edit.of == "target" else self.mu
        elif isinstance(edit, SetValues):
            values = self.mu
        elif isinstance(edit, Resample):
            word = torch.as_tensor(self.offsets[sent_idx], device=self.adapter.device)[:, None] \
                + batch.word_of_token.clamp(min=0)
            donor = torch.where(batch.word_of_token >= 0, self.donor[word], torch.full_like(word, -1))
            values = self.XU[donor.clamp(min=0)] * (donor >= 0)[..., None].float()
            mask = mask & (donor >= 0)
        return Prepared(batch, word_mask, mask, values)


def sentence_batches(tables: Tables, corpus: Corpus, positions: str, batch_size: int) -> list[list[int]]:
    """Evaluated sentences (within the context, with an attribute word unless ``positions='all'``), batched by
    length."""
    skip = set(tables.too_long)
    wanted = [i for i, c in enumerate(tables.carries) if i not in skip and (positions == "all" or c.any())]
    if not wanted:
        raise ValueError(f"no sentence of {corpus.name} has a word with a known class of the attribute")
    by_length = sorted(wanted, key=lambda i: len(tables.tokenized[i]))
    return [by_length[i:i + batch_size] for i in range(0, len(by_length), batch_size)]


