"""Issue 23's identity check: per-neuron first-order scores summed over a layer equal the first-order attribution of
the whole MLP output of that layer (the MLP output is linear in the neurons: out = post @ W_out + b).

The right-hand side is computed independently of the per-neuron gradients: the change the edit makes to the MLP
output is *measured* (a forward pass with every neuron of the layer edited, against a clean one, at
``blocks.L.hook_mlp_out``), the gradient is taken at ``hook_mlp_out`` itself (a leaf there), and their inner
product summed over tokens. The batches, the edited tokens, the readout's objective and its averaging over units
are the module's own (``_set_up``, ``_Estimator.deltas``, ``_objective``): those are what every estimate shares,
and the check is about the per-neuron gradients and deltas, not about them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tl_neuronprobe as tnp
from tl_neuronprobe.core.hooks import capture_hooks
from tl_neuronprobe.core.neurons import hook_name
from tl_neuronprobe.evaluation import attribution as A
from tl_neuronprobe.evaluation.attribution import AttributionConfig, Verify
from tl_neuronprobe.interventions import Identity, Mean, Zero


@pytest.fixture(scope="module")
def planted():
    return tnp.models.load("planted")


@pytest.fixture(scope="module")
def corpus():
    return tnp.testing.planted_corpus(60, seed=0)


def whole_mlp_attribution(model, corpus, config: AttributionConfig, layer: int, scramble: bool = False) -> float:
    """First-order attribution of the edit's change of the whole MLP output of ``layer``, per unit."""
    adapter = tnp.ModelAdapter.wrap(model)
    neurons = [tnp.Neuron(layer, j) for j in range(adapter.d_mlp)]
    setup = A._set_up(adapter, corpus, "Number", neurons, config, None, False)
    estimator = A._Estimator(setup, config)
    post, out_name = hook_name("mlp.post", layer), f"blocks.{layer}.hook_mlp_out"
    total, units = 0.0, 0
    gen = torch.Generator().manual_seed(0)
    for sent_idx in setup.batches:
        prep = estimator.prepare(sent_idx)
        plan = setup.readout.plan(prep.batch, sent_idx, prep.word_mask, prep.mask, record=False)
        clean: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            ref_out = A._forward(adapter, prep.batch, capture_hooks([post, out_name], clean), setup.readout)
        delta = estimator.deltas(prep, {post: clean[post]})[post]  # [b, p, d_mlp]
        if scramble:  # the control: the same deltas at the wrong tokens
            delta = delta.reshape(-1, delta.shape[-1])[torch.randperm(delta.shape[0] * delta.shape[1],
                                                                      generator=gen)].reshape(delta.shape)
        edited: dict[str, torch.Tensor] = {}

        def shift(act, hook=None):  # noqa: ARG001
            return act + delta.to(act.dtype).reshape(act.shape)

        with torch.no_grad():
            A._forward(adapter, prep.batch, [(post, shift)] + capture_hooks([out_name], edited), setup.readout)
        change = (edited[out_name] - clean[out_name]).double()
        store: dict[str, torch.Tensor] = {}
        with A._activation_grads(adapter.model):
            out = A._forward(adapter, prep.batch, A._leaf_hooks([out_name], store), setup.readout)
            objective = A._objective(setup.readout, out, plan, A._clean_ref(setup.readout, A._detached(ref_out), plan))
            (grad,) = torch.autograd.grad(objective, [store[out_name]])
        total += float((change * grad.double()).sum())
        units += plan.n_units
    return total / units


@pytest.mark.parametrize("edit", [Zero(), Mean()], ids=["zero", "mean"])
@pytest.mark.parametrize("layer", [0, 1])
def test_per_neuron_scores_sum_to_the_whole_mlp_output(planted, corpus, edit, layer):
    config = AttributionConfig(edit=edit, readout=Identity(), layers=(layer,), verify=Verify(0, 0))
    scores = tnp.attribute_used(planted, corpus, "Number", config, progress=False).scores_
    whole = whole_mlp_attribution(planted, corpus, config, layer)
    assert abs(whole) > 1e-5  # a non-zero attribution, so the check can fail
    np.testing.assert_allclose(scores.sum(), whole, rtol=2e-4, atol=1e-6)
    scrambled = whole_mlp_attribution(planted, corpus, config, layer, scramble=True)
    assert abs(scrambled - scores.sum()) > 100 * 2e-4 * abs(whole)  # the control: wrong tokens break the identity
