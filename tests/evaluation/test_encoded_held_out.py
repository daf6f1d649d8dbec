"""evaluate_encoded(acts, ..., test=other_acts): fit on one set of words, score on another (issue 21, finding 4)."""

from __future__ import annotations

import numpy as np
import pytest

import tl_neuronprobe as tnp
from tl_neuronprobe.evaluation.encoded import EncodedConfig, evaluate_encoded
from tl_neuronprobe.probes import LogisticProbes

from planted_arrays import planted_activations

KS = [1, 2, 4, 8]


def _part(acts: tnp.Activations, rows: np.ndarray, **attributes) -> tnp.Activations:
    """The words ``rows`` of ``acts`` as activations of their own (``attributes`` replace some annotations)."""
    attrs = {k: [v[i] for i in rows] for k, v in acts.attributes.items()}
    attrs.update(attributes)
    return tnp.Activations(acts.X[rows], acts.neurons, [acts.words[i] for i in rows], acts.sentence_ids[rows], attrs)


@pytest.fixture(scope="module")
def train_test():
    """One planted set split by sentence: the first 60% of the sentences train, the rest test."""
    acts, d = planted_activations(seed=0, n=1600)
    cut = np.quantile(acts.sentence_ids, 0.6)
    return _part(acts, np.flatnonzero(acts.sentence_ids <= cut)), _part(acts, np.flatnonzero(acts.sentence_ids > cut)), d


def _hand_loop(train, test, attribute, ranker, seed=0):
    """Fit the ranker and one logistic probe per (selection, k) on ``train``, score them on ``test``."""
    XA, yA, classes, ia = train.dataset(attribute, return_index=True, min_count=10)
    XB, yB, found, _ = test.dataset(attribute, return_index=True)
    yB = np.asarray([classes.index(found[j]) for j in yB.numpy()])
    groups = train.sentence_ids[ia]
    order = ranker.fit(XA.numpy(), yA.numpy(), groups=groups).order_
    rand = np.random.default_rng(seed).permutation(XA.shape[1])
    prefixes = {"top": order, "bottom": order[::-1], "random": rand}
    subsets = [prefixes[sel][:k] for sel in prefixes for k in KS]
    lp = LogisticProbes(seed=seed).fit(XA.numpy(), yA.numpy(), subsets, groups=groups)
    scores = lp.subset_scores(XB.numpy(), yB)
    return {(sel, k): float(scores[i * len(KS) + j]) for i, sel in enumerate(prefixes) for j, k in enumerate(KS)}


def test_numbers_equal_a_hand_written_fit_on_a_score_on_b_loop(train_test):
    train, test, d = train_test
    result = evaluate_encoded(train, "upos", ["probeless"], EncodedConfig(ks=KS, probes=["logistic"], control=False),
                              test=test)
    expected = _hand_loop(train, test, "upos", tnp.rankers.Probeless())
    got = {(r.selection, r.k): r.accuracy for r in result.table.itertuples()}
    assert got == pytest.approx(expected, abs=1e-9)
    n_test = sum(v is not None for v in test.attributes["upos"])
    assert result.extra["n_test"] == n_test and result.extra["n_train"] == len(train.attributes["upos"])
    assert set(result.orders["probeless"][:4]) == set(d.planted)


def test_the_given_test_words_are_the_ones_scored(train_test):
    """Control: the same call with the test labels shuffled scores near chance, so the test data are used."""
    train, test, _ = train_test
    shuffled = list(np.random.default_rng(0).permutation(np.asarray(test.attributes["upos"], dtype=object)))
    config = EncodedConfig(ks=[4], probes=("logistic", "gaussian"), control=True)
    real = evaluate_encoded(train, "upos", ["probeless"], config, test=test).table
    noise = evaluate_encoded(train, "upos", ["probeless"], config,
                             test=_part(test, np.arange(test.n_words), upos=shuffled)).table
    top = lambda t: t[t.selection == "top"].set_index("probe").accuracy  # noqa: E731
    assert (top(real) > 0.85).all()
    assert (top(noise) < 0.45).all()
    assert (real[real.selection == "top"].selectivity > 0.4).all()


def test_test_data_checks_name_the_problem(train_test):
    train, test, _ = train_test
    kw = dict(rankers=["probeless"], config=EncodedConfig(ks=[1], probes=["logistic"], control=False))
    no_attr = _part(test, np.arange(test.n_words))
    del no_attr.attributes["upos"]
    with pytest.raises(KeyError, match="test activations have no attribute 'upos'"):
        evaluate_encoded(train, "upos", test=no_attr, **kw)
    labels = list(test.attributes["upos"])
    labels[:3] = ["C9"] * 3
    with pytest.raises(ValueError, match=r"classes never seen in training: C9 \(3 words\)"):
        evaluate_encoded(train, "upos", test=_part(test, np.arange(test.n_words), upos=labels), **kw)
    with pytest.raises(ValueError, match="40 neurons in training, 39 in the test"):
        evaluate_encoded(train, "upos", test=test.select(neurons=test.neurons[:39]), **kw)
    with pytest.raises(ValueError, match=r"column 0 is L0\.N0 in training and L0\.N1 in the test"):
        evaluate_encoded(train, "upos", test=test.select(neurons=test.neurons[1:] + test.neurons[:1]), **kw)
    with pytest.raises(TypeError, match="test= takes Activations"):
        evaluate_encoded(train, "upos", test=np.zeros((3, 40)), **kw)


def test_test_words_of_a_class_below_min_count_are_dropped_with_a_warning(train_test):
    train, test, _ = train_test
    labels = list(train.attributes["upos"])
    rare = [i for i, v in enumerate(labels) if v == "C3"][5:]
    for i in rare:
        labels[i] = "C2"  # training keeps five C3 words, below min_count=10
    few = _part(train, np.arange(train.n_words), upos=labels)
    with pytest.warns(UserWarning, match=r"fewer than 10 training words dropped: C3 \(\d+ words\)"):
        result = evaluate_encoded(few, "upos", ["probeless"], EncodedConfig(ks=[1], probes=["logistic"], control=False),
                                  test=test)
    assert result.extra["classes"] == ["C0", "C1", "C2"]


def test_cli_scores_on_saved_test_activations(train_test, tmp_path):
    from tl_neuronprobe.cli import main as run

    train, test, _ = train_test
    train.save(tmp_path / "train")
    test.save(tmp_path / "test")
    assert run(["evaluate-encoded", str(tmp_path / "train"), "--attribute", "upos", "--rankers", "probeless",
                "--ks", "1,4", "--probes", "logistic", "--no-control", "--test-activations", str(tmp_path / "test"),
                "--out-dir", str(tmp_path / "out"), "--no-progress"]) == 0
    import pandas as pd

    saved = pd.read_csv(tmp_path / "out" / "encoded.csv")
    direct = evaluate_encoded(train, "upos", ["probeless"], EncodedConfig(ks=[1, 4], probes=["logistic"], control=False),
                              test=test)
    np.testing.assert_allclose(saved.accuracy.to_numpy(), direct.table.accuracy.to_numpy())
