"""The encoded jobs: ``rank`` and ``evaluate-encoded`` over saved activations, and the demo's encoded stage.

Each job takes JSON-able inputs and one config and ends with ``summary.json`` (:func:`write_summary`), so
``tl-neuronprobe rerun`` can run it again; the numerics live in :mod:`tl_neuronprobe.evaluation.encoded` and
:mod:`tl_neuronprobe.rankers`.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..core.config import Config, write_summary
from ..core.plotting import pyplot
from ..data.activations import Activations
from ..evaluation.encoded import EncodedConfig, EncodedResult, evaluate_encoded
from ..rankers import make_ranker

__all__ = ["RankConfig", "rank_job", "evaluate_encoded_job", "demo_encoded", "write_encoded", "seeded_ranker",
           "DEMO_RANKERS", "DEMO_KS"]

#: rankers whose fit can run on an accelerator
DEVICE_RANKERS = ("linear", "gaussian", "l1")
DEMO_RANKERS = ("linear", "gaussian", "probeless", "mean_difference", "f_statistic", "average_precision", "random")
#: the demo's ks (those above the number of neurons are left out)
DEMO_KS = (1, 2, 5, 10, 20, 50, 100, 200)


@dataclasses.dataclass(frozen=True)
class RankConfig(Config):
    """Settings of :func:`rank_job` (``tl-neuronprobe rank``).

    Parameters
    ----------
    rankers : tuple of str
        Ranker names (:func:`tl_neuronprobe.rankers.make_ranker`), each fitted with ``seed``.
    k : int
        How many top neurons the summary lists per ranker.
    min_count : int
        Classes with fewer words are dropped.
    seed : int
        The rankers' seed.

    Examples
    --------
    >>> from tl_neuronprobe.workflows import RankConfig
    >>> RankConfig(rankers=["probeless"], k=5).to_dict()
    {'type': 'RankConfig', 'rankers': ['probeless'], 'k': 5, 'min_count': 2, 'seed': 0}
    """

    rankers: tuple = ("linear", "probeless")
    k: int = 20
    min_count: int = 2
    seed: int = 0

    def validate(self) -> None:
        if not self.rankers:
            raise ValueError("rankers is empty")
        if self.k < 1:
            raise ValueError(f"k must be at least 1, got {self.k}")
        if self.min_count < 1:
            raise ValueError(f"min_count must be at least 1, got {self.min_count}")


def seeded_ranker(name: str, seed: int = 0, **params: Any):
    """The ranker ``name`` with its seed set."""
    return make_ranker(name, **params).set_params(seed=seed)


def plain_table(table: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``table`` without its ``attrs`` (pandas deep-copies ``attrs`` on every operation)."""
    attrs, table.attrs = table.attrs, {}
    try:
        return table.copy()
    finally:
        table.attrs = attrs


def _load(activations: "str | Path", layer: int | None, out_dir: "str | Path") -> tuple[Activations, Path]:
    """Saved activations (one layer if ``layer``) and the output folder, created."""
    acts = Activations.load(activations)
    if layer is not None:
        acts = acts.select(layer=layer)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return acts, out_dir


def _ranking_table(acts: Activations, ranker, classes: Sequence[str]) -> pd.DataFrame:
    order = ranker.order_
    table = pd.DataFrame(dict(rank=np.arange(1, acts.n_neurons + 1), column=order,
                              neuron=[str(acts.neurons[j]) for j in order],
                              layer=[acts.neurons[j].layer for j in order], score=ranker.scores_[order]))
    if getattr(ranker, "driver_class_", None) is not None:  # which class gave the neuron its score (Probeless)
        table["driver_class"] = np.asarray(classes)[np.asarray(ranker.driver_class_, dtype=np.int64)][order]
        table["driver_share"] = np.asarray(ranker.driver_share_)[order]
    return table


