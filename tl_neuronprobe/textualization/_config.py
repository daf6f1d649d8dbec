"""What a textualization run is set to: :class:`TextualizeConfig` (the shared settings) and one sub-config per
optimizer (:class:`Gumbel`, :class:`Dense`, :class:`Discrete`, :class:`CorpusSearch`), each holding only its own
knobs, plus :class:`WordsNeededConfig`. Validated on construction; no optimization happens here."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Sequence

from ..core.config import Config
from ._corpus import DEFAULT_CORPUS
from ._discrete import SELECTIONS, fluency_weights
from ._gumbel import SCHEDULES, resolve_schedule
from ._vocab import TextualizeError, VocabSpec

__all__ = ["CorpusSearch", "Dense", "Discrete", "Gumbel", "TextualizeConfig", "WordsNeededConfig"]

#: autocast dtypes ``TextualizeConfig.dtype`` accepts
DTYPES = ("auto", "float32", "bfloat16", "float16")
#: numbers of neurons :func:`words_needed` maximizes jointly, by default
KS = (1, 2, 5, 10, 20, 50, 100)


def _at_least(owner: Config, minimum: int, *names: str) -> None:
    for name in names:
        value = getattr(owner, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise TextualizeError(f"{type(owner).__name__}.{name} must be an integer >= {minimum}, got {value!r}")


def _positive(owner: Config, *names: str) -> None:
    for name in names:
        value = getattr(owner, name)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
            raise TextualizeError(f"{type(owner).__name__}.{name} must be a number > 0, got {value!r}")


@dataclasses.dataclass(frozen=True)
class Gumbel(Config):
    """Gumbel-softmax relaxation (Poerner et al. 2018): free logits per position, mixed into token embeddings.

    Parameters
    ----------
    max_steps : int
        Adam steps.
    restarts : int
        Independent rows per neuron (the best one is kept).
    lr : float
        Adam learning rate on the logits.
    samples : int
        Gumbel samples per step.
    schedule : str
        ``"anneal"`` (geometric from ``temperature[0]`` to ``temperature[1]`` over the run) or a published
        temperature schedule, ``"poerner"`` or ``"poerner-bert"`` (:meth:`from_schedule` also sets the published
        samples, lr and steps).
    temperature : tuple of float
        ``(start, end)`` of the ``"anneal"`` schedule.

    Examples
    --------
    >>> from tl_neuronprobe.textualization import Gumbel
    >>> Gumbel(max_steps=3).temperatures()
    [2.0, 0.447..., 0.1]
    >>> Gumbel.from_schedule("poerner-bert").samples
    64
    """

    name: ClassVar[str] = "gumbel"
    max_steps: int = 300
    restarts: int = 2
    lr: float = 1.0
    samples: int = 4
    schedule: str = "anneal"
    temperature: tuple[float, float] = (2.0, 0.1)

    def validate(self) -> None:
        _at_least(self, 1, "max_steps", "restarts", "samples")
        _positive(self, "lr")
        resolve_schedule(self.schedule, self.temperature, self.max_steps)  # unknown names, bad temperatures

    @classmethod
    def from_schedule(cls, schedule: str, **changes: Any) -> "Gumbel":
        """A published schedule with its published samples, lr and steps (:data:`SCHEDULES`); ``changes``
        override any field."""
        if schedule not in SCHEDULES:
            raise TextualizeError(f"unknown schedule {schedule!r}; published ones: {', '.join(SCHEDULES)}")
        published = SCHEDULES[schedule]
        base = dict(schedule=schedule, samples=published["samples"], lr=published["lr"],
                    max_steps=published["steps"])
        return cls(**{**base, **changes})

    def temperatures(self) -> list[float]:
        """The temperature of every step of a run."""
        sched = resolve_schedule(self.schedule, self.temperature, self.max_steps)
        return [sched.temperature(s) for s in range(self.max_steps)]


@dataclasses.dataclass(frozen=True)
class Dense(Config):
    """Free input vectors in the token-embedding space, pulled towards the tokens by a growing penalty and read
    out as their nearest tokens (Baeumel et al. 2023); the vectors are kept.

    Parameters
    ----------
    max_steps : int
        Adam steps.
    restarts : int
        Independent rows per neuron (the best one is kept).
    lr : float
        Adam learning rate, in units of a typical embedding coordinate.
    penalty : float
        Final weight of the off-manifold penalty (1 - nearest cosine + squared relative norm gap).

    Examples
    --------
    >>> from tl_neuronprobe.textualization import Dense
    >>> Dense(max_steps=50).restarts
    2
    """

    name: ClassVar[str] = "dense"
    max_steps: int = 300
    restarts: int = 2
    lr: float = 0.2
    penalty: float = 1.0

    def validate(self) -> None:
        _at_least(self, 1, "max_steps", "restarts")
        _positive(self, "lr")
        if not isinstance(self.penalty, (int, float)) or self.penalty < 0:
            raise TextualizeError(f"Dense.penalty must be >= 0, got {self.penalty!r}")


@dataclasses.dataclass(frozen=True)
class Discrete(Config):
    """Gradient-guided token swaps scored exactly (GCG), as a population per neuron with fluency weights
    and restarts (evolutionary prompt optimization, Thompson et al. 2024).

    Parameters
    ----------
    max_steps : int
        Iterations (each proposes ``candidates`` children per member and scores them exactly).
    restarts : int
        Population members per neuron.
    candidates : int
        Children per member per iteration.
    top_tokens : int
        Tokens per position proposed by the gradient.
    restart_every : int
        Iterations without improvement before a member starts again from random tokens (0: never).
    init : str
        ``"random"`` or ``"corpus"`` (start from each neuron's top corpus windows).
    fluency : float or (float, float)
        Weight of the model's self cross-entropy in the objective (decoders only); a pair ``(low, high)`` gives
        the population log-spaced weights.
    selection : str
        ``"member"`` (each member among its own children), ``"population"`` (per fluency weight, among the
        children of the whole population; Thompson et al.) or ``"auto"`` (population for a fluency range).

    Examples
    --------
    >>> from tl_neuronprobe.textualization import Discrete
    >>> Discrete(fluency=(0.1, 10.0)).to_dict()["fluency"]
    [0.1, 10.0]
    """

    name: ClassVar[str] = "discrete"
    max_steps: int = 60
    restarts: int = 4
    candidates: int = 32
    top_tokens: int = 64
    restart_every: int = 30
    init: str = "random"
    fluency: "float | tuple[float, float]" = 0.0
    selection: str = "auto"

    def validate(self) -> None:
        _at_least(self, 1, "max_steps", "restarts", "candidates", "top_tokens")
        _at_least(self, 0, "restart_every")
        if self.init not in ("random", "corpus"):
            raise TextualizeError(f"Discrete.init must be 'random' or 'corpus', got {self.init!r}")
        if self.selection not in SELECTIONS:
            raise TextualizeError(f"selection must be one of {', '.join(SELECTIONS)}, got {self.selection!r}")
        fluency_weights(self.fluency, self.restarts, "cpu")  # range checks

    @property
    def uses_fluency(self) -> bool:
        return isinstance(self.fluency, (tuple, list)) or float(self.fluency) > 0


@dataclasses.dataclass(frozen=True)
class CorpusSearch(Config):
    """No optimization: each neuron's best distinct window of the corpus (needs ``TextualizeConfig.corpus``).

    Examples
    --------
    >>> from tl_neuronprobe.textualization import CorpusSearch
    >>> CorpusSearch().to_dict()
    {'type': 'CorpusSearch'}
    """

    name: ClassVar[str] = "corpus"
    max_steps: ClassVar[int] = 0
    restarts: ClassVar[int] = 1


OPTIMIZERS = (Gumbel, Dense, Discrete, CorpusSearch)


@dataclasses.dataclass(frozen=True)
class TextualizeConfig(Config):
    """How :func:`~tl_neuronprobe.textualize` searches: the optimizer and the settings every optimizer shares.

    Parameters
    ----------
    optimizer : Gumbel, Dense, Discrete or CorpusSearch
        The search and its own knobs (steps, restarts, learning rate, ...); default ``Gumbel()``.
    length : int
        Optimized tokens (the model's special tokens are added around them).
    position : int or None
        Which optimized token the neuron is read at; None: the last (decoders) or the middle (encoders).
    seed : int
        Seeds every random draw: the same config gives the same result.
    batch_size : int
        Neurons optimized together (rows = neurons x restarts); under ``torchrun`` the ranks share the chunks.
    vocab : ids, token strings, a predicate on the token string, a boolean mask, or None
        Allowed tokens; None: every real, non-special token.
    corpus : str, Corpus, list of sentences or None
        Baseline corpus (``"ud-english[:N]"``, ``"synthetic:N"``, a file, ...): its best distinct window of
        ``length`` tokens per neuron gives ``corpus_max`` and ``ratio``; None: no baseline.
    surrogate : bool or None
        Optimize an ``mlp.post`` neuron's pre-activation (same maximizers where it fires, a gradient where the
        activation is flat); None: wherever the MLP allows it. Results are always scored on the neuron itself.
    eval_every : int
        Gumbel and dense read out and score their discrete tokens every ``eval_every`` steps.
    eval_batch : int
        Sequences per forward pass when candidates and corpus windows are scored.
    dtype : str
        Autocast dtype of the optimization: ``"auto"`` (bfloat16 on CUDA, none on CPU), ``"float32"``,
        ``"bfloat16"``, ``"float16"``; reported activations are recomputed in the model's own precision.

    Examples
    --------
    >>> from tl_neuronprobe.textualization import Discrete, TextualizeConfig
    >>> config = TextualizeConfig(optimizer=Discrete(max_steps=20), length=3, corpus=None)
    >>> config.optimizer.restarts
    4
    >>> TextualizeConfig.from_dict(config.to_dict()) == config
    True
    """

    optimizer: "Gumbel | Dense | Discrete | CorpusSearch" = Gumbel()
    length: int = 5
    position: "int | None" = None
    seed: int = 0
    batch_size: int = 64
    vocab: VocabSpec = None
    corpus: "str | Sequence[str] | None" = DEFAULT_CORPUS
    surrogate: "bool | None" = None
    eval_every: int = 10
    eval_batch: int = 512
    dtype: str = "auto"

    def validate(self) -> None:
        if not isinstance(self.optimizer, OPTIMIZERS):
            raise TextualizeError(f"optimizer must be one of Gumbel(), Dense(), Discrete(), CorpusSearch(), got "
                                  f"{self.optimizer!r}")
        _at_least(self, 1, "length", "batch_size", "eval_every", "eval_batch")
        if self.dtype not in DTYPES:
            raise TextualizeError(f"dtype must be one of {list(DTYPES)}, got {self.dtype!r}")
        if isinstance(self.optimizer, CorpusSearch) and self.corpus is None:
            raise TextualizeError("CorpusSearch needs a corpus")


@dataclasses.dataclass(frozen=True)
class WordsNeededConfig(Config):
    """How :func:`words_needed` recovers words from their top neurons.

    Parameters
    ----------
    ks : tuple of int
        Numbers of top neurons maximized jointly (one row per word and k).
    site : str
        The neurons' site (``"mlp.post"``, ...).
    optimizer : Dense
        The joint maximization (free vectors in the token-embedding space).
    reference : int
        Random vocabulary tokens a word's response is standardized against.
    vocab : ids, token strings, a predicate, a boolean mask or None
        Allowed tokens (None: every real, non-special token).
    surrogate : bool or None
        As in :class:`TextualizeConfig`.
    seed : int
        Seeds the reference tokens and the optimization.
    eval_every, eval_batch : int
        As in :class:`TextualizeConfig`.

    Examples
    --------
    >>> from tl_neuronprobe.textualization import WordsNeededConfig
    >>> WordsNeededConfig(ks=[1, 2]).optimizer.max_steps
    150
    """

    ks: tuple[int, ...] = KS
    site: str = "mlp.post"
    optimizer: Dense = Dense(max_steps=150, restarts=1)
    reference: int = 2000
    vocab: VocabSpec = None
    surrogate: "bool | None" = None
    seed: int = 0
    eval_every: int = 10
    eval_batch: int = 512

    def validate(self) -> None:
        if not isinstance(self.optimizer, Dense):
            raise TextualizeError(f"words_needed optimizes with Dense(...), got {self.optimizer!r}")
        if not self.ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in self.ks):
            raise TextualizeError(f"ks must be positive integers, got {self.ks!r}")
        _at_least(self, 1, "reference", "eval_every", "eval_batch")
