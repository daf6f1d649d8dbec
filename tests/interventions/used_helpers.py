"""Helpers shared by the intervention tests (a uniquely named module: test folders have no __init__)."""

from __future__ import annotations

import numpy as np
import torch

import tl_neuronprobe as tnp
from tl_neuronprobe import interventions as iv


def hook_count(model: torch.nn.Module) -> int:
    """Forward hooks registered on any submodule (TransformerLens hook points are modules)."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def mean_difference_order(acts: "tnp.Activations", attribute: str) -> list:
    """Probeless order (sum over class pairs of |mean difference|), computed here so the tests need no rankers."""
    X, y, classes = acts.dataset(attribute)
    means = iv.class_means(X, y, len(classes))
    score = sum((means[a] - means[b]).abs() for a in range(len(classes)) for b in range(a + 1, len(classes)))
    order = np.argsort(-score.numpy(), kind="stable")
    return [acts.neurons[i] for i in order]
