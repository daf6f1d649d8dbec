"""Typed results as inputs: an EncodedResult, a ranking file or a dict as the used evaluation's rankings; the
compare job from saved results, re-run from its summary.json (issue 22)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tl_neuronprobe.core.config import read_summary
from tl_neuronprobe.core.neurons import Neuron
from tl_neuronprobe.evaluation._rankings import ranking_items, read_ranking_file
from tl_neuronprobe.evaluation.compare import CompareConfig, Comparison
from tl_neuronprobe.evaluation.encoded import EncodedConfig, evaluate_encoded
from tl_neuronprobe.evaluation.results import load_result, mark, save_table

from planted_arrays import planted_activations


@pytest.fixture(scope="module")
def result():
    acts, _ = planted_activations(seed=0, n=500)
    return evaluate_encoded(acts, "upos", ["probeless", "random"],
                            EncodedConfig(ks=[1, 4], probes=["logistic"], control=False))


def test_an_encoded_result_is_a_set_of_rankings(result, tmp_path):
    items = dict(ranking_items(result))
    assert set(items) == {"probeless", "random"} and items["probeless"] == result.rankings["probeless"]
    assert all(isinstance(n, Neuron) for n in items["random"])
    with pytest.raises(TypeError, match="pass the EncodedResult itself"):
        ranking_items(result.table)
    # a ranking file, alone or under a name, and the top-neurons CSV the encoded job writes
    (tmp_path / "mine.txt").write_text("L0.N3\nL1.N5\n")
    assert ranking_items(str(tmp_path / "mine.txt")) == [("mine", [Neuron(0, 3), Neuron(1, 5)])]
    assert dict(ranking_items({"x": tmp_path / "mine.txt"}))["x"] == [Neuron(0, 3), Neuron(1, 5)]
    result.top_neurons(4).to_csv(tmp_path / "top.csv", index=False)
    from_file = read_ranking_file(tmp_path / "top.csv")
    assert from_file == {name: order[:4] for name, order in result.rankings.items()}
    # control: a plain list of neurons is one unnamed ranking
    assert ranking_items([Neuron(0, 1), Neuron(0, 2)]) == [(None, [Neuron(0, 1), Neuron(0, 2)])]


def _used_table() -> pd.DataFrame:
    rows = [(r, s, k, v * k) for r, v in (("probeless", 0.3), ("random", 0.01)) for s in ("top", "random")
            for k in (1, 4)]
    table = pd.DataFrame([dict(attribute="upos", edit="zero", readout="divergence", ranking=r, selection=s, k=k,
                               metric="kl", value=v, ci_low=v - 0.001, ci_high=v + 0.001) for r, s, k, v in rows])
    return mark(table, "used", "upos")


def test_compare_job_from_saved_results_and_its_rerun(result, tmp_path):
    from tl_neuronprobe.cli import main
    from tl_neuronprobe.workflows import compare_job

    result.save(tmp_path / "encoded.csv")
    save_table(_used_table(), tmp_path / "used.csv")
    assert main(["compare", "--encoded", str(tmp_path / "encoded.csv"), "--used", str(tmp_path / "used.csv"),
                 "--tol", "0.01", "--out-dir", str(tmp_path / "cmp")]) == 0
    saved = load_result(tmp_path / "cmp" / "compare.csv")
    assert isinstance(saved, Comparison) and saved.attribute == "upos"
    assert (tmp_path / "cmp" / "compare.txt").read_text().strip() == saved.summary
    stage, inputs, config = read_summary(tmp_path / "cmp" / "summary.json")
    assert stage == "compare" and config == CompareConfig(tol=0.01)
    again = compare_job(**{**inputs, "out_dir": str(tmp_path / "again")}, config=config, progress=False)
    assert again.summary == saved.summary
    pd.testing.assert_frame_equal(again.per_k, saved.per_k, check_dtype=False)
    assert json.loads((tmp_path / "again" / "summary.json").read_text())["inputs"]["used"] == str(tmp_path / "used.csv")
