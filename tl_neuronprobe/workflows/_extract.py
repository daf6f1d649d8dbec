"""The ``extract`` job: a corpus through a model into word-aligned activations on disk, with layer statistics."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Sequence

from .. import models
from ..core import distributed, units
from ..core.config import write_summary
from ..data.corpus import Corpus
from ..data.extraction import MANIFEST_FILE, ExtractConfig, extract
from ._stats import layer_statistics

__all__ = ["extract_job"]


def extract_job(model: str, corpus: str, out_dir: "str | Path", config: ExtractConfig | None = None, *,
                seed: int = 0, device_map: "str | dict | None" = None, n_devices: int | None = None,
                dictionaries: Sequence[str] = (), device: str | None = None, progress: bool = True):
    """Load ``model`` and ``corpus`` (a :meth:`Corpus.load` spec or file; ``seed`` draws a synthetic one), stream
    its activations into ``out_dir`` with ``config`` and write ``out_dir/layer_stats.csv`` and
    ``out_dir/summary.json`` (stage ``"extract"``: ``tl-neuronprobe rerun`` runs it again). Returns the
    :class:`~tl_neuronprobe.Activations`.

    ``device_map`` / ``n_devices`` place a Hugging Face model over several devices (see
    :func:`tl_neuronprobe.models.load`). Under ``torchrun`` every rank runs this: each loads the model on its own
    device (``LOCAL_RANK``'s GPU, or the CPU) unless ``device`` / ``device_map`` say otherwise, runs its share of
    the shards, and rank 0 writes the folder, the statistics, the summary and the summary line.

    ``dictionaries``: folders in SAELens's layout (:func:`tl_neuronprobe.units.load`) registered for this
    extraction, so that a dictionary site (``sae``, ``transcoder``, ...) reads their latents."""
    config = ExtractConfig() if config is None else config
    dictionaries = [str(p) for p in dictionaries]
    inputs = dict(model=model, corpus=str(corpus), out_dir=str(out_dir), seed=seed, device_map=device_map,
                  n_devices=n_devices, dictionaries=dictionaries)
    distributed.setup()
    if distributed.launched() and device is None and device_map is None and not n_devices:
        device = str(distributed.local_device())
    loaded = models.load(model, device=device, device_map=device_map, n_devices=n_devices)
    sentences = Corpus.load(corpus, seed=seed)
    t0 = time.perf_counter()
    with units.using(*[units.load(p) for p in dictionaries]):
        acts = extract(loaded, sentences, config, out_dir=out_dir, progress=progress)
    seconds = time.perf_counter() - t0
    if distributed.is_main():
        layer_statistics(acts).to_csv(Path(out_dir) / "layer_stats.csv", index=False)
        manifest = json.loads((Path(out_dir) / MANIFEST_FILE).read_text())
        write_summary(out_dir, "extract", config, inputs, seconds=round(seconds, 2), n_words=acts.n_words,
                      n_neurons=acts.n_neurons)
        print(f"{acts} written to {out_dir} in {seconds:.1f} s ({len(manifest['shards'])} shards on "
              f"{manifest['world_size']} rank(s), {manifest['resumed_shards']} resumed)")
    distributed.barrier()
    return acts
