"""``report_job``: the neuron browser of a results folder (what ``tl-neuronprobe report`` calls)."""

from __future__ import annotations

from pathlib import Path

from ..reporting import run_report


def report_job(results: "str | Path", out: "str | Path | None" = None) -> Path:
    """Build the static HTML report of ``results`` (a folder the demo or the jobs wrote) into ``out`` (default:
    ``results/report``); prints and returns the path of its ``index.html``."""
    results = Path(results)
    if not results.is_dir():
        raise FileNotFoundError(f"results folder {results} does not exist")
    index = run_report(results, Path(out) if out else results / "report")
    print(f"report: {index}")
    return index
