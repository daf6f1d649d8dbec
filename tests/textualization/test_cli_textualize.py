"""``tl-neuronprobe textualize`` and the demo stage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

import tl_neuronprobe as tnp
from tl_neuronprobe.cli import main
from tl_neuronprobe.core.config import read_summary
from tl_neuronprobe.textualization import Dense, Discrete, TextualizeConfig, WordsNeededConfig
from tl_neuronprobe.workflows import demo_textualize, textualize_job, top_neurons, words_needed_job
from tl_neuronprobe.workflows._textualize import demo_textualize_config
from tl_neuronprobe.data.extraction import ExtractConfig


def test_textualize_command(tmp_path, capsys):
    out = tmp_path / "tx"
    assert main(["textualize", "--model", "planted", "--neurons", "L1.N57,L1.N5", "--optimizer", "discrete",
                 "--length", "2", "--max-steps", "20", "--corpus", "synthetic:30", "--out-dir", str(out),
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "cabinet" in printed and "neurons/min" in printed
    table = pd.read_csv(out / "textualize.csv")
    assert list(table.neuron) == ["L1.N57", "L1.N5"]
    assert table.text[0].split()[-1] == "cabinet"
    assert (out / "textualize.md").read_text().startswith("| neuron | optimizer | text |")
    # the summary holds the config the flags built: the job runs again from it, with the same numbers
    stage, inputs, config = read_summary(out / "summary.json")
    assert stage == "textualize" and config == TextualizeConfig(optimizer=Discrete(max_steps=20), length=2,
                                                                corpus="synthetic:30")
    assert inputs == {"model": "planted", "neurons": "L1.N57,L1.N5", "out_dir": str(out)}
    again = textualize_job(**{**inputs, "out_dir": str(tmp_path / "again")}, config=config, progress=False)
    assert list(again.table.activation) == list(table.activation)


def test_words_needed_job_reruns_from_its_summary(tmp_path):
    config = WordsNeededConfig(ks=(1, 2), optimizer=Dense(max_steps=3, restarts=1), reference=50)
    first = words_needed_job("planted", ["cabinet"], [1], out_dir=str(tmp_path / "w"), config=config,
                             progress=False)
    stage, inputs, again = read_summary(tmp_path / "w" / "summary.json")
    assert stage == "words_needed" and again == config
    assert inputs == {"model": "planted", "words": ["cabinet"], "layers": [1], "out_dir": str(tmp_path / "w")}
    assert words_needed_job(**inputs, config=again, progress=False).table.equals(first.table)


def test_textualize_command_errors_are_one_line(capsys):
    assert main(["textualize", "--model", "planted", "--neurons", "L1.N5", "--length", "0", "--corpus",
                 "none", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "tl-neuronprobe textualize: error: TextualizeConfig.length must be an integer >= 1" in err
    assert main(["textualize", "--model", "planted", "--neurons", "L9.N5", "--no-progress"]) == 2
    assert "do not exist" in capsys.readouterr().err


def test_demo_stage_on_the_planted_model(planted, tmp_path):
    corpus = tnp.testing.planted_corpus(60, seed=0)
    acts = tnp.extract(planted, corpus, ExtractConfig(site="mlp.post", layers=[1]), progress=False)
    planted_number = {tnp.Neuron(1, j) for j in (5, 23, 11, 40)}
    assert set(top_neurons(acts, "Number", 4)) == planted_number
    assert not set(top_neurons(acts, "Number", 4, exclude={tnp.Neuron(1, 5)})) >= planted_number
    table = demo_textualize(planted, None, corpus, tmp_path / "textualize", demo_textualize_config(5, length=3),
                            acts=acts)
    assert set(table.attribute) == {"upos", "Number"} and len(table) == 4
    text = (tmp_path / "textualize" / "textualize.md").read_text()
    assert "top_corpus_windows" in text and all(str(n) in text for n in table.neuron)
    table = demo_textualize(planted, {"trigger": ["L1.N57"]}, corpus, tmp_path / "t2",
                            demo_textualize_config(20, length=2))
    assert table.text.iloc[0].split()[-1] == "cabinet" and table.ratio.iloc[0] >= 1.0


def _decoy_activations(labels: np.ndarray, given: np.ndarray | None = None) -> tnp.Activations:
    """20 neurons: L0.N3 carries ``labels`` at a small scale, L0.N7 a high-variance decoy with no label; the
    attribute the activations carry is ``given`` (default: the same labels)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(len(labels), 20)) * 0.1
    X[:, 3] += 0.5 * (labels == "b")
    X[:, 7] = rng.normal(size=len(labels)) * 2.0
    neurons = [tnp.Neuron(0, j) for j in range(20)]
    return tnp.Activations(torch.tensor(X, dtype=torch.float32), neurons, ["w"] * len(labels),
                           np.arange(len(labels)) // 5, {"A": list(labels if given is None else given)}, {})


def test_top_neurons_follow_the_labels_not_the_scale():
    labels = np.where(np.random.default_rng(1).random(600) < 0.5, "a", "b").astype(object)
    acts = _decoy_activations(labels)
    assert top_neurons(acts, "A", 1) == [tnp.Neuron(0, 3)]
    assert top_neurons(acts, "A", 1, exclude={tnp.Neuron(0, 3)}) != [tnp.Neuron(0, 3)]
    variance_pick = int(acts.X.var(0).argmax())  # label-free control: picks the decoy
    assert variance_pick == 7
    # control: with shuffled labels the signal neuron is on top only by chance (true labels: every time)
    tops = [top_neurons(_decoy_activations(labels, given=np.random.default_rng(s).permutation(labels)), "A", 1)
            for s in range(20)]
    assert sum(t == [tnp.Neuron(0, 3)] for t in tops) <= 6
