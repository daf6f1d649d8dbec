"""tl_neuronprobe: neuron-level interpretability for TransformerLens models.

Which neurons encode a property (rankers), which ones the model uses (interventions), what drives a neuron
(textualization), and descriptions of neurons, over activations taken at TransformerLens hook points.
"""

from . import models, synthetic, testing
from .activations import Activations
from .adapter import ModelAdapter
from .corpus import Corpus, CorpusError, Sentence
from .extraction import LongSentenceError, NonFiniteActivationError, extract
from .neurons import SITES, Neuron, parse_neurons

__version__ = "0.1.0"

__all__ = ["Activations", "Corpus", "CorpusError", "LongSentenceError", "ModelAdapter", "Neuron",
           "NonFiniteActivationError", "SITES", "Sentence", "extract", "models", "parse_neurons", "synthetic",
           "testing"]
