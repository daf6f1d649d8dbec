"""The report reads what a result says it is (kind and attribute in ``attrs``), not its key or its columns; an
empty report and an activations folder are handled (issue 21, finding 2)."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
import torch

import tl_neuronprobe as tnp
from tl_neuronprobe.cli.main import main
from tl_neuronprobe.evaluation.encoded import EncodedConfig, EncodedResult
from tl_neuronprobe.evaluation.results import kind_of, load_result, load_table, meta_path
from tl_neuronprobe.reporting import collect, report
from tl_neuronprobe.evaluation.used import Baselines, UsedConfig
from tl_neuronprobe.data.extraction import ExtractConfig

ATTRIBUTES = ("Number", "Tense")


@pytest.fixture(scope="module")
def two_attributes(planted_run) -> dict:
    """Used tables and comparisons for Number and Tense on the planted model (layer 1, 60 sentences)."""
    torch.manual_seed(0)
    model, corpus = planted_run["model"], planted_run["corpus"][:60]
    acts = tnp.extract(model, corpus, ExtractConfig(site="mlp.post", layers=[1]), progress=False)
    out = {}
    for attr in ATTRIBUTES:
        enc = tnp.evaluate_encoded(acts, attr, ["probeless", "random"],
                                   EncodedConfig(ks=[1, 5], control=False, probes=["logistic"], min_count=2))
        used = tnp.evaluate_used(model, corpus, attr, enc,
                                 UsedConfig(ks=[1, 5], n_bootstrap=50, baselines=Baselines(bottom=False, n_random=1)),
                                 progress=False)
        out[attr] = (used, tnp.compare_encoded_used(enc, used))
    return out


def _sections(index_html: str) -> dict[str, str]:
    """The used section's ``<h3>`` headings and the HTML under each, up to the next heading."""
    used = index_html.split('<section id="used">', 1)[1].split("</section>", 1)[0]
    parts = re.split(r"<h3>(.*?)</h3>", used)
    return dict(zip(parts[1::2], parts[2::2]))


def test_each_attribute_section_holds_its_own_results(two_attributes, tmp_path):
    objects = {}
    for attr in ATTRIBUTES:
        used, cmp = two_attributes[attr]
        objects[f"m/{attr}"], objects[f"m/{attr} compare"] = used, cmp
    sections = _sections(report(objects, tmp_path / "r").read_text())
    assert set(sections) == {f"m: {a}" for a in ATTRIBUTES}  # no "m: attribute"
    for attr, other in (ATTRIBUTES, ATTRIBUTES[::-1]):
        html = sections[f"m: {attr}"]
        assert f"versus used (changed) for {attr}," in html  # its own comparison's summary
        assert f"for {other}," not in html  # control: the other attribute's summary is elsewhere
        assert "Not in these results" not in html and "best_encoded" in html and "random-k baseline" in html
        for metric in ("changed", "correct_lemma_wrong_value", "wrong_lemma"):  # every metric, the flips too
            assert f"Used effect ({metric})" in html
    # the objects say what they are: swapped keys do not move them (control against reading keys)
    swapped = {"m/Tense": two_attributes["Number"][0], "m/Number compare": two_attributes["Tense"][1],
               "m/Number": two_attributes["Tense"][0], "m/Tense compare": two_attributes["Number"][1]}
    by_attr = {r.attribute: r for r in collect(swapped).used}
    assert set(by_attr) == set(ATTRIBUTES)
    for attr in ATTRIBUTES:
        assert set(by_attr[attr].used["attribute"]) == {attr} and f"for {attr}," in by_attr[attr].summary


def test_the_key_names_the_model_and_the_result_names_its_kind(two_attributes):
    """The stranger's case the other way round: keys that say "compare" on a used result and "Tense" on Number's
    comparison; each result still lands in its own kind's slot under its own attribute."""
    used, cmp = two_attributes["Number"]
    data = collect({"m/Tense compare": used, "m/Tense": cmp})
    [section] = data.used
    assert (section.model, section.attribute) == ("m", "Number")
    assert section.used is getattr(used, "table", used) and section.per_k is cmp.per_k
    assert cmp.kind == "compare" and "for Number," in section.summary


