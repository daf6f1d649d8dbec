"""Planted-recovery rate of every ranker and of the label-free controls (prints a Markdown table).

    OMP_NUM_THREADS=1 .venv/bin/python tests/benchmarks/measure_planted_recovery.py --seeds 10

Data: ``tests/planted_arrays.make_planted`` (1,500 words x 60 neurons, 4 classes, 8 planted
neurons: two small single neurons, three redundant copies, three jointly informative neurons; 8
heavy-tailed decoys; skewed noise), one data set per seed.  Two rates over the seeds: the top 8
are exactly the planted set, and the top 5 hold at least one neuron of every class's signal.
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

FAST = {"gaussian": dict(max_features=8)}


def orders_for(seed: int) -> tuple[dict, object]:
    d = make_planted(seed=seed)
    out = {name: R.make_ranker(name, seed=seed, **FAST.get(name, {})).fit(d.X, d.y, groups=d.groups).order_
           for name in R.RANKERS}
    out |= {f"control: {name}": order for name, order in label_free_orders(d.X).items()}
    return out, d


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=10, help="data seeds 0..N-1")
    args = p.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
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
