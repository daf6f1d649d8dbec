"""`tl-neuronprobe extract` and `demo`: what they write, how they fail."""

import json

import pandas as pd
import pytest
import torch

import tl_neuronprobe as tnp
from tl_neuronprobe import workflows
from tl_neuronprobe.cli import build_parser, main
from tl_neuronprobe.workflows import _demo

CONLLU = """# sent_id = a
1	the	the	DET	_	_	2	det	_	_
2	dogs	dog	NOUN	_	Number=Plur	3	nsubj	_	_
3	run	run	VERB	_	Number=Plur	0	root	_	_

"""

QUICK_PLANTED = ["demo", "--quick", "--model", "planted", "--corpus", "synthetic", "--attributes", "upos,Number",
                 "--no-progress"]


def test_extract_command_on_conllu(tmp_path, capsys):
    data = tmp_path / "d.conllu"
    data.write_text(CONLLU)
    out = tmp_path / "acts"
    assert main(["extract", "--model", "planted", "--corpus", str(data), "--site", "mlp.post,resid.post",
                 "--layers", "1", "--out-dir", str(out), "--no-progress"]) == 0
    acts = tnp.Activations.load(out)
    assert acts.X.shape == (3, 64 + 64)
    assert acts.attributes["Number"] == [None, "Plur", "Plur"]
    stats = pd.read_csv(out / "layer_stats.csv")
    assert list(stats.site) == ["mlp.post", "resid.post"] and set(stats.words) == {3}


def test_layer_statistics_measure_what_they_say():
    neurons = [tnp.Neuron(0, 0), tnp.Neuron(0, 1), tnp.Neuron(1, 0), tnp.Neuron(1, 1)]
    acts = tnp.Activations(torch.tensor([[1.0, -1.0, 0.0, 2.0], [3.0, -1.0, 0.0, -2.0]]), neurons, ["a", "b"],
                           [0, 0], {}, {})
    stats = workflows.layer_statistics(acts).set_index("layer")
    assert stats.loc[0, "mean"] == pytest.approx(0.5) and stats.loc[1, "max_abs"] == 2.0
    assert stats.loc[0, "share_positive"] == 0.5 and stats.loc[0, "dead_neurons"] == 1
    assert stats.loc[1, "dead_neurons"] == 1 and stats.loc[1, "share_positive"] == 0.25


def test_cli_errors_are_one_clear_line(tmp_path, capsys):
    data = tmp_path / "d.conllu"
    data.write_text(CONLLU.replace("2\tdogs", "2\tdogs\textra"))
    assert main(["extract", "--model", "planted", "--corpus", str(data), "--out-dir", str(tmp_path / "o")]) == 2
    assert "d.conllu:3: expected 10 tab-separated columns" in capsys.readouterr().err
    assert main(["extract", "--model", "planted", "--corpus", "synthetic:5", "--site", "mlp.nope",
                 "--out-dir", str(tmp_path / "o")]) == 2
    assert "unknown site 'mlp.nope'" in capsys.readouterr().err
    assert main(["extract", "--model", "nope-model", "--corpus", "missing.conllu",
                 "--out-dir", str(tmp_path / "o")]) == 2
    assert "error:" in capsys.readouterr().err
    assert main(["extract", "--model", "planted", "--corpus", "synthetic:5", "--layers", "1,x",
                 "--out-dir", str(tmp_path / "o")]) == 2
    assert "expected comma-separated integers, got '1,x'" in capsys.readouterr().err


def test_a_programming_error_keeps_its_traceback(monkeypatch, tmp_path):
    def broken(*args, **kwargs):
        raise TypeError("a bug, not a user error")

    monkeypatch.setattr(workflows, "extract_job", broken)
    with pytest.raises(TypeError, match="a bug"):
        main(["extract", "--model", "planted", "--corpus", "synthetic:5", "--out-dir", str(tmp_path / "o")])


def test_common_flags_are_on_every_command_that_runs_a_model():
    choices = build_parser()._subparsers._group_actions[0].choices
    assert {"extract", "demo", "rank", "evaluate-encoded", "evaluate-used", "compare", "textualize"} <= set(choices)
    for name in ("extract", "demo", "rank", "evaluate-encoded", "evaluate-used", "textualize"):
        args = choices[name]._option_string_actions
        assert {"--device", "--seed", "--no-progress"} <= set(args), name


