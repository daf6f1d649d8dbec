"""The describe, report and words-needed commands end to end on the built-in models."""

import json

import pandas as pd

from tl_neuronprobe.cli import main


def test_describe_command_writes_descriptions_of_the_planted_model(tmp_path, capsys):
    out = tmp_path / "describe"
    # the loud planted model: see test_models.py for why describe() needs it for L1.N5
    assert main(["describe", "--model", "planted-loud", "--corpus", "synthetic:150", "--layers", "1",
                 "--max-length", "1", "--out-dir", str(out), "--no-progress"]) == 0
    table = pd.read_csv(out / "descriptions" / "descriptions.csv")
    assert len(table) == 64 and (out / "coverage.csv").exists()
    desc = table.set_index("neuron")
    assert desc.loc["L1.N30", "formula"] == "upos=NOUN"  # planted upos neuron
    assert desc.loc["L1.N5", "concept"].startswith("Number=")  # planted Number neuron
    assert json.loads((out / "summary.json").read_text())["n_neurons"] == 64
    assert "written to" in capsys.readouterr().out
    # the default --levels 0.01: each neuron at its top 1% too, every level in levels.csv and methods_by_level.csv
    levels = pd.read_csv(out / "descriptions" / "levels.csv")
    assert list(levels["level"][:2]) == ["0.01", "adaptive"] and len(levels) == 2 * 64
    by_level = pd.read_csv(out / "methods_by_level.csv")
    assert set(by_level["level"]) == {"0.01", "adaptive"} and "lookup_matched" in set(by_level["method"])
    assert desc.loc["L1.N30", "top_level"] in ("0.01", "adaptive") and "top_description" in desc
    # a level: every neuron fires on its top 2% of fit words (the adaptive run above follows each concept)
    assert main(["describe", "--model", "planted-loud", "--corpus", "synthetic:150", "--layers", "1",
                 "--max-length", "1", "--threshold", "quantile", "--quantile", "0.02", "--levels", "",
                 "--out-dir", str(tmp_path / "level"), "--no-progress"]) == 0
    level = pd.read_csv(tmp_path / "level" / "descriptions" / "descriptions.csv")
    assert (level["fire_rate"] <= 0.021).all() and 0.012 <= level["fire_rate"].median() <= 0.021  # ties fire less
    assert (table["fire_rate"] > 0.03).mean() > 0.3
    assert not (tmp_path / "level" / "descriptions" / "levels.csv").exists()  # --levels '': the main level only


def test_report_command_builds_a_site_and_names_a_missing_folder(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    demo = tmp_path / "demo"
    assert main(["demo", "--quick", "--model", "planted", "--corpus", "synthetic", "--attributes", "upos,Number",
                 "--skip", "used,textualize,describe,report", "--out", str(demo), "--no-progress"]) == 0
    assert main(["report", str(demo), "--out-dir", str(tmp_path / "site")]) == 0
    assert (tmp_path / "site" / "index.html").exists()
    assert "report:" in capsys.readouterr().out


def test_words_needed_command(tmp_path):
    out = tmp_path / "words"
    assert main(["words-needed", "--model", "planted", "--words", "cabinet,dog", "--layers", "1", "--ks", "1,2",
                 "--max-steps", "20", "--out-dir", str(out), "--no-progress"]) == 0
    curve = pd.read_csv(out / "words_needed_curve.csv")
    assert set(curve.k) == {1, 2} and (out / "words_needed.png").exists()