def test_unmarked_tables_are_refused_not_guessed(two_attributes):
    """A table that does not say what it is is an error naming what to pass, never a guess from its columns."""
    used, cmp = two_attributes["Number"]
    plain_used = getattr(used, "table", used).copy()
    plain_used.attrs = {}
    with pytest.raises(ValueError, match="does not say what it is"):
        collect({"m/Number": plain_used})
    plain_per_k = cmp.per_k.copy()
    plain_per_k.attrs = {}
    with pytest.raises(ValueError, match="does not say what it is"):
        collect({"m/Number compare": plain_per_k})


def test_marks_survive_the_results_folder(results):
    """The demo's CSVs keep kind and attribute in ``.meta.json``; the report reads them back."""
    used = results / "used" / "used_planted_Number.csv"
    assert json.loads(meta_path(used).read_text())["tnp_kind"] == "used"
    assert load_table(used).attrs["attribute"] == "Number"
    assert kind_of(load_table(results / "used" / "compare_planted_Number.csv")) == "compare_per_k"
    encoded = load_table(results / "encoded" / "encoded_Number.csv")
    assert (kind_of(encoded), encoded.attrs["attribute"]) == ("encoded", "Number")
    assert "orders" not in encoded.attrs  # fitted orders are not JSON: left out, not mangled
    result = load_result(results / "encoded" / "encoded_Number.csv")  # the rankings come back as neurons
    assert isinstance(result, EncodedResult) and set(result.rankings) == {"probeless", "mean_difference", "random"}
    assert len(result.rankings["probeless"]) == len(result.neurons) and result.attribute == "Number"
    result = load_result(results / "encoded" / "encoded_Number.csv")  # the rankings come back as neurons
    assert isinstance(result, EncodedResult) and set(result.rankings) == {"probeless", "mean_difference", "random"}
    assert len(result.rankings["probeless"]) == len(result.neurons) and result.attribute == "Number"
    result = load_result(results / "encoded" / "encoded_Number.csv")  # the rankings come back as neurons
    assert isinstance(result, EncodedResult) and set(result.rankings) == {"probeless", "mean_difference", "random"}
    assert len(result.rankings["probeless"]) == len(result.neurons) and result.attribute == "Number"
    [res] = collect(results).used
    assert (res.model, res.attribute, kind_of(res.per_k)) == ("planted", "Number", "compare_per_k")
    assert kind_of(pd.read_csv(used)) is None  # control: a plain read has no marks


def test_an_empty_report_is_an_error(tmp_path):
    for empty in ({}, []):
        with pytest.raises(ValueError, match="no results to report"):
            report(empty, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_report_of_an_activations_folder(results, tmp_path):
    """``tl-neuronprobe report ACTS_DIR``: layer statistics and each layer's neurons with the largest activation."""
    acts_dir = results / "activations"
    assert main(["report", str(acts_dir), "--out-dir", str(tmp_path / "site")]) == 0
    index = (tmp_path / "site" / "index.html").read_text()
    acts = tnp.Activations.load(acts_dir)
    assert "share_positive" in index  # the layer statistics table
    pages = {p.stem for p in (tmp_path / "site" / "neurons").glob("*.html")}
    for layer in acts.layers:
        cols = [i for i, n in enumerate(acts.neurons) if n.layer == layer]
        best = max(cols, key=lambda i: float(acts.X[:, i].max()))
        assert str(acts.neurons[best]) in pages
    # control: a neuron of the weakest maxima gets no page
    weakest = min(range(acts.n_neurons), key=lambda i: float(acts.X[:, i].max()))
    assert str(acts.neurons[weakest]) not in pages
    page = (tmp_path / "site" / "neurons" / f"{acts.neurons[best]}.html").read_text()
    assert "max activation L" in page and "activation" in page
