"""Probes: batched softmax training, logistic probes over many neuron subsets, the Gaussian probe."""

from ._checks import checked_X, checked_y, renamed_param
from ._gaussian import GaussianProbe
from ._logistic import LogisticProbes
from ._softmax import StandardizationSums, softmax_logits, standardization, train_softmax, train_softmax_batches

__all__ = ["train_softmax", "train_softmax_batches", "StandardizationSums", "softmax_logits", "standardization", "LogisticProbes", "GaussianProbe",
           "checked_X", "checked_y", "renamed_param"]