def test_quick_demo_writes_every_output(tmp_path):
    out = tmp_path / "demo"
    assert main(QUICK_PLANTED + ["--out-dir", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["neurons"] == 2 * 64 and summary["n_sentences"] == 40 and summary["seed"] == 0
    config = tnp.Config.from_dict(summary["config"])
    assert config == workflows.DemoConfig.quick(model="planted", attributes=("upos", "Number"), corpus="synthetic")
    assert summary["stage"] == "demo" and summary["inputs"] == {"out_dir": str(out), "units": "neurons"}
    assert (out / "layer_stats.png").stat().st_size > 1000 and (out / "layer_stats.csv").exists()
    assert tnp.Activations.load(out / "activations").n_words == summary["words"]
    for attr in ("upos", "Number"):
        assert (out / "encoded" / f"encoded_{attr}.png").exists()
        assert (out / "used" / f"compare_planted_{attr}.txt").read_text().strip()
    assert set(pd.read_csv(out / "textualize" / "textualize.csv").attribute) == {"upos", "Number"}
    for stage in set(workflows.STAGES) - {"agreement", "units"}:  # agreement: skipped by --quick; units: --units
        assert summary[f"demo_{stage}_seconds"] > 0


def test_demo_is_deterministic_for_a_seed(tmp_path):
    tables = []
    for run in ("a", "b"):
        main(QUICK_PLANTED + ["--skip", "used,textualize", "--out-dir", str(tmp_path / run)])
        tables.append(pd.read_csv(tmp_path / run / "encoded" / "encoded_Number.csv"))
    pd.testing.assert_frame_equal(tables[0], tables[1])


def test_a_failing_stage_fails_the_demo(monkeypatch, tmp_path):
    def broken(*args, **kwargs):
        raise RuntimeError("the used stage broke")

    monkeypatch.setattr(_demo, "demo_used", broken)
    with pytest.raises(RuntimeError, match="the used stage broke"):
        main(QUICK_PLANTED + ["--skip", "encoded", "--out-dir", str(tmp_path / "demo")])
    assert not (tmp_path / "demo" / "summary.json").exists()
    monkeypatch.setattr(_demo, "demo_used", lambda *a, **k: (_ for _ in ()).throw(ValueError("bad attribute")))
    assert main(QUICK_PLANTED + ["--skip", "encoded", "--out-dir", str(tmp_path / "demo")]) == 2


def test_default_demo_config_is_recorded_as_json():
    recorded = json.loads(json.dumps(workflows.DemoConfig().to_dict()))
    assert recorded["corpus"] == "ud-english" and recorded["n_sentences"] == workflows.DEFAULT_SENTENCES
    assert recorded["textualize"]["vocab"]["name"].endswith("words_only")
    assert tnp.Config.from_dict(recorded) == workflows.DemoConfig()  # enough to re-run it


def test_demo_config_rejects_unknown_stages_and_sizes(capsys):
    with pytest.raises(ValueError, match="unknown demo stages"):
        workflows.DemoConfig(skip=("rnak",))
    assert main(["demo", "--model", "planted", "--n-sentences", "0"]) == 2
    assert "n_sentences must be positive" in capsys.readouterr().err


def test_the_demo_reruns_from_its_summary(tmp_path):
    first = tmp_path / "first"
    assert main(QUICK_PLANTED + ["--skip", "used,textualize,describe,report", "--out-dir", str(first)]) == 0
    assert main(["rerun", str(first / "summary.json"), "--out-dir", str(tmp_path / "again"), "--no-progress"]) == 0
    again = json.loads((tmp_path / "again" / "summary.json").read_text())
    assert again["config"] == json.loads((first / "summary.json").read_text())["config"]
    pd.testing.assert_frame_equal(pd.read_csv(first / "encoded" / "encoded_upos.csv"),
                                  pd.read_csv(tmp_path / "again" / "encoded" / "encoded_upos.csv"))


def test_demo_corpus_takes_the_first_sentences(tmp_path):
    assert len(workflows.demo_corpus("ud-english", 7)) == 7
    data = tmp_path / "d.conllu"
    data.write_text(CONLLU + CONLLU.replace("sent_id = a", "sent_id = b"))
    assert [s.id for s in workflows.demo_corpus(str(data), 1)] == ["a"]


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "extract" in capsys.readouterr().out


@pytest.mark.minilm
@pytest.mark.slow
def test_quick_demo_on_minilm_and_real_english(tmp_path, minilm, monkeypatch):
    monkeypatch.setattr(tnp.models, "load", lambda *a, **k: minilm)  # reuse the session's model
    summary = workflows.demo(workflows.DemoConfig.quick(), out_dir=tmp_path, progress=False)
    assert summary["corpus"] == "ud-english:40"
    assert summary["config"]["attributes"] == ["upos", "Number", "VerbForm"]
    used = json.loads((tmp_path / "used" / "used_summary.json").read_text())
    assert {"minilm/upos", "minilm/Number", "minilm/VerbForm"} <= set(used)
    windows = pd.read_csv(tmp_path / "textualize" / "textualize.csv").top_corpus_windows
    assert windows.str.len().min() > 0  # every textualized neuron has real corpus windows beside it
