"""Attribution estimate against exact single-neuron patching on the planted model, every neuron of the layers.

    .venv/bin/python tests/attribution/measure_planted_attribution.py [--layers 1] [--n-sentences 200]

Prints, per (edit, readout, ig_steps): Spearman of estimate and exact effect over every attributed neuron, the
top-4 overlap, and the seconds of the estimate and of exhaustive exact patching.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import tl_neuronprobe as tnp
from tl_neuronprobe import interventions as iv
from tl_neuronprobe.evaluation.attribution import AttributionConfig, Verify, exact_effects, _spearman


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, nargs="+", default=[1])
    parser.add_argument("--n-sentences", type=int, default=200)
    parser.add_argument("--n-samples", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = tnp.models.load("planted")
    corpus = tnp.testing.planted_corpus(args.n_sentences, seed=0)
    runs = [(iv.Zero(), iv.Identity(), 1), (iv.Mean(), iv.Identity(), 1), (iv.Zero(), iv.Identity(), 4),
            (iv.Mean(), iv.Identity(), 4), (iv.Zero(), iv.Divergence(), 1), (iv.Mean(), iv.Divergence(), 1),
            (iv.Zero(), iv.EmbeddingDistance(), 1), (iv.Mean(), iv.EmbeddingDistance(), 1)]
    print(f"planted model, layers {args.layers}, {args.n_sentences} sentences, n_samples {args.n_samples}")
    print("| edit | readout (metric) | ig_steps | neurons | Spearman | top-4 overlap | estimate s | exact s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for edit, readout, steps in runs:
        config = AttributionConfig(edit=edit, readout=readout, layers=tuple(args.layers), ig_steps=steps,
                                   n_samples=args.n_samples, verify=Verify(top=0, n_random=0))
        t = time.perf_counter()
        attr = tnp.attribute_used(model, corpus, "Number", config, progress=False)
        est_s = time.perf_counter() - t
        t = time.perf_counter()
        exact = exact_effects(model, corpus, "Number", attr.neurons, config)
        exact_s = time.perf_counter() - t
        est, ex = attr.scores_, exact["exact"].to_numpy()
        top = len(set(np.argsort(-np.abs(est))[:4]) & set(np.argsort(-np.abs(ex))[:4])) / 4
        print(f"| {edit.name} | {readout.name} ({attr.extra['metric']}) | {steps} | {len(est)} | "
              f"{_spearman(est, ex):.3f} | {top:.2f} | {est_s:.2f} | {exact_s:.2f} |")


if __name__ == "__main__":
    main()
