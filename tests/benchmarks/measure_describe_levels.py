"""Descriptions at several activation levels against length-matched and full lookup tables, on MiniLM over the
shipped held-out slice (issue 25's table: levels x methods x scores, with description lengths).

    python tests/benchmarks/measure_describe_levels.py --n-sentences 1500 --layers 3 \
        --levels 0.001,0.01,0.05,adaptive --out describe_levels.json

For each level, ``describe`` with ``DescribeConfig(quantile=level, search=Search(threshold="quantile"))`` (the
neuron fires on its top ``level`` of fit words; ``adaptive``: the default threshold, fitted to the neuron's best
concept) on ``mlp.post`` of the given layers; everything is fitted on 70% of the sentences and scored on the other
30% (``describe``'s own split). ``--sets N`` adds N word sets from MiniLM's input embedding
(``word_set_concepts``, issue 25's lexical-semantic concepts), counted by their members in ``length``. Printed per
level and method, means over the neurons the description method describes: held-out F1, simulation correlation
(over all held-out words, and "top+random": over each neuron's 20 held-out sentences with the highest activation
and 20 random ones, as Bills et al. score explanations), word-level hard-negative detection, sentence-level
detection and fuzzing (delphi-style, the description as the judge), and the mean length (concepts, or lookup
entries); then the levels read together (``level_simulation``: a graded simulation over all neurons, beside the
lookup of as many forms as the levels' descriptions have concepts in all).
One torch thread by default.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import tl_neuronprobe as tnp
from tl_neuronprobe.descriptions import (DescribeConfig, Search, describe, form_vectors, level_simulation,
                                         word_set_concepts)

COLUMNS = ("f1", "simulation_corr", "simulation_top_random", "detection_bacc", "context_detection_bacc", "fuzzing_bacc",
           "length")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-sentences", type=int, default=1500)
    ap.add_argument("--layers", default="3")
    ap.add_argument("--levels", default="0.001,0.01,0.05,adaptive")
    ap.add_argument("--sets", type=int, default=0,
                    help="add N word sets clustered from MiniLM's input embedding (word_set_concepts; 0: none)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    corpus = tnp.Corpus.load(f"ud-english:{args.n_sentences}")
    model = tnp.models.load("minilm", device="cpu")
    layers = tuple(int(x) for x in args.layers.split(","))
    acts = tnp.extract(model, corpus, tnp.ExtractConfig(site="mlp.post", layers=layers), progress=False)
    sets = (word_set_concepts(corpus.words, lambda forms: form_vectors(model, forms), n_sets=args.sets)
            if args.sets else None)
    out: dict = dict(corpus=corpus.name, n_words=corpus.n_words, layers=layers, sets=args.sets, levels={})
    lines = ["| level | method | described | F1 | simulation (all words) | simulation (top+random) | word detection | "
             "sentence detection | fuzzing | length |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    described = {}
    for level in args.levels.split(","):
        config = (DescribeConfig(search=Search(levels=())) if level == "adaptive"  # one level per call, timed
                  else DescribeConfig(quantile=float(level), search=Search(threshold="quantile", levels=())))
        t0 = time.perf_counter()
        d = described[level] = describe(acts, corpus, config=config, discovered=sets)
        seconds = time.perf_counter() - t0
        n_described = int(d.table["described"].sum())
        m = d.compare_methods()
        out["levels"][level] = dict(seconds=round(seconds, 1), described=n_described, n_neurons=len(d.neurons),
                                    methods=m.to_dict(orient="records"))
        for row in m.itertuples():
            cells = " | ".join(f"{getattr(row, c):.3f}" if c != "length" else f"{row.length:.1f}" for c in COLUMNS)
            lines.append(f"| {level} | {row.method} | {n_described}/{len(d.neurons)} | {cells} |")
        first = d.table.loc[d.table["described"], "family"].value_counts().to_dict()
        out["levels"][level]["first_family"] = first
        print(f"level {level}: {n_described}/{len(d.neurons)} described, {seconds:.0f} s; first term's family "
              f"{first}", flush=True)
    table = "\n".join(lines)
    print(table)
    out["markdown"] = table
    if len(described) > 1:  # the levels read together (level_simulation), over the graded method's neurons
        g = level_simulation(described, acts)
        mean = g.groupby("method", sort=False)[["simulation_corr", "simulation_top_random", "length"]].mean()
        graded = ["| levels read together | simulation (all words) | simulation (top+random) | length |",
                  "| --- | --- | --- | --- |"]
        graded += [f"| {m} ({'+'.join(described)}) | {r.simulation_corr:.3f} | {r.simulation_top_random:.3f} | "
                   f"{r.length:.1f} |" for m, r in mean.iterrows()]
        out["graded"] = "\n".join(graded)
        out["graded_rows"] = mean.reset_index().to_dict(orient="records")
        print(out["graded"])
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1, default=str))
    return out


if __name__ == "__main__":
    main()
