"""Intervention objects: exact arithmetic at the chosen neurons and positions only, composition, errors, and
hooks that never outlive their context (also when the body or a hook raises)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tl_neuronprobe as tnp
from tl_neuronprobe import interventions as iv

from used_helpers import hook_count, used_config

SITE = "blocks.1.mlp.hook_post"


def capture(adapter, batch, name=SITE, hooks=()):
    """Run ``batch`` with ``hooks`` and return the activation at ``name`` as the next hooks see it."""
    seen = {}

    def keep(act, hook=None):
        seen["act"] = act.detach().clone()

    with torch.inference_mode():
        logits = adapter.forward(batch, list(hooks) + [(name, keep)])
    return seen["act"], logits


def test_zero_touches_only_the_chosen_neurons_at_the_masked_positions(planted, positions):
    adapter = tnp.ModelAdapter(planted)
    clean, _ = capture(adapter, positions.batch)
    z = iv.Zero().bind(planted, ["L1.N5", "L1.N23"], positions=positions)
    edited, _ = capture(adapter, positions.batch, hooks=z.hooks())
    m = positions.mask
    assert m.any() and (~m).any()
    assert torch.all(edited[..., [5, 23]][m] == 0)
    assert torch.equal(edited[..., [5, 23]][~m], clean[..., [5, 23]][~m])
    others = [i for i in range(64) if i not in (5, 23)]
    assert torch.equal(edited[..., others], clean[..., others])
    assert not torch.equal(edited, clean)


def test_translate_mean_set_resample_arithmetic(planted, positions):
    adapter = tnp.ModelAdapter(planted)
    clean, _ = capture(adapter, positions.batch)
    m = positions.mask
    neurons = ["L1.N5", "L1.N11", "L1.N40"]
    cols = [5, 11, 40]
    means = torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.5, 4.0]])  # two classes
    t = iv.Translate(alpha=[2.0, 1.0, 0.5]).bind(planted, neurons, means=means, positions=positions)
    edited, _ = capture(adapter, positions.batch, hooks=t.hooks())
    src = positions.labels[m]
    delta = means[(src + 1) % 2] - means[src]
    expect = clean[..., cols][m] + torch.tensor([2.0, 1.0, 0.5]) * delta
    torch.testing.assert_close(edited[..., cols][m], expect)
    torch.testing.assert_close(edited[..., cols][~m], clean[..., cols][~m])

    mu = iv.Mean().bind(planted, neurons, positions=positions, means=torch.tensor([0.25, -0.5, 1.0]))
    edited, _ = capture(adapter, positions.batch, hooks=mu.hooks())
    torch.testing.assert_close(edited[..., cols][m], torch.tensor([0.25, -0.5, 1.0]).expand(int(m.sum()), 3))

    b, p = m.shape
    vals = torch.randn(b, p, 3, generator=torch.Generator().manual_seed(0))
    s = iv.SetValues().bind(planted, neurons, m, values=vals)
    edited, _ = capture(adapter, positions.batch, hooks=s.hooks())
    torch.testing.assert_close(edited[..., cols][m], vals[m])
    assert not hasattr(iv, "set") and not hasattr(iv, "set_values")  # the removed function names

    pool = torch.arange(30, dtype=torch.float32).reshape(10, 3)
    r = iv.Resample().bind(planted, neurons, positions, donors=pool, seed=1)
    edited, _ = capture(adapter, positions.batch, hooks=r.hooks())
    got = edited[..., cols][m]
    # every value is a donor row, up to float rounding: replace is h + (v - h), exact only for some h
    assert all(any(torch.allclose(row, d, rtol=0, atol=1e-5) for d in pool) for row in got)
    r2 = iv.Resample().bind(planted, neurons, positions, donors=pool, seed=1)
    torch.testing.assert_close(capture(adapter, positions.batch, hooks=r2.hooks())[0], edited)


def test_scaled_alpha_decays_from_beta_to_the_floor():
    a = iv.scaled_alpha(11, beta=8.0)
    assert a[0] == pytest.approx(8.0) and a[-1] == pytest.approx(1e-3)
    assert np.all(np.diff(a) < 0)
    np.testing.assert_allclose(a[5], 8.0 * (1e-3 / 8.0) ** 0.5)
    with pytest.raises(ValueError, match="beta"):
        iv.scaled_alpha(5, beta=0)


def test_multi_site_neurons_group_by_hook(planted, positions):
    adapter = tnp.ModelAdapter(planted)
    neurons = [tnp.Neuron(1, 5), tnp.Neuron(0, 3, "resid.post"), tnp.Neuron(1, 23), tnp.Neuron(0, 7, "resid.post")]
    z = iv.Zero().bind(planted, neurons, positions=positions)
    names = [h for h, _ in z.hooks()]
    assert sorted(names) == ["blocks.0.hook_resid_post", "blocks.1.mlp.hook_post"]
    edited, _ = capture(adapter, positions.batch, "blocks.0.hook_resid_post", z.hooks())
    assert torch.all(edited[..., [3, 7]][positions.mask] == 0)


def test_compose_equals_one_intervention_on_the_union(planted, positions):
    adapter = tnp.ModelAdapter(planted)
    a = iv.Zero().bind(planted, ["L1.N5"], positions=positions)
    b = iv.Zero().bind(planted, ["L1.N23"], positions=positions)
    both = iv.Zero().bind(planted, ["L1.N5", "L1.N23"], positions=positions)
    with torch.inference_mode():
        with a + b:
            composed = adapter.forward(positions.batch)
        with iv.compose(a, b):
            composed2 = adapter.forward(positions.batch)
        single = both.run(positions.batch)
        clean = adapter.forward(positions.batch)
    torch.testing.assert_close(composed, single)
    torch.testing.assert_close(composed2, single)
    assert not torch.allclose(single, clean)
    assert len((a + b + both).parts) == 3


def test_attribute_positions_cover_every_subtoken_of_attribute_words(planted, small_corpus):
    pos = iv.attribute_positions(planted, small_corpus[:8], "Number")
    assert pos.classes == ["Plur", "Sing"]
    for row, s in enumerate(small_corpus[:8]):
        for w, v in enumerate(s.attributes["Number"]):
            toks = pos.word[row] == w
            assert bool(toks.any())
            assert bool((pos.mask[row][toks] == (v is not None)).all())
    z = iv.Zero().bind(planted, ["L1.N5"], positions="attribute", corpus=small_corpus[:8], attribute="Number")
    assert torch.equal(z.mask, pos.mask)


def test_errors_name_the_problem(planted, positions):
    with pytest.raises(ValueError, match="out of range"):
        iv.Zero().bind(planted, ["L1.N999"])
    with pytest.raises(ValueError, match="layers \\[7\\] do not exist"):
        iv.Zero().bind(planted, ["L7.N1"])
    with pytest.raises(ValueError, match="listed twice"):
        iv.Zero().bind(planted, ["L1.N5", "L1.N5"])
    with pytest.raises(ValueError, match="not one of the supported sites"):
        iv.Zero().bind(planted, ["blocks.1.mlp.hook_nope:3"])
    with pytest.raises(ValueError, match="boolean"):
        iv.Zero().bind(planted, ["L1.N5"], positions=torch.rand(3, 4))
    with pytest.raises(ValueError, match="needs corpus"):
        iv.Zero().bind(planted, ["L1.N5"], positions="attribute")
    with pytest.raises(ValueError, match="shape"):
        iv.Translate().bind(planted, ["L1.N5", "L1.N6"], delta=torch.ones(3))
    with pytest.raises(ValueError, match="at least one neuron"):
        iv.Zero().bind(planted, [])
    bad = iv.Zero().bind(planted, ["L1.N5"], positions=torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"mask has shape \(2, 3\).*blocks.1.mlp.hook_post"):
        bad.run(positions.batch)


def test_hooks_never_leak(planted, positions):
    """Outputs and hook counts are exactly as before after normal use, an exception in the body, an exception
    raised inside a hook, and a failed evaluate_used."""
    adapter = tnp.ModelAdapter(planted)
    n_hooks = hook_count(planted)
    with torch.inference_mode():
        before = adapter.forward(positions.batch)
    z = iv.Zero().bind(planted, ["L1.N5", "L1.N23"], positions=positions)
    with z:
        assert hook_count(planted) > n_hooks
        with torch.inference_mode():
            during = adapter.forward(positions.batch)
    assert not torch.equal(during, before)
    with pytest.raises(RuntimeError, match="boom"):
        with z:
            raise RuntimeError("boom")
    bad = iv.Zero().bind(planted, ["L1.N5"], positions=torch.ones(1, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask"):
        with bad:
            adapter.forward(positions.batch)
    with pytest.raises(ValueError):
        bad.run(positions.batch)
    from tl_neuronprobe.interventions.readouts import IdentityReadout
    from tl_neuronprobe.evaluation.used import evaluate_used

    class Exploding(IdentityReadout):
        def compare(self, *args, **kwargs):
            raise RuntimeError("readout failed mid-sweep")

    corpus = tnp.testing.planted_corpus(20, seed=9)
    with pytest.raises(RuntimeError, match="mid-sweep"):
        evaluate_used(planted, corpus, "Number", [["L1.N5", "L1.N23"]],
                      used_config([1], readout=Exploding(), n_bootstrap=0), progress=False)
    assert hook_count(planted) == n_hooks
    with torch.inference_mode():
        after = adapter.forward(positions.batch)
    assert torch.equal(after, before)
    with z:  # reusable after all that
        with pytest.raises(RuntimeError, match="already active"):
            z.__enter__()
    assert hook_count(planted) == n_hooks


def test_attention_z_neurons_are_flattened_heads(planted, positions):
    adapter = tnp.ModelAdapter(planted)
    d_head = adapter.d_head
    neuron = tnp.Neuron(1, d_head + 3, "attn.z")  # head 1, dimension 3
    z = iv.SetValues(values=7.0).bind(planted, [neuron], positions)
    edited, _ = capture(adapter, positions.batch, "blocks.1.attn.hook_z", z.hooks())
    clean, _ = capture(adapter, positions.batch, "blocks.1.attn.hook_z")
    assert edited.ndim == 4
    assert torch.all(edited[:, :, 1, 3][positions.mask] == 7.0)
    edited = edited.clone()
    edited[:, :, 1, 3] = clean[:, :, 1, 3]
    assert torch.equal(edited, clean)
