"""Two kinds of encoded-but-unused neurons on the planted testbed, against the used ones and random neurons:
one with zero output weights, one whose write (into the very direction the unembedding reads) a later layer
cancels. A probe reads all of them; only the used ones change the model's predictions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

import tl_neuronprobe as tnp
from tl_neuronprobe import interventions as iv
from tl_neuronprobe.core.hooks import run_capture
from tl_neuronprobe.evaluation.used import Baselines, UsedConfig, evaluate_used
from tl_neuronprobe.testbeds.planted import planted_weights
from tl_neuronprobe.data.extraction import ExtractConfig


def _first(neurons, layer):
    return neurons + [tnp.Neuron(layer, i) for i in range(64) if tnp.Neuron(layer, i) not in neurons]


@pytest.fixture(scope="module")
def kinds(planted, planted_corpus):
    p = planted.planted
    rankings = {"used": _first(p.used["Number"], 1), "zero_weights": _first(p.unused["Number"], 1),
                "cancelled": _first(p.cancelled["Number"], 0)}
    config = UsedConfig(edit=iv.Translate(), ks=[1, 2], n_bootstrap=200, baselines=Baselines(bottom=False, n_random=3),
                        seed=0)
    return evaluate_used(planted, planted_corpus, "Number", rankings, config, progress=False).table


def _value(t, ranking, selection, k, metric="changed"):
    row = t[(t.ranking == ranking) & (t.selection == selection) & (t.k == k) & (t.metric == metric)]
    assert len(row) == 1
    return float(row.value.iloc[0])


def test_the_cancelled_neuron_writes_and_a_probe_reads_every_kind(planted, planted_corpus):
    weights, _, p = planted_weights()
    (writer,), (undo,) = p.cancelled["Number"], p.canceller["Number"]
    assert float(weights[f"blocks.{writer.layer}.mlp.W_out"][writer.index].norm()) > 0  # non-zero output weights
    assert float(weights[f"blocks.{undo.layer}.mlp.W_out"][undo.index].norm()) > 0
    acts = tnp.extract(planted, planted_corpus, ExtractConfig(site="mlp.post", layers=[0, 1]), progress=False)
    X, y, _ = acts.dataset("Number")
    for group in (p.used["Number"], p.unused["Number"], p.cancelled["Number"]):
        acc = cross_val_score(LogisticRegression(max_iter=500), X[:, acts.columns(group)].numpy(), y.numpy(), cv=3)
        assert acc.mean() > 0.95, (group, acc)


def test_used_neurons_change_predictions_neither_unused_kind_does(kinds):
    assert _value(kinds, "used", "top", 2) > 0.9
    assert _value(kinds, "used", "top", 2, "correct_lemma_wrong_value") > 0.4
    assert _value(kinds, "zero_weights", "top", 2) == 0.0
    assert _value(kinds, "cancelled", "top", 1) == 0.0
    assert _value(kinds, "cancelled", "top", 2) == 0.0


def test_random_neuron_control_does_not_look_used(kinds):
    for ranking in ("used", "cancelled"):
        for k in (1, 2):
            assert _value(kinds, ranking, "random", k) < 0.2, (ranking, k)
    assert _value(kinds, "used", "top", 2) - _value(kinds, "used", "random", 2) > 0.7


def test_the_cancellation_is_what_hides_the_write(planted, planted_corpus):
    """Freeze the canceller at its clean values and the same translation moves the unembedding's direction
    several times further: the write is real, a later layer undoes it."""
    p = planted.planted
    (writer,), (undo,) = p.cancelled["Number"], p.canceller["Number"]
    weights, _, _ = planted_weights()
    direction = weights[f"blocks.{writer.layer}.mlp.W_out"][writer.index]
    direction = direction / direction.norm()
    adapter = tnp.ModelAdapter(planted)
    pos = iv.attribute_positions(planted, planted_corpus[:48], "Number")
    acts = tnp.extract(planted, planted_corpus, ExtractConfig(site="mlp.post", layers=[writer.layer]), progress=False)
    X, y, _ = acts.dataset("Number")
    means = iv.class_means(X[:, acts.columns([writer])], y)
    last = f"blocks.{adapter.n_layers - 1}.hook_resid_post"
    with torch.inference_mode():
        clean = run_capture(adapter, pos.batch, [last, undo.hook_name])
        frozen_values = clean[undo.hook_name][..., [undo.index]]
        shift = {}
        for name, extra in (("live", None), ("frozen", iv.SetValues().bind(planted, [undo], values=frozen_values))):
            edit = iv.Translate().bind(planted, [writer], means=means, positions=pos)
            edit = edit if extra is None else edit + extra
            out = run_capture(adapter, pos.batch, [last], extra_hooks=edit.hooks())[last]
            shift[name] = float(((out - clean[last]) @ direction)[pos.mask].abs().mean())
    assert shift["frozen"] > 0.1
    assert shift["frozen"] > 3 * shift["live"], shift
