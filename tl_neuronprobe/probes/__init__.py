"""Probes: batched softmax training, logistic probes over many neuron subsets, the Gaussian probe."""

from ._probes import *  # noqa: F401,F403
from ._probes import standardization  # noqa: F401
from ._probes import _softmax_grads, _train_softmax  # noqa: F401
