"""tl_neuronprobe: neuron-level interpretability for TransformerLens models.

Which neurons encode a property (rankers), which ones the model uses (interventions), what drives a neuron
(textualization) and what describes it (descriptions), over word-aligned activations taken at TransformerLens
hook points. Each stage takes its data plus one config and returns a typed result::

    acts = tnp.extract(model, corpus, tnp.ExtractConfig(layers=(2, 3)))
    encoded = tnp.evaluate_encoded(acts, "upos", ["probeless", "linear"], tnp.EncodedConfig(ks=(1, 10)))
    used = tnp.evaluate_used(model, corpus, "upos", encoded, tnp.UsedConfig.antverg())
    tnp.report([encoded, used], out_dir="report/")

The subpackages follow the pipeline: ``core`` -> ``data`` -> ``probes`` / ``rankers`` -> ``interventions`` ->
``evaluation`` -> ``textualization`` -> ``descriptions``; ``reporting`` builds the HTML neuron browser;
``testbeds`` holds models with planted ground truth (``tnp.testing``), ``workflows`` runs each command line job
(and the demo) as a library function and ``cli`` only parses the command line.
"""

from . import interventions, models, probes, rankers, testing
from .core import units
from .core.adapter import ModelAdapter
from .core.config import Config
from .core.neurons import SITES, Neuron, parse_neurons
from .data.activations import Activations
from .data.corpus import Corpus, CorpusError, Sentence
from .data.extraction import ExtractConfig, LongSentenceError, NonFiniteActivationError, extract
from .evaluation.attribution import Attribution, AttributionConfig, attribute_used
from .evaluation.compare import CompareConfig, Comparison, compare_encoded_used
from .evaluation.encoded import EncodedConfig, EncodedResult, evaluate_encoded
from .evaluation.results import load_result
from .evaluation.used import UsedConfig, UsedResult, evaluate_used
from .textualization import TextualizeConfig, TextualizeResult, corpus_top_windows, textualize
from .descriptions import DescribeConfig, Descriptions, describe
from . import workflows  # noqa: E402 - after the stages it runs
from .reporting import report  # noqa: E402 - reads what every stage writes
from . import export  # noqa: E402 - writes what the stages found for Neuronpedia

__version__ = "0.5.0"

__all__ = [
    # models and ground truth
    "models", "testing", "ModelAdapter",
    # units (neurons, and a dictionary's latents), corpora, activations
    "Neuron", "parse_neurons", "SITES", "units", "Corpus", "Sentence", "CorpusError", "Activations",
    "extract", "ExtractConfig", "LongSentenceError", "NonFiniteActivationError",
    # which neurons encode a property
    "rankers", "probes", "evaluate_encoded", "EncodedConfig", "EncodedResult",
    # which neurons the model uses
    "interventions", "evaluate_used", "UsedConfig", "UsedResult", "compare_encoded_used", "CompareConfig",
    "Comparison", "attribute_used", "AttributionConfig", "Attribution",
    # what a neuron responds to, what describes it
    "textualize", "TextualizeConfig", "TextualizeResult", "corpus_top_windows", "describe", "DescribeConfig",
    "Descriptions",
    # results, configs, jobs
    "report", "export", "load_result", "Config", "workflows",
]
