"""Textualization: inputs optimized to drive neurons, and the corpus windows they are compared with.

``api`` (``textualize``), ``problem`` (neurons, surrogate, framing, vocabulary), the methods (``gumbel``,
``dense``, ``discrete``), ``corpus`` (the baseline windows), ``results`` and ``words`` (how many neurons a word
needs); the implementation lives in private modules, the public names are re-exported here.
"""

from ._api import DEFAULTS, METHODS, textualize
from ._corpus import DEFAULT_CORPUS, corpus_top_windows
from ._gumbel import SCHEDULES, Schedule, temperatures
from ._problem import Problem, Rows
from ._results import COLUMNS, NEAREST_COLUMNS, NeuronText, TextualizeResult
from ._words import KS, WORD_COLUMNS, WordsNeeded, words_needed
from ._vocab import TextualizeError, VocabSpec, framing, resolve_vocab, token_names

__all__ = ["COLUMNS", "DEFAULTS", "DEFAULT_CORPUS", "METHODS", "NEAREST_COLUMNS", "NeuronText", "Problem", "Rows",
           "SCHEDULES", "Schedule", "TextualizeError", "TextualizeResult", "VocabSpec", "corpus_top_windows",
           "framing", "resolve_vocab", "temperatures", "textualize", "token_names", "KS", "WORD_COLUMNS",
           "WordsNeeded", "words_needed"]
