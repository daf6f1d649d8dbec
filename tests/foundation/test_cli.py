import json

import pytest

import tl_neuronprobe as tnp
from tl_neuronprobe.cli import main

CONLLU = """# sent_id = a
1	the	the	DET	_	_	2	det	_	_
2	dogs	dog	NOUN	_	Number=Plur	3	nsubj	_	_
3	run	run	VERB	_	Number=Plur	0	root	_	_

"""


def test_extract_command_on_conllu(tmp_path, capsys):
    data = tmp_path / "d.conllu"
    data.write_text(CONLLU)
    out = tmp_path / "acts"
    assert main(["extract", "--model", "planted", "--data", str(data), "--site", "mlp.post,resid.post",
                 "--layers", "1", "--out", str(out), "--no-progress"]) == 0
    acts = tnp.Activations.load(out)
    assert acts.X.shape == (3, 64 + 64)
    assert acts.attributes["Number"] == [None, "Plur", "Plur"]
    assert (out / "layer_stats.csv").exists()


def test_cli_errors_are_one_clear_line(tmp_path, capsys):
    data = tmp_path / "d.conllu"
    data.write_text(CONLLU.replace("2\tdogs", "2\tdogs\textra"))
    assert main(["extract", "--model", "planted", "--data", str(data), "--out", str(tmp_path / "o")]) == 2
    assert "d.conllu:3: expected 10 tab-separated columns" in capsys.readouterr().err
    assert main(["extract", "--model", "planted", "--data", "synthetic:5", "--site", "mlp.nope",
                 "--out", str(tmp_path / "o")]) == 2
    assert "unknown site 'mlp.nope'" in capsys.readouterr().err


def test_demo_command_writes_its_outputs(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--model", "planted", "--sentences", "40", "--out", str(out), "--no-progress",
                 "--skip", "rank,used,textualize"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["neurons"] == 2 * 64 and summary["sentences"] == 40
    assert (out / "layer_stats.png").stat().st_size > 1000
    assert tnp.Activations.load(out / "activations").n_words == summary["words"]


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "extract" in capsys.readouterr().out
