"""The shared capture helper and TransformerLens's stop_at_layer meaning in the adapter."""

import pytest
import torch

import tl_neuronprobe as tnp
from tl_neuronprobe.core.hooks import capture_hooks, deepest_layer, run_capture
from tl_neuronprobe.core.neurons import layer_of_hook


@pytest.fixture(scope="module")
def adapter():
    return tnp.ModelAdapter(tnp.testing.planted_model())


def _batch(adapter):
    return adapter.collate(adapter.tokenize_sentences([["the", "dog", "runs", "."], ["those", "cats", "sleep"]]))


def test_run_capture_reads_what_a_full_pass_reads_and_stops_early(adapter):
    batch = _batch(adapter)
    name = "blocks.0.mlp.hook_post"
    got = run_capture(adapter, batch, {name: lambda a: a[..., :5]})
    store: dict = {}
    adapter.forward(batch, capture_hooks([name], store))  # full pass, no stop
    torch.testing.assert_close(got[name], store[name][..., :5])
    fired = []
    run_capture(adapter, batch, [name], extra_hooks=[("blocks.1.hook_resid_pre", lambda a, hook: fired.append(1))])
    assert fired == []  # the pass ended after block 0
    assert len(adapter.model.hook_dict[name].fwd_hooks) == 0


def test_run_capture_ends_the_pass_once_every_read_has_fired(adapter):
    """Reading ``mlp.hook_post`` of the last block read skips that block's MLP output and residual: hooks after
    the last read point do not fire (they do with ``stop=False``, the control), the values read are those of a
    full pass, hooks are removed, and a read of an earlier point alone still stops at its own point."""
    batch = _batch(adapter)
    reads = ["blocks.0.hook_resid_post", "blocks.1.mlp.hook_post"]
    later = ["blocks.1.hook_mlp_out", "blocks.1.hook_resid_post"]
    fired: list = []
    extra = [(name, (lambda n: lambda a, hook: fired.append(n))(name)) for name in later]
    got = run_capture(adapter, batch, reads, extra_hooks=extra)
    assert fired == [] and set(got) == set(reads)
    full = run_capture(adapter, batch, reads, extra_hooks=extra, stop=False)
    assert fired == later
    for name in reads:
        torch.testing.assert_close(got[name], full[name])
    assert all(len(adapter.model.hook_dict[n].fwd_hooks) == 0 for n in reads + later)
    fired.clear()
    run_capture(adapter, batch, ["blocks.0.hook_resid_mid"], extra_hooks=[extra[0]] + [
        ("blocks.0.mlp.hook_post", lambda a, hook: fired.append("post"))])
    assert fired == []


def test_capture_can_keep_the_graph(adapter):
    batch = _batch(adapter)
    emb = adapter.W_E
    got = run_capture(adapter, batch, ["blocks.0.hook_resid_pre"], detach=False)
    assert got["blocks.0.hook_resid_pre"].requires_grad == emb.requires_grad


def test_layer_of_hook_and_deepest_layer():
    assert layer_of_hook("blocks.3.attn.hook_z") == 3
    assert layer_of_hook("hook_embed") == -1
    assert deepest_layer(["hook_embed", "blocks.1.mlp.hook_post", "blocks.0.hook_resid_post"]) == 1


def test_stop_at_layer_zero_runs_no_block(adapter):
    batch = _batch(adapter)
    fired = []
    hooks = [("blocks.0.hook_resid_pre", lambda a, hook: fired.append("pre0")),
             ("blocks.0.hook_resid_post", lambda a, hook: fired.append("post0"))]
    assert adapter.forward(batch, hooks, stop_at_layer=0) is None
    assert fired == ["pre0"]
    fired.clear()
    adapter.forward(batch, hooks, stop_at_layer=1)
    assert fired == ["pre0", "post0"]
    with pytest.raises(ValueError, match="stop_at_layer"):
        adapter.forward(batch, hooks, stop_at_layer=adapter.n_layers + 1)
