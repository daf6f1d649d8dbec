"""``report_job``: the neuron browser of a results folder or of an activations folder (what
``tl-neuronprobe report`` calls)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..data.activations import Activations
from ..evaluation.results import mark
from ..reporting import is_activations_folder, report, run_report
from ._stats import layer_statistics

__all__ = ["report_job", "activation_top_neurons"]

#: neurons per layer listed by their largest activation when the folder holds activations only
TOP_PER_LAYER = 10


def activation_top_neurons(acts: Activations, k: int = TOP_PER_LAYER) -> pd.DataFrame:
    """Per (site, layer), the ``k`` neurons with the largest activation over the corpus words, as a top-neurons
    table (``ranking`` = ``"max activation L{layer}"``, rank, neuron, score = that activation): what an
    activations folder alone can say about which neurons to look at."""
    X = acts.X.float()
    top = X.max(0).values
    rows = []
    for site, layer in sorted({(nr.site, nr.layer) for nr in acts.neurons}):
        cols = [i for i, nr in enumerate(acts.neurons) if nr.site == site and nr.layer == layer]
        best = sorted(cols, key=lambda i: -float(top[i]))[:k]
        name = f"max activation L{layer}" + (f"@{site}" if site != "mlp.post" else "")
        rows += [dict(ranking=name, rank=r + 1, neuron=str(acts.neurons[i]), score=float(top[i]))
                 for r, i in enumerate(best)]
    return mark(pd.DataFrame(rows), "top_neurons", "activation")


def report_job(results: "str | Path", out_dir: "str | Path | None" = None, progress: bool = True) -> Path:
    """Build the static HTML report of ``results`` into ``out_dir`` (default: ``results/report``); returns the
    path of its ``index.html`` (printed when ``progress``).

    ``results``: a folder the demo or the jobs wrote, or an activations folder (``acts.save``,
    ``tl-neuronprobe extract``), whose report shows the corpus, the layer statistics and, per layer, the
    neurons with the largest activations (with their pages)."""
    results = Path(results)
    if not results.is_dir():
        raise FileNotFoundError(f"results folder {results} does not exist")
    out_dir = Path(out_dir) if out_dir else results / "report"
    if is_activations_folder(results):
        acts = Activations.load(results)
        index = report({"activations": acts, "layer statistics": mark(layer_statistics(acts), "layer_stats"),
                        "top neurons": activation_top_neurons(acts)}, out_dir)
    else:
        index = run_report(results, out_dir)
    if progress:
        print(f"report: {index}")
    return index
