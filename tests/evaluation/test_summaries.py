"""What the summaries say: "better than random" from the intervals, one legend entry per line, a log k axis, no
silent averaging over attributes, the control task's own chance level beside selectivity (issue 21, finding 3)."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest

import tl_neuronprobe.evaluation.encoded as enc_module
from tl_neuronprobe.evaluation.compare import CompareConfig, Comparison, compare_encoded_used
from tl_neuronprobe.evaluation.controls import control_labels
from tl_neuronprobe.evaluation.encoded import EncodedConfig, evaluate_encoded
from tl_neuronprobe.evaluation.plots import RANDOM_BASELINE, plot_used
from tl_neuronprobe.evaluation.results import kind_of

from planted_arrays import planted_activations

matplotlib.use("Agg")


def _used(rows: list[tuple], attribute: str = "Number") -> pd.DataFrame:
    """A used table from (ranking, selection, k, value, ci_low, ci_high) rows, as evaluate_used writes it."""
    return pd.DataFrame([dict(attribute=attribute, edit="translate", readout="divergence", ranking=r, selection=s,
                              k=k, metric="kl", value=v, ci_low=lo, ci_high=hi, n_units=50, n_sentences=20)
                         for r, s, k, v, lo, hi in rows])


def _encoded(rankings, ks, attribute: str = "Number") -> pd.DataFrame:
    return pd.DataFrame([dict(attribute=attribute, ranking=r, probe="logistic", selection="top", k=k,
                              accuracy=0.9 - 0.1 * i) for i, r in enumerate(rankings) for k in ks])


#: the issue's case: linear at k=1 changes the model by 0.0025 (CI 0.0023-0.0027), random neurons by 0.00004
ISSUE_CASE = [("linear", "top", 1, 0.0025, 0.0023, 0.0027), ("linear", "random", 1, 0.00004, 0.00001, 0.00008)]


def test_better_than_random_is_decided_by_the_intervals():
    cmp = compare_encoded_used(_encoded(["linear"], [1]), _used(ISSUE_CASE))
    row = cmp.per_k.set_index("k").loc[1]
    assert row["better_than_random"] == "linear" and row["not_better_than_random"] == ""
    assert "No better than random" not in cmp.summary
    assert "Every ranking's top-k neurons change the model more than random neurons" in cmp.summary
    assert "lower bound above their upper bound" in cmp.summary  # the rule is said in the text
    # control: the same point value with an interval reaching into the random interval is not better than random
    overlap = [("linear", "top", 1, 0.0025, 0.00005, 0.005), ISSUE_CASE[1]]
    cmp = compare_encoded_used(_encoded(["linear"], [1]), _used(overlap))
    assert cmp.per_k.set_index("k").loc[1, "not_better_than_random"] == "linear"
    assert "No better than random neurons of the same k" in cmp.summary and "linear (1/1 k values)" in cmp.summary


def test_disagreement_is_decided_by_the_intervals():
    """Linear encodes best but probeless changes the model three times as much, on divergence's small scale."""
    rows = [("linear", "top", 1, 0.0010, 0.0009, 0.0011), ("probeless", "top", 1, 0.0030, 0.0028, 0.0032)]
    cmp = compare_encoded_used(_encoded(["linear", "probeless"], [1]), _used(rows))
    assert bool(cmp.per_k.set_index("k").loc[1, "disagree"])
    assert "disagree at k = 1" in cmp.summary and "lies wholly above the best encoder's" in cmp.summary
    # control: the same points with overlapping intervals are no disagreement
    rows[1] = ("probeless", "top", 1, 0.0030, 0.0005, 0.0050)
    cmp = compare_encoded_used(_encoded(["linear", "probeless"], [1]), _used(rows))
    assert not bool(cmp.per_k.set_index("k").loc[1, "disagree"])
    assert "At no k does another ranking change the model more" in cmp.summary


def test_without_intervals_the_summary_names_the_point_rule():
    rows = [(r, s, k, v, np.nan, np.nan) for r, s, k, v, _, _ in ISSUE_CASE]
    cmp = compare_encoded_used(_encoded(["linear"], [1]), _used(rows), CompareConfig(tol=0.001))
    assert "more than 0.001 above the random neurons" in cmp.summary
    assert cmp.per_k.set_index("k").loc[1, "better_than_random"] == "linear"


def test_a_missing_attribute_raises_instead_of_averaging():
    # the used table is about Number, the encoded one about Tense only: comparing them averaged Tense's rows
    with pytest.raises(KeyError, match=r"'Number' is not in the encoded table; it has \['Tense'\]"):
        compare_encoded_used(_encoded(["linear"], [1], "Tense"), _used(ISSUE_CASE))
    used = pd.concat([_used(ISSUE_CASE, "Number"), _used(ISSUE_CASE, "Tense")])
    with pytest.raises(ValueError, match="several attributes"):
        compare_encoded_used(_encoded(["linear"], [1]), used)
    with pytest.raises(KeyError, match=r"'Person' is not in the used table; it has \['Number', 'Tense'\]"):
        compare_encoded_used(_encoded(["linear"], [1]), used, CompareConfig(attribute="Person"))
    # control: the attribute that is there gives its own rows only
    both = pd.concat([_encoded(["linear"], [1], "Number"), _encoded(["linear"], [1], "Tense")])
    cmp = compare_encoded_used(both, used, CompareConfig(attribute="Tense"))
    assert cmp.attribute == "Tense" and cmp.per_k.attrs["attribute"] == "Tense"


