"""Write the static report site (overview, neuron pages, images, search index) with Jinja2 templates."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd

from ._collect import ReportData, collect
from ._figures import copy_images, write_histograms
from ._neurons import TOP_N, hook_of, neuron_pages, page_neurons, search_entry, slug

__all__ = ["report", "run_report", "write_site"]

#: folders the report owns inside ``out_dir`` (cleared before each write)
OWNED = ("neurons", "img", "static")
MAX_CLASSES = 12


def report(results: Any, out_dir: "str | Path" = "report/") -> Path:
    """Build the static HTML report site (overview and one page per neuron) and return its ``index.html``.

    Parameters
    ----------
    results : folder, result object, or a mapping / list of them
        A results folder (as ``tl-neuronprobe demo`` and the jobs write it; saved results are read back with
        ``load_result``), or result objects: :class:`~tl_neuronprobe.Activations`, ``EncodedResult``,
        ``UsedResult``, ``Comparison``, ``Attribution``, ``NeuronComparison`` (the section "Encoded versus used,
        neuron by neuron", and each neuron's attribution rank on its page), ``TextualizeResult``,
        ``Descriptions``, a dict of settings. Each section
        is labelled from what the result says it is (its kind and attribute); in a mapping the key only names
        the model (``"model/..."``), so a used result and its comparison meet under their attribute.
    out_dir : str or Path
        The site folder (its ``neurons/``, ``img/`` and ``static/`` are rewritten).

    Returns
    -------
    Path
        ``out_dir / "index.html"``.

    Examples
    --------
    >>> import tempfile, tl_neuronprobe as tnp
    >>> acts = tnp.extract(tnp.models.load("planted"), tnp.Corpus.load("synthetic:40"), progress=False)
    >>> index = tnp.report({"activations": acts}, tempfile.mkdtemp())
    >>> index.name
    'index.html'
    """
    return write_site(collect(results), Path(out_dir))


def run_report(results_dir: "str | Path", out_dir: "str | Path") -> Path:
    """``tl-neuronprobe report RESULTS --out-dir DIR``: the report of a results folder; returns its ``index.html``."""
    return report(Path(results_dir), out_dir)


def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("tl_neuronprobe.reporting", "templates"),
                             autoescape=jinja2.select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["cell"] = _cell
    env.globals["slug"] = slug
    return env


def _cell(v: Any) -> str:
    """A table cell: floats to 4 significant digits, missing values empty."""
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.4g}"
    return str(v)


def _table(df: "pd.DataFrame | None", max_rows: int = 400) -> dict | None:
    """A DataFrame as columns + rows for the ``table`` macro."""
    if df is None or df.empty:
        return None
    df = df.head(max_rows)
    return dict(columns=[str(c) for c in df.columns], rows=df.astype(object).values.tolist())


def _prepare(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name in OWNED:
        shutil.rmtree(out / name, ignore_errors=True)
    (out / "neurons").mkdir()
    static = resources.files("tl_neuronprobe.reporting") / "static"
    (out / "static").mkdir()
    for item in static.iterdir():
        if item.is_file():
            (out / "static" / item.name).write_bytes(item.read_bytes())


def _corpus(data: ReportData) -> dict:
    s = data.settings
    info: dict[str, Any] = dict(name=s.get("corpus", ""), sentences=s.get("n_sentences"), words=s.get("words"),
                                attributes=[])
    acts = data.acts
    if acts is None:
        return info
    info.update(sentences=len(np.unique(acts.sentence_ids)), words=acts.n_words)
    for attr, values in acts.attributes.items():
        counts = Counter(str(v) for v in values if v is not None)
        shown = ", ".join(f"{c} {n}" for c, n in counts.most_common(MAX_CLASSES))
        more = len(counts) - MAX_CLASSES
        info["attributes"].append(dict(name=attr, words=sum(counts.values()), classes=len(counts),
                                       counts=shown + (f", +{more} more" if more > 0 else "")))
    return info


def _encoded_sections(data: ReportData, images: dict[str, str]) -> list[dict]:
    out = []
    for attr, table in data.encoded.items():
        t = table[(table["selection"] == "top")] if "selection" in table.columns else table
        if "probe" in t.columns and "logistic" in set(t["probe"]):
            t = t[t["probe"] == "logistic"]
        curve = t.pivot_table(index="ranking", columns="k", values="accuracy").reset_index()
        curve.columns = [f"k={c}" if c != "ranking" else c for c in curve.columns]
        top = data.top_neurons.get(attr)
        top_wide = (top.pivot_table(index="rank", columns="ranking", values="neuron", aggfunc="first").reset_index()
                    if top is not None else None)
        out.append(dict(attribute=attr, image=images.get(f"encoded_{attr}"), curve=_table(curve),
                        top=_table(top_wide)))
    return out


def _used_curves(used: "pd.DataFrame | None") -> list[dict]:
    """Per metric of the used table (in its order: the readout's default first), ranking x k for the top-k and the
    random-k baseline as its own row, so a used result shows its numbers even without a comparison (for the
    identity readout: how often the prediction changed, and flipped to the same lemma with another value)."""
    if used is None or used.empty or not {"ranking", "selection", "k", "metric", "value"} <= set(used.columns):
        return []
    out = []
    for metric in dict.fromkeys(used["metric"]):
        t = used[used["metric"] == metric]
        top = t[t["selection"] == "top"].pivot_table(index="ranking", columns="k", values="value").reset_index()
        rand = t[t["selection"] == "random"]
        if len(rand):
            row = rand.groupby("k")["value"].mean().to_frame().T.assign(ranking="random-k baseline")
            top = pd.concat([top, row.reset_index(drop=True)], ignore_index=True)
        top.columns = [f"k={c}" if c != "ranking" else c for c in top.columns]
        shown = _table(top)
        if shown:
            out.append(dict(metric=str(metric), **shown))
    return out


def _used_sections(data: ReportData, images: dict[str, str]) -> list[dict]:
    out = []
    for i, res in enumerate(data.used):
        top = None
        if res.top_neurons is not None:
            top = (res.top_neurons[res.top_neurons["rank"] <= 10]
                   .pivot_table(index="rank", columns="ranking", values="neuron", aggfunc="first").reset_index())
        out.append(dict(model=res.model, attribute=res.attribute, summary=res.summary, per_k=_table(res.per_k),
                        curves=_used_curves(res.used), top=_table(top), images=[images[f"used_{i}_{p.stem}"] for p in res.images]))
    return out


#: rows shown of each per-neuron list (the full lists are in the saved comparison)
LIST_ROWS = 50


def _facts(extra: dict) -> dict | None:
    """An attribution's scalar ``extra`` (cost, verification against exact patching) as a two-column table."""
    rows = [[k, v] for k, v in extra.items() if isinstance(v, (str, int, float, bool, np.floating, np.integer))]
    return dict(columns=["", "value"], rows=rows) if rows else None


def _per_neuron_sections(data: ReportData, img: Path) -> list[dict]:
    """Encoded versus used, neuron by neuron, per attribute: the scatter of the per-neuron comparison and its
    two lists, the attribution's top neurons, its estimate-vs-exact figure and its verification."""
    from ..core.plotting import pyplot

    plt, out = pyplot(), []
    img.mkdir(parents=True, exist_ok=True)
    for i, (attr, section) in enumerate(data.per_neuron.items()):
        entry: dict[str, Any] = dict(attribute=attr, summary="", images=[], encoded_not_used=None,
                                     used_not_encoded=None, top=None, facts=None)
        cmp, attribution = section.comparison, section.attribution
        if cmp is not None:
            plt.close(cmp.plot(img / f"per_neuron_{i}.png"))
            t = cmp.table.drop(columns=["encoded_score"])
            entry.update(summary=str(cmp), images=[dict(src=f"per_neuron_{i}.png", alt=f"{attr}: encoded score "
                                                        "against used score, one panel per layer")],
                         encoded_not_used=_table(t[t["group"] == "encoded, not used"].drop(columns="group")
                                                 .sort_values("encoded_rank"), LIST_ROWS),
                         used_not_encoded=_table(t[t["group"] == "used, not encoded"].drop(columns="group")
                                                 .sort_values("used_rank"), LIST_ROWS))
        if attribution is not None:
            plt.close(attribution.plot(img / f"attribution_{i}.png"))
            entry["images"].append(dict(src=f"attribution_{i}.png", alt=f"{attr}: attribution estimate against "
                                                                         "exact single-neuron patching"))
            shown = [c for c in ("neuron", "rank", "score", "exact", "verified") if c in attribution.table.columns]
            entry.update(top=_table(attribution.table.sort_values("rank", kind="stable")[shown], TOP_N),
                         facts=_facts(attribution.extra))
        out.append(entry)
    return out


def _settings(data: ReportData) -> tuple[str, str]:
    """The run's settings as JSON, and the command that re-runs it (when the results came from the demo)."""
    s = dict(data.settings)
    if data.acts is not None:
        s["activations"] = data.acts.meta
    rerun = ""
    if "stage" in s and "config" in s:  # written by write_summary: the run can be repeated from it
        rerun = f"tl-neuronprobe rerun {Path(s.get('inputs', {}).get('out_dir', '.')) / 'summary.json'}"
    return json.dumps(s, indent=2, default=str), rerun


def write_site(report_data: ReportData, out_dir: "str | Path") -> Path:
    """Render ``report_data`` (from :func:`collect`) into the folder ``out_dir``; returns its ``index.html``."""
    data = report_data
    out = Path(out_dir)
    _prepare(out)
    images = dict(data.images)
    for i, res in enumerate(data.used):
        images.update({f"used_{i}_{p.stem}": p for p in res.images})
    image_names = copy_images(images, out / "img")
    neurons = page_neurons(data)
    pages, values = neuron_pages(data, neurons)
    hist = write_histograms(values, {p["name"]: p["slug"] for p in pages}, out / "img")
    have = {p["name"] for p in pages}
    env = _env()
    common = dict(model=data.model_name or "model", have=have)
    for i, page in enumerate(pages):
        html = env.get_template("neuron.html").render(
            root="../", page=page, hist=hist.get(page["name"]), prev=pages[i - 1]["slug"] if i else None,
            next=pages[i + 1]["slug"] if i + 1 < len(pages) else None, title=page["name"], **common)
        (out / "neurons" / f"{page['slug']}.html").write_text(html, encoding="utf-8")
    settings, rerun = _settings(data)
    html = env.get_template("index.html").render(
        root="", title=f"{data.model_name or 'model'}: neuron report", corpus=_corpus(data),
        sites=sorted({n.site for n in data.acts.neurons}) if data.acts is not None else [],
        hooks=_hook_examples(data), layer_stats=_table(data.layer_stats), layer_image=image_names.get("layer_stats"),
        encoded=_encoded_sections(data, image_names), used=_used_sections(data, image_names),
        per_neuron=_per_neuron_sections(data, out / "img"),
        textualize=_table(data.textualize.drop(columns=["tokens"], errors="ignore")
                          if data.textualize is not None else None),
        descriptions=_table(data.descriptions), units=_units_section(data), settings=settings, rerun=rerun,
        neurons=_index_rows(pages),
        **common)
    (out / "index.html").write_text(html, encoding="utf-8")
    entries = [search_entry(p) for p in pages]
    (out / "static" / "search-index.js").write_text(
        "window.TNP_INDEX = " + json.dumps(entries, separators=(",", ":")) + ";\n", encoding="utf-8")
    return out / "index.html"


def _units_section(data: ReportData) -> dict | None:
    """Neurons beside latents: the comparison table (rounded) and what the dictionary is."""
    if data.units.compare is None or data.units.compare.empty:
        return None
    table = data.units.compare.copy()
    for c in table.columns:
        if table[c].dtype.kind == "f":
            table[c] = table[c].round(3)
    info = next(iter(data.units.dictionaries.values()), {})
    return dict(table=_table(table, max_rows=1000), dictionary={k: v for k, v in info.items()
                                                                if isinstance(v, (str, int, float))})


def _index_rows(pages: list[dict]) -> list[dict]:
    """One row per neuron page for the overview's neuron index."""
    return [dict(name=p["name"], slug=p["slug"], layer=p["layer"], index=p["index"], site=p["site"],
                 max=(p["stats"] or {}).get("max", ""), lists=sum(r["rank"] is not None for r in p["ranks"]),
                 textualized=bool(p["textualize"]), word=p["positive"][0]["word"] if p["positive"] else "")
            for p in pages]


def _hook_examples(data: ReportData) -> list[str]:
    if data.acts is None:
        return []
    return sorted({hook_of(n, data.units.dictionaries) for n in data.acts.neurons}, key=lambda h: (len(h), h))
