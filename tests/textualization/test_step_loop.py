"""The step loop's cost: how deep each row's pass goes (issue 27: every row of a chunk went through the chunk's
deepest layer) and how many host synchronizations a step makes (none may creep back)."""

from __future__ import annotations

import collections
import contextlib
import sys

import pytest
import torch

import tl_neuronprobe as tnp
from tl_neuronprobe.textualization import Dense, Discrete, Gumbel, TextualizeConfig, _api, textualize
from tl_neuronprobe.textualization._problem import Problem


@pytest.fixture(scope="module")
def gpt2_4():
    return tnp.testing.tiny_model("auto", "gpt2", n_layers=4, d_model=32, d_mlp=64, seed=2)


def _rows_per_block(model, fn) -> collections.Counter:
    """Rows that entered each block's residual stream and each block's MLP output while ``fn`` ran."""
    seen: collections.Counter = collections.Counter()
    n_layers = tnp.ModelAdapter(model).n_layers
    names = [f"blocks.{b}.{site}" for b in range(n_layers) for site in ("hook_resid_pre", "hook_mlp_out")]
    # plain torch hooks on the hook points: the adapter's own hook context leaves them alone
    handles = [model.hook_dict[n].register_forward_hook(
        lambda mod, args, out, n=n: seen.update({n: out.shape[0]})) for n in names]
    try:
        fn()
    finally:
        for h in handles:
            h.remove()
    return seen


def test_each_row_stops_at_its_own_layer(gpt2_4):
    """Rows of a layer-0 neuron sharing a batch with a layer-3 neuron's rows do not run blocks 1-3, and the
    deepest rows stop right after their hook (no MLP output projection there); values are those of one pass
    per neuron. Fails on the code before issue 27 (every row ran blocks 0-3 and block 3's MLP output)."""
    neurons = [tnp.Neuron(0, 5), tnp.Neuron(0, 9), tnp.Neuron(3, 7)]
    p = Problem(tnp.ModelAdapter(gpt2_4), neurons, length=4, position=None, surrogate=False)
    rows = p.rows(range(3), 10)  # 10 rows per neuron, neuron-major: 20 layer-0 rows then 10 layer-3 rows
    tokens = p.allowed[torch.randint(p.n_allowed, (30, 4), generator=torch.Generator().manual_seed(0))]
    out = {}
    seen = _rows_per_block(gpt2_4, lambda: out.update(act=p.score(rows, tokens, batch=512)[1]))
    assert seen["blocks.0.hook_resid_pre"] == 30
    assert seen["blocks.1.hook_resid_pre"] == seen["blocks.3.hook_resid_pre"] == 10
    assert seen["blocks.0.hook_mlp_out"] == 10  # the layer-0 pass ends at hook_post: only the deep rows go on
    assert seen["blocks.3.hook_mlp_out"] == 0
    alone = torch.cat([p.score(p.rows([i], 10), tokens[10 * i:10 * (i + 1)])[1] for i in range(3)])
    assert torch.equal(out["act"], alone)
    # control: one pass stopped at the deepest layer (the old route) gives the same values at higher cost
    with torch.no_grad():
        whole, _ = p._pass(rows, tokens, None, False, False)
    assert torch.equal(whole, out["act"])


def test_gradient_pass_stops_per_layer_and_keeps_rows_independent(gpt2_4):
    """The proposal (gradient) pass is split the same way; each row's gradient is what it would be alone."""
    neurons = [tnp.Neuron(0, 5), tnp.Neuron(3, 7)]
    p = Problem(tnp.ModelAdapter(gpt2_4), neurons, length=3, position=None)
    rows = p.rows(range(2), 3)
    embeds = p.E[torch.randint(p.n_allowed, (6, 3), generator=torch.Generator().manual_seed(1))]
    x = embeds.clone().requires_grad_(True)
    seen = _rows_per_block(gpt2_4, lambda: p.forward(rows, embeds=x)[0].sum().backward())
    assert seen["blocks.3.hook_resid_pre"] == 3
    for i in range(2):
        y = embeds[3 * i:3 * (i + 1)].clone().requires_grad_(True)
        p.forward(p.rows([i], 3), embeds=y)[0].sum().backward()
        assert torch.allclose(x.grad[3 * i:3 * (i + 1)], y.grad, atol=1e-6)


