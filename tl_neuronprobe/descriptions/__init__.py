"""Neuron descriptions: concepts from the corpus tied to neurons without labels, scored on held-out text.

``describe(acts, corpus, config=DescribeConfig(...))`` -> :class:`Descriptions`. Concepts come from annotations,
surface form, context, user word lists and discovered clusters; each neuron gets its best significant concept or
formula of concepts (AND / OR / AND NOT), or "no description", and every description is scored on held-out
sentences beside four baselines.

Public: the stage (:func:`describe`, :class:`DescribeConfig`, :class:`Search`, :class:`Descriptions`), the concept
vocabulary (:class:`Concepts`, :func:`build_concepts`, :func:`word_list_concepts`, :func:`from_masks`,
:func:`add_head_upos`), discovered concepts (:func:`latent_concepts`, :func:`word_set_concepts` with
:func:`form_vectors`, :func:`generated_concepts`, :func:`causal_lm_generator`), formulas (:func:`parse_formula`,
:func:`formula_text`, :func:`evaluate`), :func:`description_effects` and :func:`level_simulation` (descriptions at
several levels read together). The association statistics and the formula search live in the private modules.
"""

from ._compose import evaluate, formula_text, parse_formula
from ._concepts import Concepts, add_head_upos, build_concepts, from_masks, word_list_concepts
from ._config import DescribeConfig, Search
from ._describe import describe
from ._discover import causal_lm_generator, form_vectors, generated_concepts, latent_concepts, word_set_concepts
from ._effects import description_effects
from ._levels import level_simulation
from ._result import NO_DESCRIPTION, Descriptions

__all__ = ["DescribeConfig", "Descriptions", "Search", "describe", "NO_DESCRIPTION", "Concepts", "build_concepts",
           "word_list_concepts", "from_masks", "add_head_upos", "latent_concepts", "word_set_concepts", "form_vectors",
           "generated_concepts", "causal_lm_generator", "parse_formula", "formula_text", "evaluate",
           "description_effects", "level_simulation"]
