"""attribute_used on the planted testbed: the used Number neurons come first, the encoded-but-unused ones (zero
output weights, or cancelled downstream) score near zero, and label-free or random scores fail the same check;
the estimate agrees with exact single-neuron patching (first order for identity and agreement, second order for
divergence); hooks never stay behind; same seed, same result; clear errors; the config round-trips."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import tl_neuronprobe as tnp
from tl_neuronprobe import interventions as iv
from tl_neuronprobe.core.config import Config
from tl_neuronprobe.data.extraction import ExtractConfig
from tl_neuronprobe.evaluation.attribution import Attribution, AttributionConfig, Verify, exact_effects
from tl_neuronprobe.evaluation.used import Baselines, UsedConfig, evaluate_used

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "interventions"))
from used_helpers import hook_count  # noqa: E402

LAYERS = (0, 1)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread on a shared machine; restored after the module."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def corpus():
    return tnp.testing.planted_corpus(120, seed=0)


def attribute(model, corpus, edit=None, readout=None, verify=Verify(top=0, n_random=0), **fields):
    config = AttributionConfig(edit=edit if edit is not None else iv.Mean(), readout=readout, layers=LAYERS,
                               verify=verify, **fields)
    return tnp.attribute_used(model, corpus, "Number", config, progress=False)


@pytest.fixture(scope="module")
def identity(planted, corpus):
    """Zero and mean edits read by the identity readout; the zero run verifies 10 top and 20 random neurons."""
    return {"zero": attribute(planted, corpus, iv.Zero(), iv.Identity(), Verify(top=10, n_random=20)),
            "mean": attribute(planted, corpus, iv.Mean(), iv.Identity())}


@pytest.fixture(scope="module")
def divergence(planted, corpus):
    return attribute(planted, corpus, iv.Zero(), iv.Divergence(), Verify(top=10, n_random=20))


def finds_the_used_neurons(neurons, scores, planted) -> bool:
    """The planted check: the used Number neurons hold the top 2 by |score|, and every unused or cancelled
    Number neuron scores under 5% of the smaller used score."""
    p = planted.planted
    by = {str(n): abs(float(s)) for n, s in zip(neurons, scores)}
    top = sorted(by, key=lambda n: -by[n])[:2]
    used = [str(n) for n in p.used["Number"]]
    floor = min(by[n] for n in used)
    quiet = [str(n) for n in p.unused["Number"] + p.cancelled["Number"]]
    return sorted(top) == sorted(used) and all(by[n] < 0.05 * floor for n in quiet)


# ------------------------------------------------------------------------------------------- planted truth
@pytest.mark.parametrize("edit", ["zero", "mean"])
def test_used_number_neurons_come_first_unused_and_cancelled_near_zero(identity, planted, edit):
    attr = identity[edit]
    assert isinstance(attr, Attribution) and attr.kind == "attribution"
    assert len(attr) == 2 * 64 and list(attr.table.columns) == ["neuron", "layer", "site", "score", "rank",
                                                                "exact", "verified"]
    assert finds_the_used_neurons(attr.neurons, attr.scores_, planted)
    assert sorted(attr.rankings["attribution"][:2]) == sorted(planted.planted.used["Number"])
    assert [attr.neurons[i] for i in attr.order_] == attr.rankings["attribution"]
    assert attr.extra["readout"] == "identity" and attr.extra["metric"] == "logprob_drop"
    assert attr.extra["order"] == 1 and attr.extra["forward_passes"] == attr.extra["batches"]


def test_random_and_label_free_scores_fail_the_same_check(identity, planted, corpus):
    """Controls: the same scores shuffled, and a label-free score (the size of the zero edit itself: mean
    |activation| at the attribute words, no gradient) do not pass. The loud decoys win the label-free one."""
    attr = identity["zero"]
    rng = np.random.default_rng(0)
    assert not any(finds_the_used_neurons(attr.neurons, rng.permutation(attr.scores_), planted) for _ in range(20))
    acts = tnp.extract(planted, corpus, ExtractConfig(site="mlp.post", layers=LAYERS), progress=False)
    X, _, _ = acts.dataset("Number")
    size = X[:, acts.columns(attr.neurons)].abs().mean(0).numpy()
    assert not finds_the_used_neurons(attr.neurons, size, planted)
    loudest = {attr.neurons[i] for i in np.argsort(-size)[:2]}
    assert loudest <= set(planted.planted.decoys)


def test_estimate_agrees_with_exact_patching_on_the_verified_neurons(identity):
    attr = identity["zero"]
    t = attr.table
    assert int(t.verified.sum()) == 30 == attr.extra["n_verified"]
    assert t.exact[t.verified].notna().all() and t.exact[~t.verified].isna().all()
    assert attr.extra["spearman"] > 0.9, attr.extra
    assert attr.extra["top_precision"] >= 0.8, attr.extra
    assert attr.extra["exact_forward_passes"] > 0 and attr.extra["backward_passes"] == attr.extra["batches"]
    # AtP*'s correction: the verified neurons are ranked by their exact effect
    done = t[t.verified].sort_values("rank")
    assert np.all(np.diff(done.exact.abs().to_numpy()) <= 0)


def test_exact_effects_are_the_sweeps_single_neuron_edits(planted, corpus):
    """exact_effects gives, for each neuron, what evaluate_used measures editing that neuron alone (k = 1)."""
    config = AttributionConfig(edit=iv.Zero(), readout=iv.Identity())
    neurons = ["L1.N5", "L1.N11", "L0.N13"]
    effects = exact_effects(planted, corpus, "Number", neurons, config)
    assert list(effects.neuron) == neurons and effects.attrs["metric"] == "logprob_drop"
    assert list(effects.columns[:4]) == ["neuron", "layer", "site", "exact"]
    np.testing.assert_array_equal(effects.exact, effects.logprob_drop)
    used = evaluate_used(planted, corpus, "Number", {n: [n] for n in neurons},
                         UsedConfig(edit=iv.Zero(), readout=iv.Identity(), ks=[1], n_bootstrap=0,
                                    baselines=Baselines(bottom=False, n_random=0)), progress=False).table
    for n, changed in zip(neurons, effects.changed):
        assert used[(used.ranking == n) & (used.metric == "changed")].value.iloc[0] == pytest.approx(changed)
    assert abs(effects.exact[0]) > 100 * abs(effects.exact[2]) and effects.exact[1] == 0.0


# ------------------------------------------------------------------------------------------- second order
def test_divergence_is_estimated_to_second_order_and_finds_the_used_neurons(divergence, planted):
    attr = divergence
    assert attr.extra["readout"] == "divergence" and attr.extra["metric"] == "kl" and attr.extra["order"] == 2
    assert (attr.scores_ >= 0).all()  # 1/2 E[(d . J^T v)^2]
    assert finds_the_used_neurons(attr.neurons, attr.scores_, planted)
    assert attr.extra["spearman"] > 0.9, attr.extra
    assert attr.extra["backward_passes"] == attr.extra["batches"] * AttributionConfig().n_samples


def test_embedding_distance_and_translate_paths(planted, corpus):
    attr = attribute(planted, corpus[:60], iv.Translate(), iv.EmbeddingDistance(), Verify(top=4, n_random=4))
    assert attr.extra["metric"] == "embedding_distance" and attr.extra["spearman"] > 0.8
    assert sorted(attr.rankings["attribution"][:2]) == sorted(planted.planted.used["Number"])


def test_same_seed_same_result_other_seed_same_top(divergence, planted, corpus):
    again = attribute(planted, corpus, iv.Zero(), iv.Divergence(), Verify(top=10, n_random=20))
    np.testing.assert_array_equal(again.scores_, divergence.scores_)
    assert again.rankings == divergence.rankings
    other = attribute(planted, corpus, iv.Zero(), iv.Divergence(), seed=1)
    assert not np.array_equal(other.scores_, divergence.scores_)
    assert other.rankings["attribution"][:2] == sorted(divergence.rankings["attribution"][:2],
                                                       key=lambda n: -other.scores_[other.neurons.index(n)])


# ------------------------------------------------------------------------------------------- other readouts
def nll_of_clean_prediction(clean_logits, edited_logits):
    """A module-level metric (so the config round-trips): the clean top token's negative log-probability."""
    top = clean_logits.argmax(-1, keepdim=True)
    return -edited_logits.log_softmax(-1).gather(-1, top).squeeze(-1)


