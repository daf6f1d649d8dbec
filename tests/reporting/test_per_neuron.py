"""The report's "Encoded versus used, neuron by neuron" (issue 23): the per-neuron scatter and both lists in the
overview, the attribution's rank and score on each neuron page; found by kind in objects and in results folders,
never by columns or file names."""

from __future__ import annotations

import re
import shutil

import pytest

import tl_neuronprobe as tnp
from tl_neuronprobe.evaluation.compare import NeuronCompareConfig, compare_per_neuron
from tl_neuronprobe.evaluation.encoded import EncodedConfig
from tl_neuronprobe.reporting import collect, report, run_report

from report_helpers import planted_attribution

HEADING = "Encoded versus used, neuron by neuron"


@pytest.fixture(scope="module")
def per_neuron(planted_run) -> dict:
    model, corpus = planted_run["model"], planted_run["corpus"][:60]
    acts = tnp.Activations.load(planted_run["out"] / "activations")
    encoded = tnp.evaluate_encoded(acts, "Number", ["probeless", "random"],
                                   EncodedConfig(ks=(1,), control=False, probes=("logistic",)))
    attribution = planted_attribution(model, corpus)
    comparison = compare_per_neuron(encoded, attribution, NeuronCompareConfig(k=6, used_k=2))
    return dict(acts=acts, encoded=encoded, attribution=attribution, comparison=comparison, planted=model.planted)


def section(index) -> str:
    html = index.read_text()
    assert html.count('<section id="per-neuron">') == 1
    return html.split('<section id="per-neuron">', 1)[1].split("</section>", 1)[0]


def listed(html: str, which: str) -> set[str]:
    """The neurons of one list (``encoded-not-used`` or ``used-not-encoded``) of the section."""
    part = html.split(f'id="{which}"', 1)[1].split("</table>", 1)[0].split("</p>", 1)[0]
    return set(re.findall(r">(L\d+\.N\d+)<", part))


def test_overview_section_and_neuron_pages(per_neuron, tmp_path):
    truth = per_neuron["planted"]
    objects = {"acts": per_neuron["acts"], "encoded": per_neuron["encoded"],
               "attribution": per_neuron["attribution"], "per neuron": per_neuron["comparison"]}
    index = report(objects, tmp_path / "r")
    html = section(index)
    assert f"<h2>{HEADING}</h2>" in html and "<h3>Number</h3>" in html and 'href="#per-neuron"' in index.read_text()
    assert "2 encoded and used, 4 encoded but not used, 0 used but not encoded" in html
    for img in re.findall(r'<img src="([^"]+)"', html):
        assert (index.parent / img).stat().st_size > 5000
    assert len(re.findall(r"<img src=\"img/(?:per_neuron|attribution)_0.png\"", html)) == 2
    not_used = listed(html, "encoded-not-used")
    assert {str(n) for n in truth.unused["Number"] + truth.cancelled["Number"]} <= not_used
    assert not not_used & {str(n) for n in truth.used["Number"]}
    assert listed(html, "used-not-encoded") == set() and "every used neuron is encoded" in html
    # each listed neuron has its page, and the page shows its attribution beside its probe ranks
    pages = {p.stem for p in (index.parent / "neurons").glob("*.html")}
    assert not_used | {str(n) for n in truth.used["Number"]} <= pages
    order = [str(n) for n in per_neuron["attribution"].rankings["attribution"]]
    for neuron, group in (("L1.N11", "encoded, not used"), ("L1.N5", "encoded and used")):  # unverified, verified
        page = (index.parent / "neurons" / f"{neuron}.html").read_text()
        rank = order.index(neuron) + 1
        row = per_neuron["attribution"].table.set_index("neuron").loc[neuron]
        shown = f"{row['score']:.4g}" + (f" (exact {row['exact']:.4g})" if row["verified"] else "")
        assert re.search(rf"<td>Number</td><td>attribution \(used\)</td><td>{rank}</td>\s*<td>{len(order)}</td>"
                         rf"<td>{re.escape(shown)}</td>", page), (neuron, shown)
        assert re.search(r"<td>Number</td><td>probeless</td><td>\d+</td>", page)  # the probe rank beside it
        assert f"Number: <b>{group}</b>" in page


def test_an_attribution_beside_an_encoded_result_is_compared(per_neuron, tmp_path):
    """Without a NeuronComparison the report compares the attribution with the encoded result's first ranking."""
    data = collect([per_neuron["encoded"], per_neuron["attribution"]])
    cmp = data.per_neuron["Number"].comparison
    assert cmp is not None and cmp.extra["ranking"] == "probeless" and cmp.config["k"] == 50
    html = section(report([per_neuron["encoded"], per_neuron["attribution"]], tmp_path / "r"))
    assert "first 50" in html and 'id="encoded-not-used"' in html


def test_an_attribution_alone(per_neuron, tmp_path):
    """No encoded ranking: the attribution's top neurons and verification, and no lists; a key does not rename it."""
    index = report({"Tense": per_neuron["attribution"]}, tmp_path / "r")
    html = section(index)
    assert "<h3>Number</h3>" in html and "No encoded ranking" in html and "encoded-not-used" not in html
    top = [str(n) for n in per_neuron["attribution"].rankings["attribution"][:10]]
    assert all(f'href="neurons/{n}.html"' in html for n in top) and "n_verified" in html
    # control: without an attribution or a comparison the section is absent
    assert 'id="per-neuron"' not in report([per_neuron["encoded"]], tmp_path / "r2").read_text()


def test_marked_tables_are_taken_by_kind(per_neuron):
    frame = per_neuron["comparison"].to_frame()
    data = collect({"anything": frame, "attr": per_neuron["attribution"].to_frame()})
    assert set(data.per_neuron) == {"Number"}
    assert data.per_neuron["Number"].comparison.encoded_not_used() == per_neuron["comparison"].encoded_not_used()
    assert data.per_neuron["Number"].attribution.kind == "attribution"


def test_results_folder_by_kind_not_by_name(per_neuron, results, tmp_path):
    """Saved with ``.save`` under any name, in the folder or one below: found by their ``.meta.json`` kind. A copy
    of the same CSV without its meta is not guessed into the section."""
    folder = tmp_path / "results"
    shutil.copytree(results, folder)
    per_neuron["attribution"].save(folder / "attribute" / "scores.csv")
    per_neuron["comparison"].save(folder / "odd_name.csv")
    data = collect(folder)
    assert data.per_neuron["Number"].comparison.counts() == per_neuron["comparison"].counts()
    assert data.per_neuron["Number"].attribution.table["score"].tolist() == pytest.approx(
        per_neuron["attribution"].table["score"].tolist())
    html = section(run_report(folder, tmp_path / "site"))
    assert {"L1.N11", "L1.N40", "L0.N13"} <= listed(html, "encoded-not-used")
    # control: the same tables without their meta are plain CSVs, not attributions
    bare = tmp_path / "bare"
    shutil.copytree(results, bare)
    shutil.copy(folder / "attribute" / "scores.csv", bare / "scores.csv")
    shutil.copy(folder / "odd_name.csv", bare / "odd_name.csv")
    assert collect(bare).per_neuron == {}
    # a folder holding only an attribution is a report of its own
    alone = tmp_path / "alone"
    per_neuron["attribution"].save(alone / "attribution.csv")
    assert "<h3>Number</h3>" in section(run_report(alone, tmp_path / "site2"))
