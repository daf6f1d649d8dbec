"""`tl-neuronprobe attribute` and `rerun` of its summary on the planted testbed (issue 23)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import tl_neuronprobe as tnp
from tl_neuronprobe.cli import main
from tl_neuronprobe.cli.attribute import attribution_config
from tl_neuronprobe.cli.main import build_parser
from tl_neuronprobe.core.config import read_summary
from tl_neuronprobe.evaluation.attribution import Attribution, AttributionConfig, Verify
from tl_neuronprobe.evaluation.compare import NeuronComparison
from tl_neuronprobe.evaluation.encoded import EncodedConfig
from tl_neuronprobe.evaluation.results import load_result
from tl_neuronprobe.interventions import Identity, Translate, Zero
from tl_neuronprobe.workflows import JOBS, attribute_job

BASE = ["attribute", "--model", "planted", "--corpus", "synthetic:60", "--attribute", "Number", "--no-progress"]


@pytest.fixture(scope="module")
def encoded_csv(tmp_path_factory):
    """An encoded result of the planted model's two layers, saved as evaluate-encoded saves it."""
    model = tnp.models.load("planted", seed=0)
    acts = tnp.extract(model, tnp.Corpus.load("synthetic:60", seed=0), progress=False)
    encoded = tnp.evaluate_encoded(acts, "Number", ["probeless", "random"],
                                   EncodedConfig(ks=(1,), control=False, probes=("logistic",)))
    return encoded.save(tmp_path_factory.mktemp("encoded") / "encoded_Number.csv")


def test_attribute_command_writes_and_reruns(encoded_csv, tmp_path, capsys):
    out = tmp_path / "attr"
    assert main(BASE + ["--edit", "zero", "--readout", "identity", "--layers", "0,1", "--verify-top", "4",
                        "--verify-random", "4", "--encoded", str(encoded_csv), "--k", "6", "--used-k", "2",
                        "--out-dir", str(out)]) == 0
    for name in ("attribution.csv", "attribution.meta.json", "attribution.png", "per_neuron.csv",
                 "per_neuron.meta.json", "per_neuron.png", "per_neuron.txt", "summary.json"):
        assert (out / name).exists(), name
    result = load_result(out / "attribution.csv")
    assert isinstance(result, Attribution) and len(result) == 128 and result.table["verified"].sum() == 8
    assert {str(n) for n in result.rankings["attribution"][:2]} == {"L1.N5", "L1.N23"}
    comparison = load_result(out / "per_neuron.csv")
    planted = tnp.models.load("planted").planted
    assert isinstance(comparison, NeuronComparison) and comparison.extra["ranking"] == "probeless"
    assert set(planted.unused["Number"] + planted.cancelled["Number"]) <= set(comparison.encoded_not_used())
    assert "2 encoded and used" in (out / "per_neuron.txt").read_text()
    stage, inputs, config = read_summary(out / "summary.json")
    assert stage == "attribute" and JOBS[stage] is attribute_job and inputs["encoded"] == str(encoded_csv)
    assert config == AttributionConfig(edit=Zero(), readout=Identity(), layers=(0, 1),
                                       verify=Verify(top=4, n_random=4))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["per_neuron"]["encoded and used"] == 2 and summary["attribution"]["n_verified"] == 8
    # its folder is a report of its own: the per-neuron section with both lists
    assert main(["report", str(out), "--out-dir", str(tmp_path / "site")]) == 0
    index = (tmp_path / "site" / "index.html").read_text()
    assert "Encoded versus used, neuron by neuron" in index and 'id="encoded-not-used"' in index
    assert 'href="neurons/L1.N11.html"' in index
    # rerun: the same job from summary.json, written elsewhere, gives the same tables
    assert main(["rerun", str(out / "summary.json"), "--out-dir", str(tmp_path / "again"), "--no-progress"]) == 0
    again = load_result(tmp_path / "again" / "attribution.csv")
    pd.testing.assert_frame_equal(again.table, result.table)
    pd.testing.assert_frame_equal(load_result(tmp_path / "again" / "per_neuron.csv").table, comparison.table)


def test_flags_make_the_config(tmp_path):
    args = build_parser().parse_args(BASE + ["--edit", "translate", "--alpha", "scaled", "--beta", "4",
                                             "--readout", "divergence", "--site", "mlp.pre", "--layers", "1",
                                             "--n-sentences", "30", "--n-samples", "3", "--ig-steps", "2",
                                             "--positions", "attribute", "--batch-size", "8", "--seed", "5",
                                             "--out-dir", str(tmp_path)])
    config = attribution_config(args)
    assert config.edit == Translate(alpha="scaled", beta=4.0) and config.readout.name == "divergence"
    assert (config.site, config.layers, config.n_sentences, config.n_samples, config.ig_steps, config.seed) == \
        ("mlp.pre", (1,), 30, 3, 2, 5)
    assert config.batching.batch_size == 8 and config.verify == Verify()
    plain = attribution_config(build_parser().parse_args(BASE + ["--out-dir", str(tmp_path)]))
    assert plain == AttributionConfig()


def test_a_ranking_file_as_the_encoded_side(tmp_path):
    """A ranking file (neurons best first) instead of an encoded result: the planted Number neurons first."""
    (tmp_path / "mine.txt").write_text("L1.N5\nL1.N11\nL1.N40\nL1.N23\n" + "\n".join(
        f"L1.N{i}" for i in range(64) if i not in (5, 11, 23, 40)))
    attribute_job("planted", "synthetic:60", "Number", tmp_path / "o",
                  AttributionConfig(edit=Zero(), readout=Identity(), layers=(1,), verify=Verify(top=2, n_random=0)),
                  encoded=tmp_path / "mine.txt", compare={"type": "NeuronCompareConfig", "k": 4, "used_k": 2},
                  progress=False)
    comparison = load_result(tmp_path / "o" / "per_neuron.csv")
    assert comparison.extra["ranking"] == "mine"
    assert [str(n) for n in comparison.encoded_not_used()] == ["L1.N11", "L1.N40"]


def test_errors_are_one_line(encoded_csv, tmp_path, capsys):
    out = ["--out-dir", str(tmp_path / "o")]
    assert main(BASE + ["--layers", "7"] + out) == 2
    assert "layers [7] do not exist" in capsys.readouterr().err
    assert main(BASE + ["--k", "5"] + out) == 2
    assert "give --encoded FILE too" in capsys.readouterr().err
    assert main(BASE + ["--encoded", str(tmp_path / "missing.csv")] + out) == 2
    assert "missing.csv does not exist" in capsys.readouterr().err
    assert main(BASE + ["--edit", "zero", "--alpha", "2"] + out) == 2
    assert "--edit zero has none" in capsys.readouterr().err
    used = load_result(encoded_csv)  # a result of another kind is not an encoded side
    attribution = Attribution(pd.DataFrame(dict(neuron=["L1.N5"], layer=1, site="mlp.post", score=1.0, rank=1,
                                                exact=float("nan"), verified=False)), "Number")
    attribution.save(tmp_path / "attribution.csv")
    assert main(BASE + ["--encoded", str(tmp_path / "attribution.csv")] + out) == 2
    assert "holds a 'attribution' result" in capsys.readouterr().err
    assert used.kind == "encoded" and not (tmp_path / "o").exists()  # nothing written by a failed command
