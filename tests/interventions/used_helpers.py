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


def used_config(ks=(1,), *, edit=None, readout=None, layer=None, site="mlp.post", aggregation="last", n_random=3,
                bottom=True, batch_size=32, strategy="auto", **fields):
    """A :class:`UsedConfig` from the flat knobs the tests vary (the sub-configs filled in)."""
    from tl_neuronprobe.evaluation.used import Baselines, UsedBatching, UsedConfig, UsedFit

    return UsedConfig(edit=edit if edit is not None else iv.Translate(), readout=readout, ks=ks,
                      baselines=Baselines(bottom=bottom, n_random=n_random),
                      fit=UsedFit(site=site, layer=layer, aggregation=aggregation),
                      batching=UsedBatching(batch_size=batch_size, strategy=strategy), **fields)


def edit_of(method="translate", alpha=1.0, beta=8.0, mean_of="dataset", resample_from="any"):
    """The edit object of a flat (kind, options) description."""
    if method == "translate":
        return iv.Translate(alpha=alpha, beta=beta)
    if method == "mean":
        return iv.Mean(of=mean_of)
    if method == "resample":
        return iv.Resample(pool=resample_from)
    return iv.edit_from_name(method)


def readout_of(readout=None, divergence=None, agreement_attribute=None):
    """The readout object of a flat description (``"divergence"`` with its metrics, ...); None: automatic."""
    if readout is None or readout == "auto":
        return None
    if readout == "divergence":
        return iv.Divergence(metrics=divergence)
    if readout == "agreement":
        return iv.Agreement(attribute=agreement_attribute)
    if readout == "identity":
        return iv.Identity()
    return readout


def run_used(model, corpus, attribute, rankings, ks, *, method="translate", alpha=1.0, beta=8.0, mean_of="dataset",
             resample_from="any", readout=None, divergence=None, agreement_attribute=None, progress=False, test=None,
             **fields):
    """``evaluate_used`` with its config built from flat knobs (see :func:`used_config`); returns the result."""
    from tl_neuronprobe.evaluation.used import evaluate_used

    config = used_config(ks, edit=edit_of(method, alpha, beta, mean_of, resample_from),
                         readout=readout_of(readout, divergence, agreement_attribute), **fields)
    return evaluate_used(model, corpus, attribute, rankings, config, test=test, progress=progress)
