"""Stage 1 of the used evaluation: its config (:class:`UsedConfig`) and the inputs resolved into neuron orders.

Not for running anything on the model: :func:`resolve` only checks the inputs and reads the rankings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..core.adapter import ModelAdapter
from ..core.neurons import Neuron, check_site
from ..data.corpus import Corpus
from ..core.config import Config
from ..interventions import EDITS, Edit, SetValues, Translate
from ..interventions.readouts import Readout, ReadoutSpec
from ..interventions.sweep import STRATEGIES
from ..rankers import Linear as _Linear
from . import _rankings

__all__ = ["UsedConfig", "Baselines", "UsedFit", "UsedBatching", "Resolved", "resolve", "held_out"]

#: the rankers Antverg & Belinkov (2022) fit, with their published settings (see :meth:`UsedConfig.antverg`)
ANTVERG_RANKERS: dict[str, dict[str, Any]] = {
    "probeless": {"pair_weight": "uniform"}, "linear": dict(_Linear.PRESETS["antverg"]),
    "gaussian": {"estimate": "published", "min_gain": None, "prior_mix": 0.0, "cv": None},
}


def _count(owner: Config, minimum: int, *names: str) -> None:
    for name in names:
        value = getattr(owner, name)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            raise ValueError(f"{type(owner).__name__}.{name} must be an integer >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class Baselines(Config):
    """The baselines beside each ranking's top-k: its ``bottom`` k (the last k of the ranking) and ``n_random``
    seeded draws of k random neurons of the same site and layers (0: none).

    Examples
    --------
    >>> from tl_neuronprobe.evaluation.used import Baselines
    >>> Baselines(n_random=0).to_dict()
    {'type': 'Baselines', 'bottom': True, 'n_random': 0}
    """

    bottom: bool = True
    n_random: int = 3

    def validate(self) -> None:
        _count(self, 0, "n_random")


@dataclass(frozen=True)
class UsedFit(Config):
    """What the used evaluation fits on the fit corpus: word activations (sub-tokens reduced by
    ``aggregation``) for class means and donors, and rankings given by ranker name, fitted at ``site`` and
    ``layer`` (which also say what rankings given as column indices index) with ``ranker_params[name]`` as
    their constructor parameters.

    Examples
    --------
    >>> from tl_neuronprobe.evaluation.used import UsedFit
    >>> UsedFit(layer=1).site
    'mlp.post'
    """

    site: str = "mlp.post"
    layer: "int | None" = None
    aggregation: str = "last"
    #: constructor parameters for rankings given by name, by ranker name (``{"probeless": {"pair_weight": ...}}``)
    ranker_params: "dict[str, dict[str, Any]] | None" = None

    def validate(self) -> None:
        check_site(self.site)
        if self.layer is not None:
            _count(self, 0, "layer")
        if self.aggregation not in ("first", "last", "mean"):
            raise ValueError(f"UsedFit.aggregation must be 'first', 'last' or 'mean', got {self.aggregation!r}")


@dataclass(frozen=True)
class UsedBatching(Config):
    """How the sweep runs (not what it computes): ``batch_size`` sentences per batch, at most ``max_tokens``
    tokens per batched forward pass, and the ``strategy`` (``auto``, ``batched``, ``cached`` or ``naive``; see
    :mod:`tl_neuronprobe.interventions.sweep`)."""

    batch_size: int = 32
    max_tokens: int = 16384
    strategy: str = "auto"

    def validate(self) -> None:
        _count(self, 1, "batch_size", "max_tokens")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"UsedBatching.strategy must be one of {STRATEGIES}, got {self.strategy!r}")


@dataclass(frozen=True)
class UsedConfig(Config):
    """What :func:`~tl_neuronprobe.evaluate_used` does: the edit, the readout, where and how many neurons, the
    baselines and the statistics.

    Parameters
    ----------
    edit : Edit
        :class:`~tl_neuronprobe.interventions.Translate` (default, ``alpha=1.0``),
        :class:`~tl_neuronprobe.interventions.Zero`, :class:`~tl_neuronprobe.interventions.Mean`,
        :class:`~tl_neuronprobe.interventions.Resample` or :class:`~tl_neuronprobe.interventions.SetValues`
        (one number). Class means and donors come from the fit corpus; the next class follows the sorted class
        order.
    readout : Identity, Agreement, Divergence, EmbeddingDistance, callable or None
        What measures the effect; a callable ``metric(clean_logits, edited_logits)`` (see
        :class:`~tl_neuronprobe.interventions.readouts.MetricReadout`); None: chosen from the clean model's
        behaviour (identity if it predicts its input, else agreement for a decoder with readable verbs, else
        divergence).
    positions : {"attribute", "all"}
        Edit every sub-token of every word carrying the attribute, or every token (not with ``Translate``).
    ks : tuple of int
        How many neurons of each ranking to edit.
    baselines : Baselines
        Bottom-k and random-k.
    n_bootstrap, ci : int, float
        Sentence-bootstrap resamples and interval level (0 resamples: the interval is the point).
    seed : int
        Random draws, donors, bootstrap and rankers fitted by name.
    n_sentences : int or None
        Evaluate at most this many sentences (the first ones).
    min_forms : int
        Drop class values with fewer distinct word forms (in the fit or the evaluated corpus; a warning names
        them).
    fit : UsedFit
        Word activations of the fit corpus (``aggregation``) and rankers named by name (``site``, ``layer``,
        ``ranker_params``).
    batching : UsedBatching
        Batch size, tokens per pass and sweep strategy (the numbers do not depend on them).

    Examples
    --------
    >>> from tl_neuronprobe.evaluation.used import UsedConfig
    >>> from tl_neuronprobe.interventions import Zero
    >>> config = UsedConfig(edit=Zero(), ks=[1, 2])
    >>> config.ks, config.to_dict()["edit"]
    ((1, 2), {'type': 'Zero'})
    >>> UsedConfig.antverg().edit
    Translate(alpha='scaled', beta=8.0)
    """

    edit: Edit = Translate()
    readout: "ReadoutSpec | Readout | Callable | None" = None
    positions: str = "attribute"
    ks: "tuple[int, ...]" = (1, 2, 5, 10, 20, 50)
    baselines: Baselines = Baselines()
    n_bootstrap: int = 1000
    ci: float = 0.95
    seed: int = 0
    n_sentences: "int | None" = None
    min_forms: int = 0
    fit: UsedFit = UsedFit()
    batching: UsedBatching = UsedBatching()

    def __post_init__(self) -> None:
        if isinstance(self.ks, (int, np.integer)):
            object.__setattr__(self, "ks", (int(self.ks),))
        super().__post_init__()

    def validate(self) -> None:
        if not isinstance(self.edit, Edit):
            raise ValueError(f"UsedConfig.edit must be an edit object, one of {sorted(EDITS)} (e.g. Translate()), "
                             f"got {self.edit!r}")
        if isinstance(self.edit, SetValues) and isinstance(self.edit.values, tuple):
            raise ValueError("UsedConfig.edit=SetValues(values) needs one number: the rankings' neurons differ "
                             "per k")
        if isinstance(self.edit, Translate) and isinstance(self.edit.alpha, tuple):
            raise ValueError("UsedConfig.edit=Translate(alpha=...) needs a number or 'scaled'")
        if not (self.readout is None or isinstance(self.readout, (ReadoutSpec, Readout)) or callable(self.readout)):
            raise ValueError("UsedConfig.readout must be Identity(), Agreement(), Divergence(), EmbeddingDistance(), "
                             f"a callable metric or None (chosen from the model), got {self.readout!r}")
        if self.positions not in ("attribute", "all"):
            raise ValueError(f"UsedConfig.positions must be 'attribute' or 'all', got {self.positions!r}")
        if self.positions == "all" and self.edit.kind == "shift":
            raise ValueError("translation needs each position's class: use positions='attribute' with Translate")
        if not self.ks or any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1
                              for k in self.ks):
            raise ValueError(f"UsedConfig.ks must be positive integers, got {list(self.ks)}")
        for name, cls in (("baselines", Baselines), ("fit", UsedFit), ("batching", UsedBatching)):
            if not isinstance(getattr(self, name), cls):
                raise ValueError(f"UsedConfig.{name} must be a {cls.__name__}, got {getattr(self, name)!r}")
        _count(self, 0, "n_bootstrap", "seed", "min_forms")
        if not 0 < self.ci < 1:
            raise ValueError(f"UsedConfig.ci must lie in (0, 1), got {self.ci}")
        if self.n_sentences is not None:
            _count(self, 1, "n_sentences")

    @classmethod
    def antverg(cls, **changes: Any) -> "UsedConfig":
        """Antverg & Belinkov (2022)'s setup: scaled translation (beta 8), the mean of a word's sub-tokens, class
        values with fewer than 100 distinct word forms dropped, at most 6,500 evaluated sentences, and rankings
        given by name fitted as published (Probeless's unweighted sum over class pairs, Linear's ``"antverg"``
        preset, the published Gaussian). ``changes`` replace any field (``docs/interventions.md`` says where
        these defaults differ from :class:`UsedConfig`'s and why)."""
        fit = UsedFit(aggregation="mean", ranker_params=ANTVERG_RANKERS)
        if isinstance(changes.get("fit"), UsedFit):
            fit = changes.pop("fit").replace(aggregation="mean", ranker_params=ANTVERG_RANKERS)
        preset = dict(edit=Translate(alpha="scaled", beta=8.0), min_forms=100, n_sentences=6500, fit=fit)
        return cls(**{**preset, **changes})


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


def resolve(model, corpus: Corpus, attribute: str, rankings: Any, config: UsedConfig,
            fit_corpus: Corpus | None = None) -> Resolved:
    """Check the inputs and turn every ranking into a neuron order (ranker names wait for :func:`build_tables`)."""
    adapter = ModelAdapter.wrap(model)
    if len(corpus) == 0:
        raise ValueError("the corpus is empty")
    if attribute not in corpus.attribute_names:
        raise KeyError(f"no word in {corpus.name} has attribute {attribute!r}; attributes: {corpus.attribute_names}")
    ks = sorted(dict.fromkeys(int(k) for k in config.ks))
    fit_corpus = corpus if fit_corpus is None else fit_corpus
    if config.n_sentences is not None and len(corpus) > config.n_sentences:
        corpus = corpus[: config.n_sentences]
    orders, pending = _rankings.to_orders(rankings, adapter, config.fit.site, config.fit.layer, None)
    for name, order in orders.items():
        if order is not None:
            _rankings.check_order(adapter, name, order, max(ks))
    return Resolved(adapter, corpus, fit_corpus, attribute, ks, orders, pending)


def held_out(corpus: Corpus, test: Corpus | None, attribute: str) -> tuple[Corpus, Corpus | None]:
    """``(evaluated corpus, fit corpus)``: with ``test``, rankers and class means come from ``corpus`` and
    ``test`` is evaluated; a test without the attribute, or with a class value ``corpus`` never has, raises."""
    if test is None:
        return corpus, None
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
