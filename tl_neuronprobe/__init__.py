"""tl_neuronprobe: neuron-level interpretability for TransformerLens models.

Which neurons encode a property (rankers), which ones the model uses (interventions), what drives a neuron
(textualization), over word-aligned activations taken at TransformerLens hook points.
"""

from . import controls, interventions, models, probes, rankers, readouts, synthetic, testing
from .activations import Activations
from .adapter import ModelAdapter
from .corpus import Corpus, CorpusError, Sentence
from .encoded import evaluate_encoded, layer_distribution, plot_encoded, ranker_agreement
from .extraction import LongSentenceError, NonFiniteActivationError, extract
from .neurons import SITES, Neuron, parse_neurons
from .textualize import corpus_top_windows, textualize
from .used import compare_encoded_used, evaluate_used, plot_used

__version__ = "0.1.0"

__all__ = ["Activations", "Corpus", "CorpusError", "LongSentenceError", "ModelAdapter", "Neuron",
           "NonFiniteActivationError", "SITES", "Sentence", "compare_encoded_used", "controls", "corpus_top_windows",
           "evaluate_encoded", "evaluate_used", "extract", "interventions", "layer_distribution", "models",
           "parse_neurons", "plot_encoded", "plot_used", "probes", "ranker_agreement", "rankers", "readouts",
           "synthetic", "testing", "textualize"]