def test_rows_slices_know_their_neurons():
    idx = torch.as_tensor([0, 0, 1, 1, 1, 2])
    rows = tnp.textualization._problem.Rows(idx, ((0, 2), (1, 3), (2, 1)))
    assert rows[1:3].runs == ((0, 1), (1, 1)) and rows[1:3].neuron_ids == [0, 1]
    assert rows[2:5].neuron_ids == [1] and len(rows[5:9]) == 1
    assert rows.repeat(2).runs == ((0, 4), (1, 6), (2, 2))
    assert rows.split(lambda i: min(i, 1)) == [(0, 2), (2, 6)]
    with pytest.raises(TypeError, match="contiguous slices only"):
        rows[torch.as_tensor([0, 5])]
    with pytest.raises(ValueError, match="runs cover 5 rows, index has 6"):
        tnp.textualization._problem.Rows(idx, ((0, 5),))


# ------------------------------------------------------------------------------------ host synchronizations
#: what reads a tensor's value on the host (a device synchronization on CUDA)
SYNCS = ("item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__", "__index__")


@contextlib.contextmanager
def counting_syncs(counts: collections.Counter):
    saved = {name: getattr(torch.Tensor, name) for name in SYNCS}

    def wrap(name, fn):
        def counted(self, *args, **kwargs):
            if "torch/optim" not in sys._getframe(1).f_code.co_filename:  # Adam's step count lives on the host
                counts[name] += 1
            return fn(self, *args, **kwargs)
        return counted
    for name, fn in saved.items():
        setattr(torch.Tensor, name, wrap(name, fn))
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(torch.Tensor, name, fn)


def syncs_in_loop(model, optimizer, steps: int, monkeypatch, eval_every: int = 10) -> collections.Counter:
    """Host reads of tensor values inside the optimizer's step loop (the runner), for a run of ``steps`` steps."""
    counts: collections.Counter = collections.Counter()
    method = optimizer.name
    runner = _api._RUNNERS[method]

    def watched(*args, **kwargs):
        with counting_syncs(counts):
            return runner(*args, **kwargs)
    with monkeypatch.context() as patch:
        patch.setitem(_api._RUNNERS, method, watched)
        config = TextualizeConfig(optimizer=optimizer.replace(max_steps=steps), length=3, corpus=None,
                                  eval_every=eval_every)
        textualize(model, ["L0.N3", "L1.N7", "L1.N20"], config, progress=False)
    return counts


@pytest.mark.parametrize("optimizer", [Gumbel(), Dense(), Discrete(restart_every=2),
                                       Discrete(fluency=(0.1, 1.0), restart_every=2)])
def test_no_host_syncs_per_step(planted, monkeypatch, optimizer):
    """Steps (with their read-outs, scoring and restarts) read no tensor value on the host: the count of a
    2-step run equals that of a 6-step run. The check itself can fail: a ``.item()`` per step is seen."""
    short = syncs_in_loop(planted, optimizer, 2, monkeypatch, eval_every=2)
    long = syncs_in_loop(planted, optimizer, 6, monkeypatch, eval_every=2)
    assert long == short, f"{optimizer}: {dict(long - short)} host syncs in 4 extra steps"
    assert sum(long.values()) <= 1  # setup of the loop (at most one read)


def test_sync_counter_sees_a_sync_per_step(planted, monkeypatch):
    """Control: a step that reads a value on the host is counted once per step."""
    from tl_neuronprobe.textualization import _problem
    score = _problem.Problem.score

    def syncing(self, *args, **kwargs):
        out = score(self, *args, **kwargs)
        out[1].max().item()
        return out
    monkeypatch.setattr(_problem.Problem, "score", syncing)
    short = syncs_in_loop(planted, Discrete(restart_every=100), 2, monkeypatch)
    long = syncs_in_loop(planted, Discrete(restart_every=100), 6, monkeypatch)
    assert long["item"] - short["item"] == 4
