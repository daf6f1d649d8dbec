"""Textualization: inputs optimized to drive neurons, the corpus windows they are compared with, and how many
neurons a word needs.

:func:`textualize` takes the model, the neurons and one :class:`TextualizeConfig` whose ``optimizer`` is
:class:`Gumbel`, :class:`Dense`, :class:`Discrete` or :class:`CorpusSearch`; it returns a
:class:`TextualizeResult` (one ``NeuronText`` record per neuron). :func:`corpus_top_windows` gives the baseline
windows, :func:`words_needed` (with a :class:`WordsNeededConfig`) the recovery curve. The implementation lives in private modules (``_api``,
``_problem``, ``_gumbel``, ``_dense``, ``_discrete``, ``_corpus``, ``_results``, ``_words``); the public names are
re-exported here.
"""

from ._api import textualize
from ._config import CorpusSearch, Dense, Discrete, Gumbel, TextualizeConfig, WordsNeededConfig
from ._corpus import corpus_top_windows
from ._results import TextualizeResult
from ._vocab import TextualizeError
from ._words import WordsNeeded, words_needed

__all__ = ["CorpusSearch", "Dense", "Discrete", "Gumbel", "TextualizeConfig", "TextualizeError",
           "TextualizeResult", "WordsNeeded", "WordsNeededConfig", "corpus_top_windows", "textualize",
           "words_needed"]
