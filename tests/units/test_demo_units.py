"""The demo's ``--units sae`` mode (issue 24, done-when): a small SAE trained on text the demo does not read and
cached, neurons beside latents for UPOS and Number in ``units/``, and the report's section and latent pages."""

from __future__ import annotations

import json

import pandas as pd

import tl_neuronprobe as tnp
from tl_neuronprobe.cli import main

QUICK = ["demo", "--quick", "--model", "planted", "--corpus", "synthetic", "--attributes", "upos,Number",
         "--skip", "textualize", "--no-progress"]


def test_demo_with_sae_units_compares_neurons_and_latents(tmp_path, monkeypatch):
    monkeypatch.setenv("TNP_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    assert main(QUICK + ["--units", "sae", "--out-dir", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["inputs"]["units"] == "sae" and summary["demo_units_seconds"] > 0
    table = pd.read_csv(out / "units" / "compare.csv")
    assert set(table.units) == {"neurons", "latents"} and set(table.attribute) == {"upos", "Number"}
    assert {"encoded_accuracy", "used_changed", "description_f1"} <= set(table.columns)
    assert table.encoded_accuracy.between(0, 1).all() and table.description_f1.notna().all()
    cached = list((tmp_path / "cache" / "sae").iterdir())
    assert len(cached) == 1 and (cached[0] / "cfg.json").exists()  # trained once, in SAELens's layout
    info = json.loads((out / "units" / "dictionary.json").read_text())
    assert info["kind"] == "sae" and info["units"] == 64 and info["hook"] == "blocks.1.mlp.hook_post"
    index = (out / "report" / "index.html").read_text()
    assert "Neurons versus latents" in index
    latents = sorted((out / "report" / "neurons").glob("L1.S*.html"))
    assert latents, "no latent page"
    page = latents[0].read_text()
    assert "blocks.1.mlp.hook_post" in page and "sae.encode(value)" in page and 'class="ctx"' in page
    # a second run finds the cached SAE instead of training it again
    stamp = cached[0].joinpath("sae_weights.safetensors").stat().st_mtime_ns
    assert main(QUICK + ["--units", "sae", "--skip", "textualize,used,describe,report", "--out-dir",
                         str(tmp_path / "again")]) == 0
    assert cached[0].joinpath("sae_weights.safetensors").stat().st_mtime_ns == stamp
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "again" / "units" / "compare.csv")
                                  .filter(like="encoded"), table.filter(like="encoded"))


def test_demo_units_take_a_dictionary_folder_and_name_a_bad_one(tmp_path):
    model = tnp.testing.planted_model()
    d = tnp.units.from_directions([[1.0] + [0.0] * 63, [0.0] * 5 + [1.0] + [0.0] * 58], "blocks.1.mlp.hook_post")
    tnp.units.save(d, tmp_path / "dirs")
    out = tmp_path / "demo"
    assert main(QUICK + ["--units", str(tmp_path / "dirs"), "--skip", "textualize,used,describe,report",
                         "--out-dir", str(out)]) == 0
    table = pd.read_csv(out / "units" / "compare.csv")
    assert set(table.units) == {"neurons", "latents"} and model is not None
    assert main(QUICK + ["--units", str(tmp_path / "nothing"), "--out-dir", str(out)]) == 2
