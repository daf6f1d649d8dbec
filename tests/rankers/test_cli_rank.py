"""`tl-neuronprobe rank` / `evaluate-encoded` on saved activations, and the demo stage."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tl_neuronprobe import workflows
from tl_neuronprobe.cli import main as _run

from planted_arrays import planted_activations


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    acts, d = planted_activations(n=800)
    path = tmp_path_factory.mktemp("acts") / "acts"
    acts.save(path)
    return path, d


def test_rank_command(saved, tmp_path):
    path, d = saved
    assert _run(["rank", str(path), "--attribute", "upos", "--rankers", "probeless,linear", "--k", "4",
                 "--out-dir", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / "rank_probeless.csv")
    assert set(table.column[:4]) == set(d.planted)
    summary = json.loads((tmp_path / "rank_summary.json").read_text())
    assert len(summary["rankers"]["linear"]["top"]) == 4
    assert (tmp_path / "per_class_probeless.csv").exists()
    # the run can be repeated from its summary.json: same stage, inputs and config
    from tl_neuronprobe.core.config import read_summary

    stage, inputs, config = read_summary(tmp_path / "summary.json")
    assert stage == "rank" and inputs["attribute"] == "upos" and config == workflows.RankConfig(
        rankers=("probeless", "linear"), k=4)
    again = workflows.rank_job(**{**inputs, "out_dir": str(tmp_path / "again")}, config=config, progress=False)
    assert all(again["rankers"][r]["top"] == summary["rankers"][r]["top"] for r in ("probeless", "linear"))


def test_evaluate_encoded_command(saved, tmp_path):
    path, d = saved
    assert _run(["evaluate-encoded", str(path), "--attribute", "upos", "--rankers", "probeless,random",
                 "--ks", "1,4", "--probes", "logistic", "--out-dir", str(tmp_path), "--no-progress"]) == 0
    table = pd.read_csv(tmp_path / "encoded.csv")
    assert set(table.ranking) == {"probeless", "random"} and set(table.k) == {1, 4}
    for f in ("encoded.png", "encoded_layers.csv", "encoded_agreement.csv", "encoded_top_neurons.csv"):
        assert (tmp_path / f).stat().st_size > 0
    from tl_neuronprobe.core.config import read_summary
    from tl_neuronprobe.evaluation.encoded import EncodedConfig
    from tl_neuronprobe.evaluation.results import load_result

    stage, inputs, config = read_summary(tmp_path / "summary.json")
    assert stage == "encoded" and config == EncodedConfig(ks=(1, 4), probes=("logistic",))
    again = workflows.evaluate_encoded_job(**{**inputs, "out_dir": str(tmp_path / "again")}, config=config,
                                           progress=False)
    pd.testing.assert_frame_equal(again.table, load_result(tmp_path / "encoded.csv").table, check_dtype=False)


def test_rank_command_seed_decides_the_random_ranking(saved, tmp_path):
    path, _ = saved
    orders = []
    for seed in ("0", "0", "1"):
        assert _run(["rank", str(path), "--attribute", "upos", "--rankers", "random", "--seed", seed,
                     "--out-dir", str(tmp_path / seed)]) == 0
        orders.append(list(pd.read_csv(tmp_path / seed / "rank_random.csv").column))
    assert orders[0] == orders[1] and orders[0] != orders[2]


def test_rank_command_names_a_missing_attribute(saved, tmp_path, capsys):
    path, _ = saved
    assert _run(["rank", str(path), "--attribute", "Gender", "--out-dir", str(tmp_path)]) == 2
    assert "Gender" in capsys.readouterr().err


def test_demo_encoded(tmp_path):
    acts, d = planted_activations(n=700)
    from tl_neuronprobe.evaluation.encoded import EncodedConfig

    summary = workflows.demo_encoded(acts, tmp_path, EncodedConfig(ks=[1, 2, 4, 100]),
                                     attributes=("upos", "Number", "Tense"), rankers=("probeless", "linear", "random"))
    assert summary["Tense"] == "not in these activations"
    assert (tmp_path / "encoded_upos.png").exists() and (tmp_path / "encoded_Number.csv").exists()
    assert len(summary["upos"]["top_neurons"]["probeless"]) == 10
    assert (tmp_path / "encoded_summary.json").exists()
    assert summary["upos"]["logistic_accuracy_at_k"]["k"] == 4  # k=100 > 40 neurons left out
