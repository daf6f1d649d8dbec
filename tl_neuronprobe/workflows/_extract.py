"""The ``extract`` job: a corpus through a model into word-aligned activations on disk, with layer statistics."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Sequence

from .. import models
from ..core import distributed
from ..data.corpus import Corpus
from ..data.extraction import MANIFEST_FILE, extract
from ._stats import layer_statistics

__all__ = ["extract_job"]


def extract_job(model: str, data: str, out: "str | Path", site: "str | Sequence[str]" = "mlp.post",
                layers: Sequence[int] | None = None, aggregation: str = "last", dtype: str = "float32",
                batch_size: int = 64, long_sentences: str = "error", device: str | None = None, seed: int = 0,
                progress: bool = True, device_map: "str | dict | None" = None, n_devices: int | None = None,
                sentences_per_block: int | None = None):
    """Load ``model`` and the corpus ``data`` (see :meth:`Corpus.load`), stream its activations into ``out`` and
    write ``out/layer_stats.csv``. Returns the :class:`~tl_neuronprobe.Activations`.

    Under ``torchrun`` every rank runs this: each loads the model on its own device (``LOCAL_RANK``'s GPU, or
    the CPU) unless ``device`` / ``device_map`` say otherwise, runs its share of the shards, and rank 0 writes
    the folder, the statistics and the summary line."""
    distributed.setup()
    if distributed.launched() and device is None and device_map is None and not n_devices:
        device = str(distributed.local_device())
    loaded = models.load(model, device=device, device_map=device_map, n_devices=n_devices)
    corpus = Corpus.load(data, seed=seed)
    t0 = time.perf_counter()
    acts = extract(loaded, corpus, site=site, layers=layers, aggregation=aggregation, dtype=dtype,
                   batch_size=batch_size, out_dir=out, long_sentences=long_sentences, progress=progress,
                   sentences_per_block=sentences_per_block)
    seconds = time.perf_counter() - t0
    if distributed.is_main():
        layer_statistics(acts).to_csv(Path(out) / "layer_stats.csv", index=False)
        manifest = json.loads((Path(out) / MANIFEST_FILE).read_text())
        print(f"{acts} written to {out} in {seconds:.1f} s ({len(manifest['shards'])} shards on "
              f"{manifest['world_size']} rank(s), {manifest['resumed_shards']} resumed)")
    distributed.barrier()
    return acts
