"""``tl-neuronprobe rank`` and ``tl-neuronprobe evaluate-encoded`` on saved activations, and the
encoded part of the demo (:func:`demo_encoded`)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

__all__ = ["register", "cmd_rank", "cmd_evaluate_encoded", "demo_encoded", "top_neurons_table"]


def _split_list(s: str | None) -> list[str] | None:
    return [x.strip() for x in s.split(",") if x.strip()] if s else None


def top_neurons_table(neurons: Sequence[Any], orders: dict[str, np.ndarray], n: int = 10,
                      scores: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
    """The ``n`` best neurons of every ranking, as a tidy table (ranker, rank, neuron, layer)."""
    rows = []
    for name, order in orders.items():
        for r, j in enumerate(order[: min(n, len(order))]):
            nr = neurons[j] if neurons else None
            rows.append(dict(ranker=name, rank=r + 1, column=int(j), neuron=str(nr) if nr is not None else str(j),
                             layer=getattr(nr, "layer", None),
                             score=float(scores[name][j]) if scores and name in scores else np.nan))
    return pd.DataFrame(rows)


def _load_activations(args):
    """Saved activations (one layer if ``--layer``) and the output folder, created."""
    from ..data.activations import Activations

    acts = Activations.load(args.activations)
    if args.layer is not None:
        acts = acts.select(layer=args.layer)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    return acts, out


def cmd_rank(args) -> int:
    from ..rankers import make_ranker

    acts, out = _load_activations(args)
    X, y, classes, idx = acts.dataset(args.attribute, return_index=True, min_count=args.min_count)
    groups = np.asarray(acts.sentence_ids)[idx]
    summary = dict(attribute=args.attribute, words=len(idx), neurons=acts.n_neurons, classes=classes, rankers={})
    for name in _split_list(args.rankers) or ["linear", "probeless"]:
        params = dict(random_state=args.seed)
        if name.lower() in ("linear", "gaussian", "l1") and args.device:
            params["device"] = args.device
        ranker = make_ranker(name, **params)
        t0 = time.perf_counter()
        ranker.fit(X, y, groups=groups)
        seconds = time.perf_counter() - t0
        table = pd.DataFrame(dict(rank=np.arange(1, acts.n_neurons + 1), column=ranker.order_,
                                  neuron=[str(acts.neurons[j]) for j in ranker.order_],
                                  layer=[acts.neurons[j].layer for j in ranker.order_],
                                  score=ranker.scores_[ranker.order_]))
        table.to_csv(out / f"rank_{name}.csv", index=False)
        if getattr(ranker, "per_class_", None) is not None and np.ndim(ranker.per_class_) == 2:
            pc = pd.DataFrame(np.asarray(ranker.per_class_).T, columns=[str(c) for c in classes])
            pc.insert(0, "neuron", [str(n) for n in acts.neurons])
            pc.to_csv(out / f"per_class_{name}.csv", index=False)
        top = [str(acts.neurons[j]) for j in ranker.order_[: args.k]]
        summary["rankers"][name] = dict(seconds=round(seconds, 2), top=top)
        print(f"{name}: {seconds:.1f}s  top {args.k}: {' '.join(top[:10])}{' ...' if args.k > 10 else ''}")
    (out / "rank_summary.json").write_text(json.dumps(summary, indent=2))
    print(f"rankings written to {out}")
    return 0


def cmd_evaluate_encoded(args) -> int:
    from ..evaluation.encoded import evaluate_encoded

    acts, out = _load_activations(args)
    ks = [int(k) for k in _split_list(args.ks)] if args.ks else None
    table = evaluate_encoded(acts, args.attribute, rankers=_split_list(args.rankers), ks=ks,
                             probes=_split_list(args.probes) or ("logistic", "gaussian"), control=not args.no_control,
                             seed=args.seed, test_size=args.test_size, device=args.device or "cpu",
                             min_count=args.min_count, verbose=not args.no_progress)
    _write_encoded(acts, table, out, prefix="encoded", k_layers=args.k)
    print(table.to_string(index=False, max_rows=60))
    print(f"encoded evaluation written to {out}")
    return 0


def _write_encoded(acts, table: pd.DataFrame, out: Path, prefix: str, k_layers: int = 50) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..evaluation.encoded import layer_distribution, plot_encoded, ranker_agreement

    table.to_csv(out / f"{prefix}.csv", index=False)
    fig = plot_encoded(table, out / f"{prefix}.png")
    plt.close(fig)
    orders = table.attrs["orders"]
    D = len(next(iter(orders.values())))
    kl = min(k_layers, D)
    layer_distribution(acts, orders, kl).to_csv(out / f"{prefix}_layers.csv", index=False)
    ks = sorted({k for k in (10, 50, 100) if k <= D} or {D})
    ranker_agreement(orders, ks).to_csv(out / f"{prefix}_agreement.csv", index=False)
    top = top_neurons_table(acts.neurons, orders, n=10)
    top.to_csv(out / f"{prefix}_top_neurons.csv", index=False)
    return {name: [str(acts.neurons[j]) for j in o[:10]] for name, o in orders.items()}


def register(subparsers) -> None:
    """Add ``rank`` and ``evaluate-encoded`` to the main CLI."""
    p = subparsers.add_parser("rank", help="rank neurons for an attribute on saved activations")
    p.add_argument("activations", help="folder written by `tl-neuronprobe extract`")
    p.add_argument("--attribute", required=True, help="e.g. upos, Number")
    p.add_argument("--rankers", default="linear,probeless",
                   help="comma-separated: linear, gaussian, probeless, mean_difference, f_statistic, "
                        "mutual_information, l1, average_precision, random")
    p.add_argument("--k", type=int, default=20, help="how many top neurons to print")
    p.add_argument("--layer", type=int, default=None, help="only neurons of this layer")
    p.add_argument("--min-count", type=int, default=2, help="drop classes with fewer words")
    p.add_argument("--out", required=True)
    p.add_argument("--device", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_rank)

    p = subparsers.add_parser("evaluate-encoded",
                              help="probe x ranking x k (top/bottom/random) with a control task")
    p.add_argument("activations", help="folder written by `tl-neuronprobe extract`")
    p.add_argument("--attribute", required=True)
    p.add_argument("--rankers", default=None, help="comma-separated (default: all)")
    p.add_argument("--ks", default=None, help="comma-separated k values (default 1,2,5,...,500)")
    p.add_argument("--probes", default="logistic,gaussian")
    p.add_argument("--no-control", action="store_true")
    p.add_argument("--test-size", type=float, default=0.3)
    p.add_argument("--min-count", type=int, default=10)
    p.add_argument("--layer", type=int, default=None)
    p.add_argument("--k", type=int, default=50, help="top-k used for the layer distribution")
    p.add_argument("--out", required=True)
    p.add_argument("--device", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_evaluate_encoded)


DEMO_RANKERS = ("linear", "gaussian", "probeless", "mean_difference", "f_statistic", "average_precision", "random")


def demo_encoded(acts, out_dir, attributes: Sequence[str] = ("upos", "Number"), seed: int = 0,
                 rankers: Sequence[str] = DEMO_RANKERS, ks: Sequence[int] | None = None) -> dict:
    """The demo's encoded stage: for each attribute, the encoded curves (CSV + PNG), where the
    top neurons live, ranker agreement, and the top neurons of every ranker (JSON + CSV)."""
    from ..evaluation.encoded import evaluate_encoded

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {}
    for attr in attributes:
        if attr not in acts.attributes:
            summary[attr] = "not in these activations"
            continue
        t0 = time.perf_counter()
        kk = ks or [k for k in (1, 2, 5, 10, 20, 50, 100, 200) if k <= acts.n_neurons]
        table = evaluate_encoded(acts, attr, rankers=list(rankers), ks=kk, seed=seed)
        top = _write_encoded(acts, table, out, prefix=f"encoded_{attr}")
        best = (table[(table.selection == "top") & (table.probe == "logistic")]
                .sort_values("k").groupby("ranker").apply(lambda d: d.iloc[min(3, len(d) - 1)].accuracy,
                                                          include_groups=False))
        summary[attr] = dict(seconds=round(time.perf_counter() - t0, 1), top_neurons=top,
                             fit_seconds={k: round(v, 2) for k, v in table.attrs["fit_seconds"].items()},
                             logistic_accuracy_at_k=dict(k=sorted(set(kk))[min(3, len(kk) - 1)],
                                                         **{k: round(float(v), 3) for k, v in best.items()}))
    (out / "encoded_summary.json").write_text(json.dumps(summary, indent=2))
    return summary
