"""Neuron descriptions: concepts from the corpus tied to neurons without labels, scored on held-out text.

``describe(acts, corpus)`` -> :class:`Descriptions`. Concepts come from annotations, surface form, context,
user word lists and discovered clusters; each neuron gets its best significant concept or formula of concepts
(AND / OR / AND NOT), or "no description", and every description is scored on held-out sentences beside
three baselines.
"""

from ._associate import Association, associate, benjamini_hochberg, within_sentence_shuffle
from ._compose import beam_search, evaluate, formula_text, parse_formula, render
from ._concepts import Concepts, add_head_upos, build_concepts, from_masks, word_list_concepts
from ._describe import activations_from_array, describe
from ._discover import causal_lm_generator, generated_concepts, latent_concepts
from ._effects import description_effects
from ._planted import PlantedDescriptions, describe_by_frequency, planted_descriptions, recovery
from ._result import NO_DESCRIPTION, Descriptions
from ._run import best_described, ranker_agreement, run_describe, top_contexts
from ._score import precision_recall_at_k, sentence_split

__all__ = ["Association", "Concepts", "add_head_upos", "Descriptions", "NO_DESCRIPTION", "PlantedDescriptions",
           "activations_from_array", "associate", "beam_search", "benjamini_hochberg", "best_described",
           "build_concepts", "causal_lm_generator", "describe", "description_effects", "generated_concepts",
           "latent_concepts", "ranker_agreement", "run_describe", "top_contexts", "describe_by_frequency", "evaluate", "formula_text", "from_masks", "parse_formula",
           "planted_descriptions", "precision_recall_at_k", "recovery", "render", "sentence_split",
           "within_sentence_shuffle", "word_list_concepts"]
