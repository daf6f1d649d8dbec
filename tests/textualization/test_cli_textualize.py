"""``tl-neuronprobe textualize`` and the demo stage."""

from __future__ import annotations

import numpy as np
import pandas as pd

import tl_neuronprobe as tnp
from tl_neuronprobe.cli import main
from tl_neuronprobe.workflows import demo_textualize, top_neurons


def test_textualize_command(tmp_path, capsys):
    out = tmp_path / "tx"
    assert main(["textualize", "--model", "planted", "--neurons", "L1.N57,L1.N5", "--method", "discrete",
                 "--length", "2", "--steps", "20", "--corpus", "synthetic:30", "--out", str(out),
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "cabinet" in printed and "neurons/min" in printed
    table = pd.read_csv(out / "textualize.csv")
    assert list(table.neuron) == ["L1.N57", "L1.N5"]
    assert table.text[0].split()[-1] == "cabinet"
    assert (out / "textualize.md").read_text().startswith("| neuron | method | text |")


def test_textualize_command_errors_are_one_line(capsys):
    assert main(["textualize", "--model", "planted", "--neurons", "L1.N5", "--length", "0", "--corpus",
                 "none", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "tl-neuronprobe textualize: error: length must be a positive number" in err
    assert main(["textualize", "--model", "planted", "--neurons", "L9.N5", "--no-progress"]) == 2
    assert "do not exist" in capsys.readouterr().err


def test_demo_stage_on_the_planted_model(planted, tmp_path):
    corpus = tnp.testing.planted_corpus(60, seed=0)
    acts = tnp.extract(planted, corpus, site="mlp.post", layers=[1], progress=False)
    planted_number = {tnp.Neuron(1, j) for j in (5, 23, 11, 40)}
    assert set(top_neurons(acts, "Number", 4)) == planted_number
    assert not set(top_neurons(acts, "Number", 4, exclude={tnp.Neuron(1, 5)})) >= planted_number
    shuffled = acts.select(layer=1)
    shuffled.attributes = {"Number": list(np.random.default_rng(0).permutation(
        np.asarray(acts.attributes["Number"], dtype=object)))}
    assert len(set(top_neurons(shuffled, "Number", 4)) & planted_number) < 4  # control: labels carry no signal
    table = demo_textualize(planted, None, corpus, tmp_path / "textualize", steps=5, length=3, acts=acts)
    assert set(table.attribute) == {"upos", "Number"} and len(table) == 4
    text = (tmp_path / "textualize" / "textualize.md").read_text()
    assert "top_corpus_windows" in text and all(str(n) in text for n in table.neuron)
    table = demo_textualize(planted, {"trigger": ["L1.N57"]}, corpus, tmp_path / "t2", steps=20, length=2)
    assert table.text.iloc[0].split()[-1] == "cabinet" and table.ratio.iloc[0] >= 1.0
