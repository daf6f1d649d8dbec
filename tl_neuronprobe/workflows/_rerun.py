"""Run any stage again from the ``summary.json`` it wrote: ``tl-neuronprobe rerun <out_dir>/summary.json``.

A job's summary holds its stage, its inputs (model, corpus, files, ``out_dir``) and ``config.to_dict()``
(:func:`tl_neuronprobe.core.config.write_summary`), so the same job with the same config runs again; ``out_dir``
may point the new run elsewhere, ``device`` and ``progress`` are not part of a result and are given anew.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.config import read_summary
from ._attribute import attribute_job
from ._demo import demo
from ._describe import describe_job
from ._encoded import evaluate_encoded_job, rank_job
from ._extract import extract_job
from ._textualize import textualize_job, words_needed_job
from ._used import compare_job, evaluate_used_job

__all__ = ["JOBS", "rerun"]

#: stage name (``summary.json``'s ``"stage"``) -> the workflow function that runs it
JOBS = {"extract": extract_job, "rank": rank_job, "encoded": evaluate_encoded_job, "used": evaluate_used_job,
        "compare": compare_job, "textualize": textualize_job, "words_needed": words_needed_job,
        "describe": describe_job, "attribute": attribute_job, "demo": demo}


def rerun(summary: "str | Path", out_dir: "str | Path | None" = None, *, device: "str | None" = None,
          progress: bool = True) -> Any:
    """Run the stage recorded in ``summary`` (a ``summary.json`` or the folder holding it) again, with the same
    inputs and config; ``out_dir`` (default: the recorded one) is where the new run writes."""
    stage, inputs, config = read_summary(summary)
    if stage not in JOBS:
        raise ValueError(f"{summary}: unknown stage {stage!r}; rerun knows {sorted(JOBS)}")
    if out_dir is not None:
        inputs = {**inputs, "out_dir": str(out_dir)}
    return JOBS[stage](**inputs, config=config, device=device, progress=progress)