def test_comparison_tables_say_what_they_are(tmp_path):
    cmp = compare_encoded_used(_encoded(["linear"], [1]), _used(ISSUE_CASE))
    assert isinstance(cmp, Comparison) and cmp.kind == "compare" and str(cmp) == cmp.summary
    assert (kind_of(cmp.table), kind_of(cmp.per_k)) == ("compare", "compare_per_k")
    assert cmp.attribute == "Number" and cmp.table.attrs["attribute"] == "Number"
    # saved and loaded, the comparison comes back whole: per-k table and summary are derived from its table
    from tl_neuronprobe.evaluation.results import load_result

    back = load_result(cmp.save(tmp_path / "cmp.csv"))
    assert isinstance(back, Comparison) and back.summary == cmp.summary
    pd.testing.assert_frame_equal(back.per_k, cmp.per_k, check_dtype=False)


def _legend_labels(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def _lines_labels(ax) -> list[str]:
    return [ln.get_label() for ln in ax.get_lines()]


def test_used_plot_one_legend_entry_per_line_and_a_log_k_axis():
    ks = [1, 2, 5, 10, 20, 50, 100]
    rows = []
    for r, top in (("linear", 0.3), ("random", 0.01)):  # a ranking named "random" (the Random ranker's order)
        rows += [(r, "top", k, top * np.log1p(k), 0.0, 1.0) for k in ks]
        rows += [(r, "random", k, 0.005 * np.log1p(k), 0.0, 0.1) for k in ks]
    fig = plot_used(_used(rows))
    ax = fig.axes[0]
    labels, lines = _legend_labels(ax), _lines_labels(ax)
    assert len(labels) == len(set(labels)) == len(lines)  # every line has its own entry
    assert not any(lab.startswith("_") for lab in lines)
    assert RANDOM_BASELINE in labels and "random" in labels  # the baseline and the ranking, told apart
    assert ax.get_xscale() == "log"
    # control: ks within a decade keep a linear axis
    small = [row for row in rows if row[2] <= 5]
    assert plot_used(_used(small)).axes[0].get_xscale() == "linear"
    matplotlib.pyplot.close("all")


def test_compare_plot_tells_the_baseline_from_a_random_ranking():
    ks = [1, 10, 100]
    rows = [(r, s, k, v * k, 0.0, 0.0) for r, v in (("linear", 0.3), ("random", 0.01)) for s in ("top", "random")
            for k in ks]
    cmp = compare_encoded_used(_encoded(["linear", "random"], ks), _used(rows))
    ax = cmp.plot().axes[1]
    labels = _legend_labels(ax)
    assert len(labels) == len(set(labels)) == len(ax.get_lines()) and RANDOM_BASELINE in labels
    assert ax.get_xscale() == "log"
    matplotlib.pyplot.close("all")


def test_selectivity_has_both_chance_levels(monkeypatch):
    """``control_chance`` is the majority-class rate of the control labels on the held-out words."""
    acts, _ = planted_activations(seed=1, n=500)
    seen = {}
    real = enc_module.split_indices

    def spy(n, test_size, **kw):
        seen["tr"], seen["te"] = real(n, test_size, **kw)
        return seen["tr"], seen["te"]

    monkeypatch.setattr(enc_module, "split_indices", spy)
    table = evaluate_encoded(acts, "upos", ["probeless"], EncodedConfig(ks=[2], probes=["logistic"], seed=0)).table
    cols = list(table.columns)
    assert cols.index("control_chance") == cols.index("chance") + 1 and "selectivity" in cols
    X, y, classes, idx = acts.dataset("upos", return_index=True, min_count=10)
    control = control_labels([acts.words[i] for i in idx], y.numpy(), seed=0)[seen["te"]]
    expected = np.unique(control, return_counts=True)[1].max() / len(control)
    assert table["control_chance"].unique().tolist() == [pytest.approx(expected)]
    # control: the task's chance is another number here, so the column is not a copy of it
    task = np.unique(y.numpy()[seen["te"]], return_counts=True)[1].max() / len(seen["te"])
    assert table["chance"].iloc[0] == pytest.approx(task) and abs(task - expected) > 1e-3
    no_control = evaluate_encoded(acts, "upos", ["probeless"], EncodedConfig(ks=[2], probes=["logistic"], control=False)).table
    assert no_control["control_chance"].isna().all()
