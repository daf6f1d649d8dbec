"""The demo's used stage: encoded versus used curves per attribute, on the demo's model and on the small
agreement decoder (a testbed whose agreement readout shows what "used" means on its synthetic English)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Sequence

from .. import models
from ..core.adapter import ModelAdapter
from ..core.plotting import pyplot
from ..data.corpus import Corpus
from ..data.extraction import extract
from ..evaluation.encoded import evaluate_encoded
from ..evaluation.results import save_table
from ..evaluation.used import evaluate_used, plot_used
from ..interventions.readouts import AgreementReadout
from ._encoded import plain_table, top_neurons_table
from ._used import write_comparison

__all__ = ["demo_used", "USED_RANKERS", "USED_KS"]

USED_RANKERS = ("probeless", "linear", "gaussian")
USED_KS = (1, 2, 5, 10, 20, 50, 100)


def _layer_activations(model, corpus: Corpus, layer: int, acts, progress: bool):
    """``mlp.post`` activations of one layer: a selection of ``acts`` when it holds that layer, else extracted."""
    if acts is not None and layer in acts.layers and len(acts.words) == corpus.n_words:
        return acts.select(layer=layer)
    return extract(model, corpus, site="mlp.post", layers=[layer], progress=progress)


def _encoded_and_used(model, name: str, corpus: Corpus, attribute: str, layer: int, out: Path, seed: int,
                      readout, ks: Sequence[int], rankers: Sequence[str], acts, progress: bool, **options) -> dict:
    """Encoded and used curves for one (model, attribute) on one layer, their comparison, files under ``out``."""
    t0 = time.perf_counter()
    layer_acts = _layer_activations(model, corpus, layer, acts, progress)
    ks = [k for k in ks if k <= layer_acts.n_neurons]
    encoded = evaluate_encoded(layer_acts, attribute, rankers=list(rankers), ks=ks, probes=("logistic",),
                               control=False, seed=seed)
    t1 = time.perf_counter()
    used = evaluate_used(model, corpus, attribute, encoded, ks, readout=readout, seed=seed, progress=progress,
                         **options)
    t2 = time.perf_counter()
    stem = f"{name}_{attribute}"
    # which neurons each used top-k held, for the report's neuron pages
    top_neurons_table(encoded.attrs.get("neurons") or layer_acts.neurons, encoded.attrs["orders"],
                      n=max(ks)).to_csv(out / f"used_{stem}_top_neurons.csv", index=False)
    save_table(encoded, out / f"encoded_{stem}.csv")  # with .meta.json: kind and attribute, for the report
    save_table(used, out / f"used_{stem}.csv")
    encoded, info = plain_table(encoded), used.attrs
    used = plain_table(used)
    pyplot().close(plot_used(used, out / f"used_{stem}.png"))
    comparison = write_comparison(encoded, used, out, f"compare_{stem}")
    return dict(layer=layer, readout=info["readout"], forward_passes=info["forward_passes"],
                strategy=info["strategy"], encoded_seconds=round(t1 - t0, 1), used_seconds=round(t2 - t1, 1),
                summary=comparison.summary)


def _agreement_decoder(out: Path, seed: int, sentences: int, attributes: Sequence[str], ks: Sequence[int],
                       rankers: Sequence[str], progress: bool) -> dict[str, Any]:
    """Number and UPOS neurons of the agreement decoder (trained here), judged by their effect on agreement."""
    t0 = time.perf_counter()
    decoder = models.load("agreement", seed=seed)
    summary: dict[str, Any] = {"agreement_decoder": dict(report=str(decoder.agreement),
                                                         seconds=round(time.perf_counter() - t0, 1))}
    corpus = Corpus.synthetic(sentences, seed=seed + 7)
    for attr in attributes:
        readout = AgreementReadout(form_attribute="Number")
        summary[f"agreement/{attr}"] = _encoded_and_used(decoder, "agreement", corpus, attr, 0, out, seed, readout,
                                                         ks, rankers, None, progress, alpha=8.0)
    return summary


def demo_used(out_dir: "str | Path", model, corpus: Corpus, attributes: Sequence[str] = ("upos", "Number"),
              model_name: str = "model", acts=None, seed: int = 0, ks: Sequence[int] = USED_KS,
              rankers: Sequence[str] = USED_RANKERS, agreement: bool = True, agreement_sentences: int = 300,
              progress: bool = False) -> dict:
    """Encoded versus used for each attribute on ``model``'s middle layer over ``corpus`` (divergence readout:
    MiniLM's MLM head is untrained, so the change of its hidden states is what is read), reusing the layer from
    ``acts`` when given; with ``agreement``, also Number and UPOS on the agreement decoder (agreement readout).

    Writes ``encoded_*.csv``, ``used_*.csv/png``, ``compare_*.csv/png/txt`` and ``used_summary.json`` under
    ``out_dir``; returns the summary.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {}
    if agreement:
        summary.update(_agreement_decoder(out, seed, agreement_sentences, ("Number", "upos"), ks, rankers, progress))
    layer = ModelAdapter.wrap(model).n_layers // 2
    for attr in attributes:
        summary[f"{model_name}/{attr}"] = _encoded_and_used(model, model_name, corpus, attr, layer, out, seed,
                                                            "divergence", ks, rankers, acts, progress,
                                                            alpha="scaled", beta=8.0, n_random=2)
    (out / "used_summary.json").write_text(json.dumps(summary, indent=2, default=str))
    for key, val in summary.items():
        if isinstance(val, dict) and "summary" in val:
            print(f"[used] {key}: {val['summary']}")
    return summary

