"""`tl-neuronprobe extract --dictionary PATH --site sae`: a dictionary folder's latents from the command line, stored
as sparse rows, equal to the Python API's, run again from its summary, and ranked from the folder (the planted
Number latents first)."""

from __future__ import annotations

import json

import pandas as pd
import torch

import tl_neuronprobe as tnp
from tl_neuronprobe.cli import main
from tl_neuronprobe.core import units
from tl_neuronprobe.data._tensorfile import read_header
from tl_neuronprobe.testbeds.dictionary import planted_dictionary
from tl_neuronprobe.workflows import rerun


def test_extract_reads_a_dictionary_folder_and_stores_its_latents_sparse(tmp_path, capsys):
    model = tnp.testing.planted_model()
    units.save(planted_dictionary(model), tmp_path / "sae")
    out = tmp_path / "latents"

    def command(out_dir, *extra):
        return ["extract", "--model", "planted", "--corpus", "synthetic:60", "--site", "sae", "--layers", "1",
                *extra, "--out-dir", str(out_dir), "--no-progress"]

    assert main(command(out, "--dictionary", str(tmp_path / "sae"), "--storage", "sparse")) == 0
    header, _ = read_header(out / "activations.safetensors")
    assert header["__metadata__"]["format"] == "csr"
    acts = tnp.Activations.load(out)
    with units.using(units.load(tmp_path / "sae")):
        expected = tnp.extract(model, tnp.Corpus.load("synthetic:60"), tnp.ExtractConfig(site="sae", layers=(1,)),
                               progress=False)
    assert torch.equal(acts.X, expected.X) and str(acts.neurons[0]) == "L1.S0"
    assert json.loads((out / "summary.json").read_text())["inputs"]["dictionaries"] == [str(tmp_path / "sae")]
    again = rerun(out / "summary.json", tmp_path / "again", progress=False)
    assert torch.equal(again.X, acts.X)
    assert main(["rank", str(out), "--attribute", "Number", "--out-dir", str(tmp_path / "ranked")]) == 0
    for ranker in ("linear", "probeless"):  # the planted Number latents (used S0, unused S1) come first
        top = pd.read_csv(tmp_path / "ranked" / f"rank_{ranker}.csv").sort_values("rank").neuron[:2]
        assert set(top) == {"L1.S0", "L1.S1"}, (ranker, list(top))
    assert main(command(tmp_path / "auto", "--dictionary", str(tmp_path / "sae"))) == 0  # latents 97% on: dense
    assert "X" in read_header(tmp_path / "auto" / "activations.safetensors")[0]
    capsys.readouterr()
    assert main(command(tmp_path / "none")) == 2  # no --dictionary
    assert "no dictionary is registered for site 'sae'" in capsys.readouterr().err
    assert main(command(tmp_path / "x", "--dictionary", str(tmp_path / "nope"))) == 2
    assert "nope" in capsys.readouterr().err
