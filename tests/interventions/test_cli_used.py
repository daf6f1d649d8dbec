"""`tl-neuronprobe evaluate-used` and `compare` on the planted testbed."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tl_neuronprobe.cli import main
from tl_neuronprobe.core.config import read_summary
from tl_neuronprobe.evaluation.results import load_result
from tl_neuronprobe.workflows import parse_rankings, read_ranking_file, rerun


def test_ranking_files(tmp_path):
    (tmp_path / "a.txt").write_text("L1.N5\nL1.N23\nL1.N11\n")
    (tmp_path / "b.json").write_text(json.dumps({"x": ["L1.N1", "L1.N2"], "y": ["L1.N3"]}))
    pd.DataFrame({"ranker": ["p", "p", "q"], "rank": [1, 0, 0], "neuron": ["L1.N7", "L1.N8", "L1.N9"]}).to_csv(
        tmp_path / "c.csv", index=False)
    assert [str(n) for n in read_ranking_file(tmp_path / "a.txt")["a"]] == ["L1.N5", "L1.N23", "L1.N11"]
    assert set(read_ranking_file(tmp_path / "b.json")) == {"x", "y"}
    assert [str(n) for n in read_ranking_file(tmp_path / "c.csv")["p"]] == ["L1.N8", "L1.N7"]
    spec = parse_rankings(f"probeless,mine={tmp_path / 'a.txt'}")
    assert spec["probeless"] == "probeless" and len(spec["mine"]) == 3
    with pytest.raises(FileNotFoundError):
        read_ranking_file(tmp_path / "missing.txt")


def test_evaluate_used_and_compare_commands(tmp_path, capsys):
    used = ["L1.N5", "L1.N23"]
    rest = [f"L1.N{i}" for i in range(64) if i not in (5, 23)]
    (tmp_path / "good.txt").write_text("\n".join(used + rest))
    (tmp_path / "bad.txt").write_text("\n".join(rest + used))
    out = tmp_path / "used"
    assert main(["evaluate-used", "--model", "planted", "--corpus", "synthetic:60", "--attribute", "Number",
                 "--rankings", f"good={tmp_path / 'good.txt'},bad={tmp_path / 'bad.txt'}", "--ks", "1,2",
                 "--n-bootstrap", "50", "--n-random", "1", "--out-dir", str(out), "--no-progress"]) == 0
    table = pd.read_csv(out / "used_Number.csv")
    info = json.loads((out / "used_Number.json").read_text())
    assert info["readout"] == "identity" and (out / "used_Number.png").exists()
    result = load_result(out / "used_Number.csv")
    assert result.kind == "used" and [str(n) for n in result.rankings["good"][:2]] == used
    stage, inputs, config = read_summary(out / "summary.json")
    assert stage == "used" and inputs["corpus"] == "synthetic:60" and config.ks == (1, 2)
    assert config.baselines.n_random == 1 and config.n_bootstrap == 50
    again = rerun(out / "summary.json", tmp_path / "again", progress=False)
    pd.testing.assert_frame_equal(again.table, result.table, check_dtype=False)
    top = table[(table.selection == "top") & (table.k == 2) & (table.metric == "changed")].set_index("ranking")
    assert top.loc["good", "value"] > 0.9 and top.loc["bad", "value"] == 0.0
    enc = pd.DataFrame([dict(ranking=r, probe="logistic", selection="top", k=k, accuracy=1.0 - 0.01 * (r == "good"))
                        for r in ("good", "bad") for k in (1, 2)])
    enc.to_csv(tmp_path / "enc.csv", index=False)
    assert main(["compare", "--encoded", str(tmp_path / "enc.csv"), "--used", str(out / "used_Number.csv"),
                 "--out-dir", str(tmp_path / "cmp")]) == 0
    text = (tmp_path / "cmp" / "compare.txt").read_text()
    assert "disagree at k = 2" in text
    assert (tmp_path / "cmp" / "compare.png").exists()
    assert "disagree" in capsys.readouterr().out


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["evaluate-used", "--model", "planted", "--corpus", "synthetic:10", "--attribute", "Gender",
                 "--rankings", "probeless", "--layer", "1", "--out-dir", str(tmp_path / "o"), "--no-progress"]) == 2
    assert "Gender" in capsys.readouterr().err
    assert main(["evaluate-used", "--model", "planted", "--corpus", "synthetic:10", "--attribute", "Number",
                 "--rankings", "probeless", "--out-dir", str(tmp_path / "o"), "--no-progress"]) == 2
    assert "pass layer=" in capsys.readouterr().err
    assert main(["evaluate-used", "--model", "planted", "--corpus", "synthetic:10", "--attribute", "Number",
                 "--rankings", "probeless", "--layer", "1", "--edit", "zero", "--alpha", "2",
                 "--out-dir", str(tmp_path / "o"), "--no-progress"]) == 2
    assert "--edit zero has none" in capsys.readouterr().err


def test_antverg_flag(tmp_path, capsys):
    from tl_neuronprobe.cli.main import build_parser
    from tl_neuronprobe.cli.used import used_config
    from tl_neuronprobe.evaluation.used import UsedConfig

    base = ["evaluate-used", "--model", "planted", "--corpus", "synthetic:40", "--attribute", "Number",
            "--rankings", "probeless", "--layer", "1", "--ks", "1", "--out-dir", str(tmp_path / "o"), "--no-progress"]
    config = used_config(build_parser().parse_args(base + ["--antverg", "--alpha", "2"]))
    assert config == UsedConfig.antverg(ks=[1]).replace(edit=config.edit, fit=config.fit)
    assert config.edit.alpha == 2.0 and config.fit.layer == 1 and config.fit.aggregation == "mean"
    with pytest.warns(UserWarning, match="Plur"):
        assert main(base + ["--antverg"]) == 2  # the synthetic vocabulary has < 100 forms per value
    assert "class value(s) remain" in capsys.readouterr().err


def test_lexicon_flag_judges_with_another_corpus(tmp_path, capsys):
    from tl_neuronprobe.cli.main import build_parser
    from tl_neuronprobe.cli.used import used_config
    from tl_neuronprobe.interventions import Identity

    base = ["evaluate-used", "--model", "planted", "--corpus", "synthetic:40", "--attribute", "Number",
            "--rankings", "probeless", "--layer", "1", "--ks", "1", "--out-dir", str(tmp_path / "o"), "--no-progress"]
    assert used_config(build_parser().parse_args(base + ["--lexicon", "synthetic:400"])).readout == \
        Identity(lexicon="synthetic:400")
    assert used_config(build_parser().parse_args(base)).readout is None  # control: automatic without the flag
    assert main(base + ["--lexicon", "synthetic:400", "--readout", "divergence"]) == 2
    assert "--lexicon judges the identity readout" in capsys.readouterr().err
