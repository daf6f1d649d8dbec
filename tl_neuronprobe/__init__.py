"""tl_neuronprobe: neuron-level interpretability for TransformerLens models.

Which neurons encode a property (rankers), which ones the model uses (interventions), what drives a neuron
(textualization), over word-aligned activations taken at TransformerLens hook points. The subpackages follow
the pipeline: ``core`` -> ``data`` -> ``probes`` / ``rankers`` -> ``interventions`` -> ``evaluation`` ->
``textualization`` -> ``descriptions``; ``reporting`` builds the HTML neuron browser; ``testbeds`` holds models with planted ground truth, ``workflows`` runs each command line job
(and the demo) as a library function and ``cli`` only parses the command line.
"""

from . import interventions, models, probes, rankers, testing
from .core.adapter import ModelAdapter
from .core.neurons import SITES, Neuron, parse_neurons
from .data import synthetic
from .data.activations import Activations
from .data.corpus import Corpus, CorpusError, Sentence
from .data.extraction import LongSentenceError, NonFiniteActivationError, extract
from .evaluation import controls
from .evaluation.encoded import evaluate_encoded, layer_distribution, plot_encoded, ranker_agreement
from .evaluation.used import compare_encoded_used, evaluate_used, plot_used
from .interventions import readouts
from .textualization import corpus_top_windows, textualize
from .descriptions import Descriptions, describe
from . import workflows  # noqa: E402 - after the stages it runs
from .reporting import report  # noqa: E402 - reads what every stage writes

__version__ = "0.1.0"

__all__ = ["Activations", "Corpus", "Descriptions", "describe", "report", "CorpusError", "LongSentenceError", "ModelAdapter", "Neuron",
           "NonFiniteActivationError", "SITES", "Sentence", "compare_encoded_used", "controls", "corpus_top_windows",
           "evaluate_encoded", "evaluate_used", "extract", "interventions", "layer_distribution", "models",
           "parse_neurons", "plot_encoded", "plot_used", "probes", "ranker_agreement", "rankers", "readouts",
           "synthetic", "testing", "textualize", "workflows"]