def _write_per_class(acts: Activations, ranker, classes: Sequence[str], path: Path) -> None:
    if getattr(ranker, "per_class_", None) is None or np.ndim(ranker.per_class_) != 2:
        return
    table = pd.DataFrame(np.asarray(ranker.per_class_).T, columns=[str(c) for c in classes])
    table.insert(0, "neuron", [str(n) for n in acts.neurons])
    table.to_csv(path, index=False)


def rank_job(activations: "str | Path", attribute: str, out_dir: "str | Path", layer: int | None = None,
             config: RankConfig | None = None, device: str | None = None, progress: bool = True) -> dict:
    """Fit each ranker of ``config`` on saved activations.

    Writes ``rank_<ranker>.csv`` (every neuron, best first), ``per_class_<ranker>.csv`` where the ranker scores
    classes, ``rank_summary.json`` and ``summary.json`` (stage ``"rank"``); returns the rank summary.

    Examples
    --------
    >>> import tempfile, tl_neuronprobe as tnp
    >>> from tl_neuronprobe.workflows import RankConfig, rank_job
    >>> folder = tempfile.mkdtemp()
    >>> acts = tnp.extract(tnp.models.load("planted"), tnp.Corpus.load("synthetic:40"), out_dir=folder + "/acts",
    ...                    progress=False)
    >>> summary = rank_job(folder + "/acts", "Number", folder + "/rank", config=RankConfig(rankers=["probeless"]),
    ...                    progress=False)
    >>> sorted(summary["rankers"])
    ['probeless']
    """
    config = config if config is not None else RankConfig()
    inputs = dict(activations=str(activations), attribute=attribute, out_dir=str(out_dir), layer=layer)
    acts, out = _load(activations, layer, out_dir)
    X, y, classes, idx = acts.dataset(attribute, return_index=True, min_count=config.min_count)
    groups = np.asarray(acts.sentence_ids)[idx]
    summary: dict[str, Any] = dict(attribute=attribute, words=len(idx), neurons=acts.n_neurons, classes=classes,
                                   rankers={})
    for name in config.rankers:
        params = {"device": device} if device and name.lower() in DEVICE_RANKERS else {}
        ranker = seeded_ranker(name, config.seed, **params)
        t0 = time.perf_counter()
        ranker.fit(X, y, groups=groups)
        seconds = time.perf_counter() - t0
        _ranking_table(acts, ranker, classes).to_csv(out / f"rank_{name}.csv", index=False)
        _write_per_class(acts, ranker, classes, out / f"per_class_{name}.csv")
        top = [str(acts.neurons[j]) for j in ranker.order_[:config.k]]
        summary["rankers"][name] = dict(seconds=round(seconds, 2), top=top)
        if progress:
            print(f"{name}: {seconds:.1f}s  top {config.k}: {' '.join(top[:10])}{' ...' if config.k > 10 else ''}")
    (out / "rank_summary.json").write_text(json.dumps(summary, indent=2))
    write_summary(out, "rank", config, inputs)
    if progress:
        print(f"rankings written to {out}")
    return summary


def evaluate_encoded_job(activations: "str | Path", attribute: str, out_dir: "str | Path",
                         rankers: Sequence[str] | None = None, layer: int | None = None, k: int = 50,
                         test_activations: "str | Path | None" = None, config: EncodedConfig | None = None,
                         device: str | None = None, progress: bool = True) -> EncodedResult:
    """:func:`~tl_neuronprobe.evaluate_encoded` on saved activations (``layer``: only that layer's neurons).

    ``test_activations``: saved activations of held-out words (same neurons) to score on instead of a split of
    ``activations``; ``k``: the top-k whose layers ``encoded_layers.csv`` counts. Writes the files of
    :func:`write_encoded` under ``out_dir`` with the prefix ``encoded`` and ``summary.json`` (stage
    ``"encoded"``); returns the result.
    """
    config = config if config is not None else EncodedConfig()
    inputs = dict(activations=str(activations), attribute=attribute, out_dir=str(out_dir),
                  rankers=list(rankers) if rankers else None, layer=layer, k=k,
                  test_activations=str(test_activations) if test_activations is not None else None)
    acts, out = _load(activations, layer, out_dir)
    test = None
    if test_activations is not None:
        test = Activations.load(test_activations)
        test = test.select(layer=layer) if layer is not None else test
    result = evaluate_encoded(acts, attribute, list(rankers) if rankers else None, config, test=test, device=device,
                              progress=progress)
    write_encoded(result, out, prefix="encoded", k_layers=k)
    write_summary(out, "encoded", config, inputs)
    if progress:
        print(result.table.to_string(index=False, max_rows=60))
        print(f"encoded evaluation written to {out}")
    return result


