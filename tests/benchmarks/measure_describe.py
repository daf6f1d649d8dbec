"""Full-size description benchmarks against the naive per-neuron loop, in the same run (prints JSON).

    OMP_NUM_THREADS=2 .venv/bin/python tests/benchmarks/measure_describe.py [--threads 2] [--naive-neurons 256]
        [--no-formulas]

Association: 9,216 neurons x about 2,000 concepts (the treebank's first ~50,000 words) x 50,000 words,
chunked, against the naive loop over a sample of neurons (scaled to all of them). Formula search: 1,000
neurons, beam 5, length 3, batched, against the same search one neuron at a time on a sample.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from describe_reference import naive_association, planted_activations, treebank_concepts  # noqa: E402

from tl_neuronprobe.descriptions._associate import associate  # noqa: E402
from tl_neuronprobe.descriptions._compose import beam_search  # noqa: E402
from tl_neuronprobe.descriptions._associate import intersections_at  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--words", type=int, default=50_000)
    ap.add_argument("--neurons", type=int, default=9_216)
    ap.add_argument("--concepts", type=int, default=2_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--naive-neurons", type=int, default=256)
    ap.add_argument("--formula-neurons", type=int, default=1_000)
    ap.add_argument("--naive-formula-neurons", type=int, default=20)
    ap.add_argument("--no-formulas", action="store_true", help="association only")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out: dict = dict(threads=args.threads, load_average_start=os.getloadavg())
    concepts, sid = treebank_concepts(args.words, args.concepts)
    C = concepts.matrix
    out.update(words=C.shape[0], concepts=C.shape[1], concept_nnz=int(C.nnz))
    X = planted_activations(C, args.neurons)
    Xt = torch.from_numpy(X)
    t, cpu = time.perf_counter(), time.process_time()
    a = associate(Xt, C, sid)
    out["association_s"] = time.perf_counter() - t
    out["association_cpu_s"] = time.process_time() - cpu  # CPU seconds: fairer on a shared machine
    out["load_average_after_association"] = os.getloadavg()
    m = args.naive_neurons
    t, cpu = time.perf_counter(), time.process_time()
    ref_auroc, ref_iou, _ = naive_association(X[:, :m], C, sid)
    naive = time.perf_counter() - t
    naive_cpu = time.process_time() - cpu
    out.update(naive_sample_neurons=m, naive_sample_s=naive, naive_all_s_extrapolated=naive * args.neurons / m,
               naive_all_cpu_s_extrapolated=naive_cpu * args.neurons / m,
               max_abs_diff_auroc=float(np.abs(a.auroc[:m] - ref_auroc).max()),
               max_abs_diff_iou=float(np.abs(a.iou[:m] - ref_iou).max()))
    del a
    if args.no_formulas:
        out["load_average_end"] = os.getloadavg()
        print(json.dumps(out, indent=1))
        return
    k = args.formula_neurons
    thr = np.quantile(X[:, :k], 0.95, axis=0)
    inter, _ = intersections_at(Xt[:, :k], C, thr)
    fire = Xt[:, :k] > torch.from_numpy(thr)
    t, cpu = time.perf_counter(), time.process_time()
    formulas, iou = beam_search(C, fire, inter)
    out["formula_search_s"] = time.perf_counter() - t
    out["formula_search_cpu_s"] = time.process_time() - cpu
    out["formula_lengths"] = {int(n): int(c) for n, c in zip(*np.unique([len(f) for f in formulas],
                                                                          return_counts=True))}
    s = args.naive_formula_neurons
    t = time.perf_counter()
    for j in range(s):
        beam_search(C, fire[:, j:j + 1], inter[j:j + 1], batch=1)
    naive_f = time.perf_counter() - t
    out.update(naive_formula_sample=s, naive_formula_sample_s=naive_f,
               naive_formula_all_s_extrapolated=naive_f * k / s, load_average_end=os.getloadavg())
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
