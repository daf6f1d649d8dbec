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
from ..data.extraction import ExtractConfig, extract
from ..evaluation.encoded import EncodedConfig, evaluate_encoded
from ..evaluation.used import Baselines, UsedConfig, evaluate_used
from ..interventions import Agreement, Identity, Translate
from ._used import write_comparison

__all__ = ["demo_used", "USED_RANKERS", "USED_KS", "USED_CONFIG"]

USED_RANKERS = ("probeless", "linear", "gaussian")
USED_KS = (1, 2, 5, 10, 20, 50, 100)
#: the demo model's used evaluation: scaled translation, identity readout (the model's own predicted words, through
#: MiniLM's shipped MLM head; the demo judges them with its whole corpus's lexicon)
USED_CONFIG = UsedConfig(edit=Translate(alpha="scaled", beta=8.0), readout=Identity(), ks=USED_KS,
                         baselines=Baselines(n_random=2))


def _layer_activations(model, corpus: Corpus, layer: int, acts, progress: bool):
    """``mlp.post`` activations of one layer: a selection of ``acts`` when it holds that layer, else extracted."""
    if acts is not None and layer in acts.layers and len(acts.words) == corpus.n_words:
        return acts.select(layer=layer)
    return extract(model, corpus, ExtractConfig(site="mlp.post", layers=(layer,)), progress=progress)


def _encoded_and_used(model, name: str, corpus: Corpus, attribute: str, layer: int, out: Path,
                      config: UsedConfig, rankers: Sequence[str], acts, progress: bool) -> dict:
    """Encoded and used curves for one (model, attribute) on one layer, their comparison, files under ``out``."""
    t0 = time.perf_counter()
    layer_acts = _layer_activations(model, corpus, layer, acts, progress)
    ks = [k for k in config.ks if k <= layer_acts.n_neurons]
    encoded = evaluate_encoded(layer_acts, attribute, list(rankers),
                               EncodedConfig(ks=ks, probes=("logistic",), control=False, seed=config.seed))
    t1 = time.perf_counter()
    used = evaluate_used(model, corpus, attribute, encoded.rankings, config.replace(ks=ks), progress=progress)
    t2 = time.perf_counter()
    stem = f"{name}_{attribute}"
    # which neurons each used top-k held, for the report's neuron pages
    encoded.top_neurons(max(ks)).to_csv(out / f"used_{stem}_top_neurons.csv", index=False)
    encoded.save(out / f"encoded_{stem}.csv")  # with .meta.json: kind, attribute, rankings, for the report
    used.save(out / f"used_{stem}.csv")
    pyplot().close(used.plot(out / f"used_{stem}.png"))
    comparison = write_comparison(encoded, used, out, f"compare_{stem}")
    info = used.extra
    return dict(layer=layer, readout=info["readout"], forward_passes=info["forward_passes"],
                strategy=info["strategy"], encoded_seconds=round(t1 - t0, 1), used_seconds=round(t2 - t1, 1),
                summary=comparison.summary)


def _agreement_decoder(out: Path, config: UsedConfig, n_sentences: int, attributes: Sequence[str],
                       rankers: Sequence[str], progress: bool) -> dict[str, Any]:
    """Number and UPOS neurons of the agreement decoder (trained here), judged by their effect on agreement."""
    t0 = time.perf_counter()
    seed = config.seed
    decoder = models.load("agreement", seed=seed)
    summary: dict[str, Any] = {"agreement_decoder": dict(report=str(decoder.agreement),
                                                         seconds=round(time.perf_counter() - t0, 1))}
    corpus = Corpus.synthetic(n_sentences, seed=seed + 7)
    config = config.replace(edit=Translate(alpha=8.0), readout=Agreement(form_attribute="Number"),
                            baselines=Baselines())
    for attr in attributes:
        summary[f"agreement/{attr}"] = _encoded_and_used(decoder, "agreement", corpus, attr, 0, out, config, rankers,
                                                         None, progress)
    return summary


def demo_used(out_dir: "str | Path", model, corpus: Corpus, attributes: Sequence[str] = ("upos", "Number"),
              model_name: str = "model", acts=None, config: UsedConfig = USED_CONFIG,
              rankers: Sequence[str] = USED_RANKERS, agreement: bool = True, agreement_n_sentences: int = 300,
              progress: bool = False) -> dict:
    """Encoded versus used for each attribute on ``model``'s middle layer over ``corpus`` under ``config``
    (:data:`USED_CONFIG`: scaled translation and the identity readout: how often MiniLM's predicted word changes,
    and changes to the same lemma with another value of the attribute; a model without an MLM head needs
    ``config.replace(readout=Divergence())``), reusing the layer from ``acts`` when given; with ``agreement``,
    also Number and UPOS on the agreement decoder (``config`` with ``Translate(alpha=8.0)``, the agreement readout
    and the default baselines).

    Writes ``encoded_*.csv``, ``used_*.csv/png``, ``compare_*.csv/png/txt`` and ``used_summary.json`` under
    ``out_dir``; returns the summary.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {}
    if agreement:
        summary.update(_agreement_decoder(out, config, agreement_n_sentences, ("Number", "upos"), rankers,
                                          progress))
    layer = ModelAdapter.wrap(model).n_layers // 2
    for attr in attributes:
        summary[f"{model_name}/{attr}"] = _encoded_and_used(model, model_name, corpus, attr, layer, out, config,
                                                            rankers, acts, progress)
    (out / "used_summary.json").write_text(json.dumps(summary, indent=2, default=str))
    for key, val in summary.items():
        if isinstance(val, dict) and "summary" in val:
            print(f"[used] {key}: {val['summary']}")
    return summary