def squared_logit_change(clean_logits, edited_logits):
    return (edited_logits - clean_logits).pow(2).mean(-1)


def test_callable_metric_and_a_warning_when_its_gradient_vanishes(planted, corpus):
    attr = attribute(planted, corpus[:40], iv.Zero(), nll_of_clean_prediction, Verify(top=4, n_random=4))
    assert attr.extra["metric"] == "nll_of_clean_prediction" and attr.extra["spearman"] > 0.8
    assert sorted(attr.rankings["attribution"][:2]) == sorted(planted.planted.used["Number"])
    with pytest.warns(UserWarning, match="squared_logit_change.*zero everywhere"):
        flat = attribute(planted, corpus[:40], iv.Zero(), squared_logit_change)
    assert (flat.scores_ == 0).all()


def test_agreement_readout_on_the_trained_decoder():
    model = tnp.testing.train_agreement_decoder(seed=0)
    corpus = tnp.Corpus.synthetic(96, seed=5)
    config = AttributionConfig(edit=iv.Zero(), layers=(0,), verify=Verify(top=8, n_random=8))
    attr = tnp.attribute_used(model, corpus, "Number", config, progress=False)
    assert attr.extra["readout"] == "agreement" and attr.extra["metric"] == "logit_diff_drop"
    assert attr.extra["spearman"] > 0.9 and attr.extra["top_precision"] >= 0.75, attr.extra