def write_encoded(result: EncodedResult, out_dir: "str | Path", prefix: str, k_layers: int = 50
                  ) -> dict[str, list[str]]:
    """``<prefix>.csv`` (+ ``.meta.json``: kind, attribute, config, rankings) and ``.png`` (the curves),
    ``_layers.csv`` (where the top ``k_layers`` neurons live), ``_agreement.csv`` (ranker overlap) and
    ``_top_neurons.csv``; returns each ranking's top ten neurons."""
    out = Path(out_dir)
    result.save(out / f"{prefix}.csv")
    pyplot().close(result.plot(out / f"{prefix}.png"))
    n_neurons = len(result.neurons)
    result.layer_distribution(min(k_layers, n_neurons)).to_csv(out / f"{prefix}_layers.csv", index=False)
    ks = sorted({k for k in (10, 50, 100) if k <= n_neurons} or {n_neurons})
    result.ranker_agreement(ks).to_csv(out / f"{prefix}_agreement.csv", index=False)
    result.top_neurons(10).to_csv(out / f"{prefix}_top_neurons.csv", index=False)
    return {name: [str(n) for n in order[:10]] for name, order in result.rankings.items()}


def _accuracy_at(table: pd.DataFrame) -> dict:
    """Each ranker's logistic-probe accuracy on its top-k at the fourth smallest k (the demo's headline)."""
    ks = sorted(set(int(k) for k in table["k"]))
    at = ks[min(3, len(ks) - 1)]
    top = table[(table.selection == "top") & (table.probe == "logistic") & (table.k == at)]
    return dict(k=at, **{str(r): round(float(a), 3) for r, a in zip(top["ranking"], top["accuracy"])})


def demo_encoded(acts: Activations, out_dir: "str | Path", config: EncodedConfig | None = None, *,
                 attributes: Sequence[str] = ("upos", "Number"), rankers: Sequence[str] = DEMO_RANKERS,
                 progress: bool = False) -> dict:
    """The demo's encoded stage: for each attribute, the encoded curves (CSV + PNG), where the top neurons live,
    ranker agreement and every ranker's top neurons; ``encoded_summary.json`` (an attribute the activations lack
    is recorded there as such). ``config`` (default ``EncodedConfig(ks=DEMO_KS)``): its ks above the number of
    neurons are left out."""
    config = config if config is not None else EncodedConfig(ks=DEMO_KS)
    fitting = tuple(k for k in config.ks if k <= acts.n_neurons)
    config = config.replace(ks=fitting or (acts.n_neurons,))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {}
    for attr in attributes:
        if attr not in acts.attributes:
            summary[attr] = "not in these activations"
            continue
        t0 = time.perf_counter()
        result = evaluate_encoded(acts, attr, list(rankers), config, progress=progress)
        top = write_encoded(result, out, prefix=f"encoded_{attr}")
        summary[attr] = dict(seconds=round(time.perf_counter() - t0, 1), top_neurons=top,
                             fit_seconds={k: round(v, 2) for k, v in result.extra["fit_seconds"].items()},
                             logistic_accuracy_at_k=_accuracy_at(result.table))
    (out / "encoded_summary.json").write_text(json.dumps(summary, indent=2))
    return summary
