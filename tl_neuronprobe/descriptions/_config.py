"""``DescribeConfig``: every choice :func:`~tl_neuronprobe.describe` makes, as one frozen, JSON-able config.

Not for data: the activations, the corpus, a ready concept vocabulary and discovered concepts are arguments of
``describe``; where the work runs (``device``) and progress bars are call options too.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from ..core.config import Config
from ._compose import OPS

__all__ = ["DescribeConfig", "Search"]

ENDS = ("top", "bottom")
THRESHOLDS = ("adaptive", "quantile")


@dataclasses.dataclass(frozen=True)
class Search(Config):
    """How a neuron's best concept is refined and grown into a formula of concepts.

    Parameters
    ----------
    max_length : int
        Longest formula, in concepts (``1``: single concepts only).
    beam : int
        Formulas kept per step of the beam search.
    min_gain : float
        Fit IoU a longer formula must gain over the shorter one to replace it.
    ops : tuple of str
        Operators a formula may use, among ``"AND"``, ``"OR"``, ``"AND NOT"``.
    n_candidates : int
        Best-associated concepts per neuron whose firing threshold is refined before the best is picked.
    threshold : str
        The firing threshold each description is fitted and scored at: ``"adaptive"`` (refined: the threshold
        that best fits the neuron's best significant concept, else the config's ``quantile`` cut) or
        ``"quantile"`` (the top ``DescribeConfig.quantile`` of the fit words, for every neuron: one activation
        *level*; ``quantile=0.01`` describes what the neuron's top 1% of words share).
    levels : tuple of float
        Activation levels described beside the main one, each on its own (the top ``q`` of each neuron's fit
        words, as ``threshold="quantile"`` does): the result's ``levels`` holds a :class:`Descriptions` per level,
        and each neuron's ``top_description`` is its description at the highest level where it has one, so a
        neuron is described by what its strongest activations share first. ``()`` describes the main level only.

    Examples
    --------
    >>> from tl_neuronprobe.descriptions import Search
    >>> Search(max_length=1).to_dict()["max_length"]
    1
    """

    max_length: int = 3
    beam: int = 5
    min_gain: float = 0.02
    ops: "tuple[str, ...]" = OPS
    n_candidates: int = 5
    threshold: str = "adaptive"
    levels: "tuple[float, ...]" = (0.01,)

    def validate(self) -> None:
        if self.threshold not in THRESHOLDS:
            raise ValueError(f"threshold must be one of {THRESHOLDS}, got {self.threshold!r}")
        bad = [q for q in self.levels if not 0.0 < float(q) < 0.5]
        if bad:
            raise ValueError(f"levels are quantiles in (0, 0.5), got {bad}")
        if len(set(map(float, self.levels))) != len(self.levels):
            raise ValueError(f"levels repeat a value: {self.levels}")
        for name in ("max_length", "beam", "n_candidates"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        unknown = [op for op in self.ops if op not in OPS]
        if unknown:
            raise ValueError(f"ops {unknown} are not among {OPS}")


@dataclasses.dataclass(frozen=True)
class DescribeConfig(Config):
    """What :func:`~tl_neuronprobe.describe` uses: concept sources, significance, the formula search, the split.

    The same config on the same activations gives the same descriptions.

    Parameters
    ----------
    sources : str or tuple of str
        Concept sources (see :func:`~tl_neuronprobe.descriptions.build_concepts`): ``"auto"`` or some of
        ``"annotations"``, ``"surface"``, ``"context"``, ``"words"`` (the ``word_lists``).
    word_lists : dict of str to tuple of str, optional
        User concepts: a name and the words it holds.
    min_support : int
        Words a concept must cover to enter the vocabulary.
    max_concepts : int or None
        At most this many concepts (the most frequent); None keeps all.
    quantile : float
        A neuron fires on its top ``quantile`` of words (the association's mask; with
        ``search=Search(threshold="quantile")`` also the level every description is fitted and scored at).
    alpha : float
        False discovery rate of the Benjamini-Hochberg correction (within-sentence shuffle null).
    min_iou : float
        Fit IoU a significant concept must reach for the neuron to be described.
    search : Search
        The threshold refinement and the formula beam search.
    ends : tuple of str
        Ends of each neuron's activations described: ``"top"``, ``"bottom"``.
    test_size : float
        Share of sentences held out for scoring (fit on the rest).
    seed : int
        The held-out split and the random-concept baseline.
    chunk_neurons : int
        Neurons associated with all concepts at once (memory, not results).

    Examples
    --------
    >>> from tl_neuronprobe.descriptions import DescribeConfig, Search
    >>> config = DescribeConfig(sources=["surface"], search=Search(max_length=1))
    >>> config.sources, config.search.max_length
    (('surface',), 1)
    """

    sources: "str | tuple[str, ...]" = "auto"
    word_lists: "Mapping[str, tuple[str, ...]] | None" = None
    min_support: int = 5
    max_concepts: "int | None" = 3000
    quantile: float = 0.05
    alpha: float = 0.01
    min_iou: float = 0.04
    search: Search = dataclasses.field(default_factory=Search)
    ends: "tuple[str, ...]" = ("top",)
    test_size: float = 0.3
    seed: int = 0
    chunk_neurons: int = 512

    def __post_init__(self) -> None:
        if self.word_lists is not None:  # a plain dict of tuples: compares by value, writes as JSON
            object.__setattr__(self, "word_lists", {str(k): tuple(str(w) for w in v)
                                                    for k, v in dict(self.word_lists).items()})
        if isinstance(self.sources, str) and self.sources != "auto":
            object.__setattr__(self, "sources", (self.sources,))
        if isinstance(self.ends, str):
            object.__setattr__(self, "ends", (self.ends,))
        super().__post_init__()

    def validate(self) -> None:
        if not isinstance(self.search, Search):
            raise ValueError(f"search must be a Search, got {type(self.search).__name__}")
        if not 0 < self.quantile < 1:
            raise ValueError(f"quantile must be in (0, 1), got {self.quantile}")
        if not 0 < self.alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {self.alpha}")
        if not 0 < self.test_size < 1:
            raise ValueError(f"test_size must be in (0, 1), got {self.test_size}")
        if not self.ends or any(e not in ENDS for e in self.ends):
            raise ValueError(f"ends must be some of {ENDS}, got {self.ends!r}")
        if int(self.min_support) < 1:
            raise ValueError(f"min_support must be at least 1, got {self.min_support}")
        if self.max_concepts is not None and int(self.max_concepts) < 1:
            raise ValueError(f"max_concepts must be at least 1 or None, got {self.max_concepts}")
        if int(self.chunk_neurons) < 1:
            raise ValueError(f"chunk_neurons must be at least 1, got {self.chunk_neurons}")

    def options(self) -> dict[str, Any]:
        """The flat settings a :class:`Descriptions` records in its ``meta`` (as before configs)."""
        s = self.search
        return dict(alpha=self.alpha, min_iou=self.min_iou, quantile=self.quantile, threshold=s.threshold,
                    max_length=s.max_length, beam=s.beam, min_gain=s.min_gain, ops=list(s.ops),
                    test_size=self.test_size, seed=self.seed, ends=list(self.ends), min_support=self.min_support,
                    max_concepts=self.max_concepts)