def test_integrated_gradients_run_more_passes(planted, corpus):
    attr = attribute(planted, corpus[:40], iv.Zero(), iv.Identity(), ig_steps=2)
    assert attr.extra["forward_passes"] == attr.extra["batches"] * (1 + 2 * len(LAYERS))
    assert np.isfinite(attr.scores_).all()


# ------------------------------------------------------------------------------------------- contract
def test_hooks_and_parameter_gradients_are_left_as_found(planted, corpus):
    before = hook_count(planted)
    grads = [p.requires_grad for p in planted.parameters()]
    attribute(planted, corpus[:20], iv.Zero(), iv.Divergence(metrics=("hidden_distance",)), n_samples=2)

    def broken(clean_logits, edited_logits):
        raise RuntimeError("metric failed")

    with pytest.raises(RuntimeError, match="metric failed"):
        attribute(planted, corpus[:20], iv.Zero(), broken)
    assert hook_count(planted) == before
    assert [p.requires_grad for p in planted.parameters()] == grads


def test_the_ranking_goes_where_encoded_rankings_go(identity, planted, corpus, tmp_path):
    attr = identity["zero"]
    config = UsedConfig(edit=iv.Zero(), readout=iv.Identity(), ks=[2], n_bootstrap=0,
                        baselines=Baselines(bottom=False, n_random=1))
    used = evaluate_used(planted, corpus[:40], "Number", attr, config, progress=False)
    assert set(used.table.ranking) == {"attribution"}
    back = tnp.load_result(attr.save(tmp_path / "attribution.csv"))
    assert isinstance(back, Attribution) and back.rankings == attr.rankings
    np.testing.assert_allclose(back.scores_, attr.scores_)
    assert back.extra["metric"] == "logprob_drop"
    attr.plot(tmp_path / "attribution.png")
    assert (tmp_path / "attribution.png").stat().st_size > 0


@pytest.mark.parametrize("change, error, match", [
    (dict(config=AttributionConfig(layers=(5,))), ValueError, r"layers \[5\] do not exist"),
    (dict(attribute="Gender"), KeyError, "Gender"),
    (dict(corpus="empty"), ValueError, "empty"),
    (dict(config=AttributionConfig(readout=iv.Divergence(), ig_steps=3, layers=(1,))), ValueError, "first-order"),
    (dict(config=UsedConfig()), TypeError, "AttributionConfig"),
])
def test_clear_errors(planted, corpus, change, error, match):
    args = dict(corpus=corpus[:10], attribute="Number", config=AttributionConfig(layers=(1,)))
    args.update(change)
    if args["corpus"] == "empty":
        args["corpus"] = corpus[:0]
    with pytest.raises(error, match=match):
        tnp.attribute_used(planted, args["corpus"], args["attribute"], args["config"], progress=False)


def test_config_validates_and_round_trips():
    with pytest.raises(ValueError, match="site"):
        AttributionConfig(site="mlp.nowhere")
    for bad in (dict(n_samples=0), dict(ig_steps=0), dict(layers=(-1,)), dict(edit="zero"),
                dict(positions="all", edit=iv.Translate()), dict(verify=(20, 20))):
        with pytest.raises(ValueError):
            AttributionConfig(**bad)
    with pytest.raises(ValueError, match="Verify.top"):
        Verify(top=-1)
    configs = [AttributionConfig(), AttributionConfig(edit=iv.Translate(alpha="scaled"), readout=iv.Divergence(
        metrics=("kl",)), layers=[0, 1], verify=Verify(top=3, n_random=0), n_sentences=50, seed=2),
        AttributionConfig(readout=nll_of_clean_prediction, layers=1)]
    for config in configs:
        assert Config.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert configs[2].layers == (1,)


def test_neurons_for_exact_effects_are_checked(planted, corpus):
    with pytest.raises(ValueError, match="empty"):
        exact_effects(planted, corpus[:10], "Number", [])
    with pytest.raises(ValueError, match="twice"):
        exact_effects(planted, corpus[:10], "Number", ["L1.N5", "L1.N5"])
    with pytest.raises(ValueError, match="out of range"):
        exact_effects(planted, corpus[:10], "Number", ["L1.N500"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(exact_effects(planted, corpus[:10], "Number", "L1.N5")) == 1
