"""Planted-recovery rate of every ranker and of the label-free controls (prints a Markdown table).

    OMP_NUM_THREADS=1 .venv/bin/python tests/benchmarks/measure_planted_recovery.py --seeds 10

Data: ``tests/planted_arrays.make_planted`` (1,500 words x 60 neurons, 4 classes, 8 planted
neurons: two small single neurons, three redundant copies, three jointly informative neurons; 8
heavy-tailed decoys; skewed noise), one data set per seed.  Two rates over the seeds: the top 8
are exactly the planted set, and the top 5 hold at least one neuron of every class's signal.

    OMP_NUM_THREADS=1 .venv/bin/python tests/benchmarks/measure_planted_recovery.py --model

The planted *model* instead (``tnp.testing.planted_model``, Number on 150 synthetic sentences of each corpus
seed, 6 planted neurons among 128): how many planted neurons each ranking puts in its top 6, for the quiet
model (the default: quiet planted neurons, loud decoys) and the earlier loud one (``quiet=False``).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/planted_arrays.py

from planted_arrays import covers, label_free_orders, make_planted, recovered  # noqa: E402

import tl_neuronprobe.rankers as R  # noqa: E402
from tl_neuronprobe.data.extraction import ExtractConfig  # noqa: E402

FAST = {"gaussian": dict(max_k=8)}


def orders_for(seed: int) -> tuple[dict, object]:
    d = make_planted(seed=seed)
    out = {name: R.make_ranker(name, seed=seed, **FAST.get(name, {})).fit(d.X, d.y, groups=d.groups).order_
           for name in R.RANKERS}
    out |= {f"control: {name}": order for name, order in label_free_orders(d.X).items()}
    return out, d


MODEL_RANKERS = ("linear", "probeless", "mean_difference", "f_statistic", "mutual_information", "l1",
                 "average_precision")


def model_overlaps(quiet: bool, corpus_seeds: range) -> dict[str, list[int]]:
    """Per ranking, the planted Number neurons in its top 6 on the planted model, one entry per corpus seed."""
    import numpy as np

    import tl_neuronprobe as tnp
    from planted_arrays import overlap

    model = tnp.testing.planted_model(quiet=quiet)
    out: dict[str, list[int]] = {}
    for seed in corpus_seeds:
        acts = tnp.extract(model, tnp.testing.planted_corpus(150, seed=seed), ExtractConfig(site="mlp.post"),
                           progress=False)
        X, y, _, idx = acts.dataset("Number", return_index=True)
        groups, want = acts.sentence_ids[idx], acts.columns(model.planted["Number"])
        orders = {name: R.make_ranker(name).fit(X, y, groups=groups).order_ for name in MODEL_RANKERS}
        perm = torch.from_numpy(np.random.default_rng(seed).permutation(len(y)))
        orders["control: probeless, permuted labels"] = R.make_ranker("probeless").fit(X, y[perm], groups=groups).order_
        orders |= {f"control: {k}": v for k, v in label_free_orders(X.numpy()).items()}
        orders["control: mean_abs"] = np.argsort(-np.abs(X.numpy()).mean(0), kind="stable")
        for name, order in orders.items():
            out.setdefault(name, []).append(overlap(order, want))
    return out


def main_model(seeds: int) -> None:
    held_out = range(1, seeds + 1)  # the model was tuned on corpus seed 0 (the test corpus)
    quiet, loud = model_overlaps(True, held_out), model_overlaps(False, held_out)
    print(f"| ranking | planted in top 6, quiet model (mean of corpus seeds 1-{seeds}) | loud model (quiet=False) |")
    print("| --- | --- | --- |")
    for name in quiet:
        print(f"| {name} | {sum(quiet[name]) / seeds:.1f} / 6 | {sum(loud[name]) / seeds:.1f} / 6 |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=10, help="data seeds 0..N-1")
    p.add_argument("--model", action="store_true", help="the planted model, quiet and loud (corpus seeds)")
    args = p.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    if args.model:
        return main_model(args.seeds)
    exact: dict[str, int] = {}
    cover: dict[str, int] = {}
    for seed in range(args.seeds):
        orders, d = orders_for(seed)
        for name, order in orders.items():
            exact[name] = exact.get(name, 0) + recovered(order, d.planted)
            cover[name] = cover.get(name, 0) + covers(order, d.signals, 5)
    print(f"| ranking | planted set = top 8 ({args.seeds} seeds) | every signal in the top 5 |")
    print("| --- | --- | --- |")
    for name in exact:
        print(f"| {name} | {exact[name] / args.seeds:.2f} | {cover[name] / args.seeds:.2f} |")


if __name__ == "__main__":
    main()
