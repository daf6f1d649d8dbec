"""Public test helpers (``tnp.testing``): the planted models and corpora of :mod:`tl_neuronprobe.testbeds`."""

from .testbeds.planted import *  # noqa: F401,F403
from .testbeds.sequence import SEQUENCE_NEURON, sequence_model, sequence_weights  # noqa: F401
from .testbeds.agreement import train_agreement_decoder  # noqa: F401
