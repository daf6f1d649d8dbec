"""evaluate_used(model, train, ..., test=corpus) and UsedConfig.antverg()'s sentence cap (issue 21, finding 4)."""

from __future__ import annotations

import numpy as np
import pytest

import tl_neuronprobe as tnp
from tl_neuronprobe.data.corpus import Corpus, Sentence
from tl_neuronprobe.evaluation.used import UsedConfig, UsedFit, evaluate_used
from tl_neuronprobe.data.extraction import ExtractConfig

from used_helpers import used_config


def FAST(ks):
    return used_config(ks, layer=1, n_bootstrap=0, bottom=False, n_random=0)


def _relabel(corpus: Corpus, attribute: str, mapping: dict | None) -> Corpus:
    """A copy of ``corpus`` with ``attribute``'s values renamed by ``mapping`` (None: the attribute removed)."""
    out = []
    for s in corpus.sentences:
        attrs = {k: list(v) for k, v in s.attributes.items() if mapping is not None or k != attribute}
        if mapping is not None:
            attrs[attribute] = [mapping.get(v, v) for v in s.attributes.get(attribute, [None] * len(s.words))]
        out.append(Sentence(list(s.words), attrs, s.id))
    return Corpus(out, f"{corpus.name}*")


def _hand_probeless(planted, train: Corpus) -> list[tnp.Neuron]:
    """Probeless fitted by hand on the training corpus's layer-1 word activations (last sub-token)."""
    acts = tnp.extract(planted, train, ExtractConfig(layers=[1], aggregation="last"), progress=False)
    X, y, _, idx = acts.dataset("Number", return_index=True)
    order = tnp.rankers.Probeless().fit(X.numpy(), y.numpy(), groups=acts.sentence_ids[idx]).order_
    return [acts.neurons[j] for j in order]


def test_test_corpus_is_evaluated_and_the_training_corpus_fitted(planted, planted_corpus):
    train, test = planted_corpus[:80], planted_corpus[120:170]
    got = evaluate_used(planted, train, "Number", {"probeless": "probeless"}, FAST([2, 4]), test=test,
                        progress=False).table
    by_hand = evaluate_used(planted, train, "Number", {"probeless": _hand_probeless(planted, train)}, FAST([2, 4]),
                            test=test, progress=False).table
    np.testing.assert_array_equal(got.value.to_numpy(), by_hand.value.to_numpy())
    assert got.value.max() > 0.5  # the planted Number neurons change the prediction
    n_test = sum(any(v is not None for v in s.attributes["Number"]) for s in test.sentences)
    assert (got.n_sentences == n_test).all()
    # control: the training corpus evaluated on itself gives other numbers (the test words are the ones read)
    same = evaluate_used(planted, train, "Number", {"probeless": "probeless"}, FAST([2, 4]), progress=False).table
    assert (same.n_sentences != n_test).all()


def test_test_corpus_checks_name_the_problem(planted, planted_corpus):
    train, test = planted_corpus[:40], planted_corpus[120:150]
    kw = dict(rankings={"r": ["L1.N5", "L1.N23"]}, config=FAST([1]), progress=False)
    with pytest.raises(KeyError, match=r"test corpus .* has no attribute 'Number'"):
        evaluate_used(planted, train, "Number", test=_relabel(test, "Number", None), **kw)
    with pytest.raises(ValueError, match=r"values never seen in training .*: Dual \(\d+ words\)"):
        evaluate_used(planted, train, "Number", test=_relabel(test, "Number", {"Plur": "Dual"}), **kw)
    with pytest.raises(TypeError, match="test= takes a Corpus"):
        evaluate_used(planted, train, "Number", test=["a sentence"], **kw)


def test_antverg_config_takes_a_smaller_sentence_cap(planted, planted_corpus):
    c = UsedConfig.antverg(n_sentences=300)
    assert c.n_sentences == 300 and c.min_forms == 100 and c.edit.alpha == "scaled"
    assert UsedConfig.antverg().n_sentences == 6500
    # end to end the cap does not stop the call: it goes on to the forms threshold, which the planted vocabulary
    # cannot meet
    with pytest.raises(ValueError, match=r"class value\(s\) remain"), pytest.warns(UserWarning, match="Plur .*Sing"):
        evaluate_used(planted, planted_corpus[:40], "Number", {"r": ["L1.N5", "L1.N23"]},
                      UsedConfig.antverg(ks=[1], n_sentences=30), progress=False)


def test_antverg_config_fits_rankers_by_name_as_published():
    """Under UsedConfig.antverg() a ranking given by name is the published estimator: Probeless's unweighted sum over
    class pairs (the default weights pairs by class shares), Linear's and Gaussian's published settings."""
    from tl_neuronprobe.evaluation._rankings import fit_ranker

    params = UsedConfig.antverg().fit.ranker_params
    assert UsedConfig().fit.ranker_params is None and UsedFit().ranker_params is None
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(600, int), np.ones(600, int), np.full(20, 2)]  # a 20-word class
    X = rng.normal(size=(len(y), 6))
    X[:, 1] += 0.6 * (y == 1)  # the big classes differ on neuron 1
    X[:, 4] += 6.0 * (y == 2)  # the tiny class alone moves neuron 4
    groups = np.arange(len(y))
    published = fit_ranker("probeless", X, y, groups, 0, params)
    default = fit_ranker("probeless", X, y, groups, 0)
    assert published.pair_weight == "uniform" and published.order_[0] == 4
    assert default.order_[0] == 1  # control: the default weighting is not what the preset fits
    linear = fit_ranker("linear", X, y, groups, 0, params)
    assert (linear.l2, linear.mass, linear.refine_k) == (1e-2, "weight", 0)  # Linear.from_preset("antverg")
    assert fit_ranker("gaussian", X, y, groups, 0, params).estimate == "published"
