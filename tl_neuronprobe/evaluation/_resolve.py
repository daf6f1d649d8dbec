"""Stage 1 of the used evaluation: its settings (and presets) and the inputs resolved into neuron orders.

Not for running anything on the model: :func:`resolve` only checks the inputs and reads the rankings.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ..core.adapter import ModelAdapter
from ..core.neurons import Neuron, check_site
from ..data.corpus import Corpus
from ..interventions.sweep import STRATEGIES
from . import _rankings

__all__ = ["METHODS", "PRESETS", "PRESET_CAPS", "UsedSettings", "Resolved", "resolve", "held_out"]

METHODS = ("translate", "zero", "mean", "resample")

#: Antverg & Belinkov (2022)'s setup: mean of a word's sub-tokens, scaled translation (beta 8), class values with
#: fewer than 100 distinct word forms dropped, at most 6,500 evaluated sentences; rankings given by name are fitted
#: as published (Probeless's unweighted sum over class pairs, Linear's "antverg" preset, the published Gaussian)
PRESETS: dict[str, dict[str, Any]] = {
    "antverg": dict(method="translate", alpha="scaled", beta=8.0, aggregation="mean", min_forms=100,
                    max_sentences=6500,
                    ranker_params={"probeless": {"pair_weight": "uniform"}, "linear": {"preset": "antverg"},
                                   "gaussian": {"estimate": "published", "min_gain": None, "prior_mix": 0.0,
                                                "cv": None}}),
}
#: preset settings that are upper bounds: an explicit smaller value is kept, a larger one contradicts the preset
PRESET_CAPS = ("max_sentences",)


@dataclass
class UsedSettings:
    """The knobs of :func:`evaluate_used` (see there), validated once."""

    method: str = "translate"
    positions: str = "attribute"
    alpha: "float | str" = 1.0
    beta: float = 8.0
    mean_of: str = "dataset"
    resample_from: str = "any"
    random_baseline: bool = True
    n_random: int = 3
    bottom: bool = True
    n_bootstrap: int = 1000
    ci: float = 0.95
    seed: int = 0
    aggregation: str = "last"
    site: str = "mlp.post"
    layer: int | None = None
    neurons: Sequence[Neuron] | None = None
    batch_size: int = 32
    max_tokens: int = 16384
    strategy: str = "auto"
    progress: bool = True
    min_forms: int = 0
    max_sentences: int | None = None
    #: constructor parameters for rankings given by name, by ranker name (``{"probeless": {"pair_weight": ...}}``)
    ranker_params: Mapping[str, Mapping[str, Any]] | None = None

    def with_preset(self, preset: str | None) -> "UsedSettings":
        """These settings under a preset; a setting given explicitly that the preset contradicts raises.

        A cap (:data:`PRESET_CAPS`, e.g. ``max_sentences``) is an upper bound: a smaller value given keeps it.
        """
        if preset is None:
            return self
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {sorted(PRESETS)} or None, got {preset!r}")
        defaults, chosen = UsedSettings(), dict(PRESETS[preset])
        for key, value in PRESETS[preset].items():
            given = getattr(self, key)
            if given == getattr(defaults, key) or given == value:
                continue
            if key in PRESET_CAPS and given is not None and given <= value:
                chosen[key] = given
                continue
            bound = " at most" if key in PRESET_CAPS else ""
            raise ValueError(f"preset {preset!r} sets {key}={value!r}{' (a cap)' if bound else ''}, but "
                             f"{key}={given!r} was given; give{bound} {value!r} or drop one of them")
        return dataclasses.replace(self, **chosen)

    def validate(self) -> None:
        choices = dict(method=METHODS, positions=("attribute", "all"), mean_of=("dataset", "target"),
                       resample_from=("any", "other_class"), strategy=STRATEGIES)
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ValueError(f"{key} must be one of {allowed}, got {getattr(self, key)!r}")
        if self.positions == "all" and self.method == "translate":
            raise ValueError("translation needs each position's class: use positions='attribute' with translate")
        if isinstance(self.alpha, str) and self.alpha != "scaled":
            raise ValueError(f"alpha must be a number or 'scaled', got {self.alpha!r}")
        check_site(self.site)


# ------------------------------------------------------------------------------------------- 1. resolve
@dataclass
class Resolved:
    """The model, the corpora, the ks and the rankings (``orders[name] is None`` until ``pending[name]`` is fit)."""

    adapter: ModelAdapter
    corpus: Corpus
    fit_corpus: Corpus
    attribute: str
    ks: list[int]
    orders: dict[str, list[Neuron] | None]
    pending: dict[str, str]


def _check_ks(ks: "Sequence[int] | int") -> list[int]:
    ks = [int(ks)] if isinstance(ks, (int, np.integer)) else [int(k) for k in ks]
    if not ks or any(k < 1 for k in ks):
        raise ValueError(f"ks must be positive integers, got {ks}")
    return sorted(dict.fromkeys(ks))


def resolve(model, corpus: Corpus, attribute: str, rankings: Any, ks: "Sequence[int] | int",
            settings: UsedSettings, fit_corpus: Corpus | None = None) -> Resolved:
    """Check the inputs and turn every ranking into a neuron order (ranker names wait for :func:`build_tables`)."""
    adapter = ModelAdapter.wrap(model)
    if len(corpus) == 0:
        raise ValueError("the corpus is empty")
    if attribute not in corpus.attribute_names:
        raise KeyError(f"no word in {corpus.name} has attribute {attribute!r}; attributes: {corpus.attribute_names}")
    ks = _check_ks(ks)
    fit_corpus = corpus if fit_corpus is None else fit_corpus
    if settings.max_sentences is not None and len(corpus) > settings.max_sentences:
        corpus = corpus[: settings.max_sentences]
    orders, pending = _rankings.to_orders(rankings, adapter, settings.site, settings.layer, settings.neurons)
    for name, order in orders.items():
        if order is not None:
            _rankings.check_order(adapter, name, order, max(ks))
    return Resolved(adapter, corpus, fit_corpus, attribute, ks, orders, pending)




def held_out(corpus: Corpus, test: Corpus | None, fit_corpus: Corpus | None, attribute: str
             ) -> tuple[Corpus, Corpus | None]:
    """``(evaluated corpus, fit corpus)``: with ``test``, rankers and class means come from ``corpus`` and
    ``test`` is evaluated; a test without the attribute, or with a class value ``corpus`` never has, raises."""
    if test is None:
        return corpus, fit_corpus
    if fit_corpus is not None:
        raise ValueError("give test= (fit on the corpus, evaluate the test) or fit_corpus= (fit on it, evaluate "
                         "the corpus), not both")
    if not isinstance(test, Corpus):
        raise TypeError(f"test= takes a Corpus (e.g. Corpus.from_conllu of the test treebank), got "
                        f"{type(test).__name__}")
    if attribute not in test.attribute_names:
        raise KeyError(f"the test corpus {test.name} has no attribute {attribute!r}; attributes: "
                       f"{test.attribute_names}")
    if attribute not in corpus.attribute_names:
        raise KeyError(f"the training corpus {corpus.name} has no attribute {attribute!r}; attributes: "
                       f"{corpus.attribute_names}")
    seen = {v for v in corpus.attribute(attribute) if v is not None}
    unseen: dict[str, int] = {}
    for v in test.attribute(attribute):
        if v is not None and v not in seen:
            unseen[v] = unseen.get(v, 0) + 1
    if unseen:
        raise ValueError(f"the test corpus {test.name} has {attribute} values never seen in training "
                         f"({corpus.name}): " + ", ".join(f"{v} ({n} words)" for v, n in sorted(unseen.items()))
                         + f"; training values: {sorted(seen)}")
    return test, corpus
