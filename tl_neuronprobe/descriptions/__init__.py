"""Neuron descriptions: concepts from the corpus tied to neurons without labels, scored on held-out text.

``describe(acts, corpus)`` -> :class:`Descriptions`. Concepts come from annotations, surface form, context,
user word lists and discovered clusters; each neuron gets its best significant concept or formula of concepts
(AND / OR / AND NOT), or "no description", and every description is scored on held-out sentences beside
three baselines.
"""

from ._associate import Association, associate, benjamini_hochberg, within_sentence_shuffle
from ._compose import beam_search, evaluate, formula_text, parse_formula, render
from ._concepts import Concepts, add_head_upos, build_concepts, from_masks, word_list_concepts
from ._describe import describe
from ._discover import causal_lm_generator, generated_concepts, latent_concepts
from ._effects import description_effects
from ._result import NO_DESCRIPTION, Descriptions
from ._score import precision_recall_at_k, sentence_split

__all__ = ["Association", "Concepts", "Descriptions", "NO_DESCRIPTION", "add_head_upos",
           "associate", "beam_search", "benjamini_hochberg", "build_concepts", "causal_lm_generator", "describe",
           "description_effects", "evaluate", "formula_text", "from_masks", "generated_concepts", "latent_concepts",
           "parse_formula", "precision_recall_at_k", "render", "sentence_split", "within_sentence_shuffle",
           "word_list_concepts"]
