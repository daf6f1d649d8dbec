"""The ``extract`` job: a corpus through a model into word-aligned activations on disk, with layer statistics."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

from .. import models
from ..data.corpus import Corpus
from ..data.extraction import extract
from ._stats import layer_statistics

__all__ = ["extract_job"]


def extract_job(model: str, data: str, out: "str | Path", site: "str | Sequence[str]" = "mlp.post",
                layers: Sequence[int] | None = None, aggregation: str = "last", dtype: str = "float32",
                batch_size: int = 64, long_sentences: str = "error", device: str | None = None, seed: int = 0,
                progress: bool = True):
    """Load ``model`` and the corpus ``data`` (see :meth:`Corpus.load`), stream its activations into ``out`` and
    write ``out/layer_stats.csv``. Returns the :class:`~tl_neuronprobe.Activations`."""
    loaded = models.load(model, device=device)
    corpus = Corpus.load(data, seed=seed)
    t0 = time.perf_counter()
    acts = extract(loaded, corpus, site=site, layers=layers, aggregation=aggregation, dtype=dtype,
                   batch_size=batch_size, out_dir=out, long_sentences=long_sentences, progress=progress)
    seconds = time.perf_counter() - t0
    layer_statistics(acts).to_csv(Path(out) / "layer_stats.csv", index=False)
    print(f"{acts} written to {out} in {seconds:.1f} s")
    return acts
