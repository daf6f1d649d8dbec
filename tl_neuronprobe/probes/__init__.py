"""Probes: batched softmax training (its knobs: :class:`SoftmaxTrainer`), logistic probes over many neuron
subsets, the Gaussian probe.

``checked_X`` / ``checked_y`` (input checks) and ``softmax_fit`` / ``softmax_fit_batches`` (the training loops
``SoftmaxTrainer``, ``L1`` and the out-of-core fits share) are importable for the rankers, not public."""

from ._checks import checked_X, checked_y
from ._gaussian import GaussianProbe
from ._logistic import LogisticProbes
from ._softmax import (SoftmaxTrainer, StandardizationSums, softmax_fit, softmax_fit_batches, softmax_logits,
                       standardization)

__all__ = ["LogisticProbes", "GaussianProbe", "SoftmaxTrainer", "softmax_logits", "standardization"]
