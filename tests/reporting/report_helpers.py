"""Helpers for the report tests: a small results folder from the planted model, and a headless chromium."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

import tl_neuronprobe as tnp
from tl_neuronprobe.data.extraction import ExtractConfig

TRIGGER = "L1.N57"  # planted: fires on the word "cabinet" alone


def build_results(out: Path) -> dict:
    """The demo's folder layout from library calls on the planted model (about 10 s on one core)."""
    from tl_neuronprobe.workflows import demo_encoded, demo_textualize, demo_used, layer_statistics
    from tl_neuronprobe.workflows import plot_layer_statistics
    from tl_neuronprobe.evaluation.encoded import EncodedConfig

    torch.manual_seed(0)
    model = tnp.testing.planted_model()
    corpus = tnp.testing.planted_corpus(120, seed=0)
    acts = tnp.extract(model, corpus, ExtractConfig(site="mlp.post"), out_dir=out / "activations", progress=False)
    layer_statistics(acts).to_csv(out / "layer_stats.csv", index=False)
    plot_layer_statistics(acts, out / "layer_stats.png")
    demo_encoded(acts, out / "encoded", EncodedConfig(ks=[1, 2, 5, 10]), rankers=("probeless", "mean_difference", "random"))
    from tl_neuronprobe.workflows._demo_used import USED_CONFIG
    demo_used(out / "used", model, corpus, attributes=("Number",), model_name="planted", acts=acts,
              config=USED_CONFIG.replace(ks=[1, 2, 5, 10]), rankers=("probeless", "random"), agreement=False)
    from tl_neuronprobe.workflows._textualize import demo_textualize_config
    demo_textualize(model, {"trigger": [TRIGGER], "Number": ["L1.N5"]}, corpus, out / "textualize",
                    demo_textualize_config(max_steps=5))
    from tl_neuronprobe.core.config import write_summary
    from tl_neuronprobe.workflows import DemoConfig
    write_summary(out, "demo", DemoConfig.quick(model="planted", corpus="synthetic"), {"out_dir": str(out)},
                  model="planted", corpus="planted synthetic", n_sentences=len(corpus), words=corpus.n_words,
                  neurons=acts.n_neurons, seed=0)
    return dict(model=model, corpus=corpus)


def _browser_paths() -> tuple[str, str]:
    binary = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)),
                  None)
    driver = shutil.which("chromedriver")
    if binary is None or driver is None:
        pytest.skip("browser tests need Debian's chromium and chromium-driver (apt-get install -y chromium "
                    f"chromium-driver); found browser={binary}, chromedriver={driver}")
    return binary, driver


def open_browser(javascript: bool = True):
    """A headless chromium driven by Selenium that keeps the page's console log."""
    pytest.importorskip("selenium", reason="browser tests need the selenium package (the test extra)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = _browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1500", "--allow-file-access-from-files"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    if not javascript:
        options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    return webdriver.Chrome(options=options, service=Service(driver))


def planted_attribution(model, corpus, attribute: str = "Number"):
    """:func:`tnp.attribute_used` of every neuron of the planted model (zero edits, identity readout), its top 8
    and 8 random neurons verified by exact patching (about 3 s)."""
    from tl_neuronprobe.evaluation.attribution import AttributionConfig, Verify

    config = AttributionConfig(edit=tnp.interventions.Zero(), readout=tnp.interventions.Identity(),
                               verify=Verify(top=8, n_random=8))
    return tnp.attribute_used(model, corpus, attribute, config, progress=False)
