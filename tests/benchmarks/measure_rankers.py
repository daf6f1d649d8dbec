"""Full-size comparison of the rankers with the baselines a user would run (prints numbers).

    .venv/bin/python tests/benchmarks/measure_rankers.py            # everything (several minutes)
    .venv/bin/python tests/benchmarks/measure_rankers.py --skip-saga --ref-steps 1

Data: synthetic activations shaped like the issue's setting (14,000 words x 9,216 MLP neurons
x 17 classes for the linear probe; 12,600 words x 1,536 neurons x 17 classes for the Gaussian
greedy selection), split by sentence.  ``--acts FOLDER --attribute upos`` uses saved
activations instead (e.g. MiniLM's, from ``tl-neuronprobe extract``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch._dynamo  # noqa: F401,E402  (the first torch.optim.Adam imports it: ~2 s that neither side should pay)

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rankers_reference import (neurox_mass_order, neurox_predict, neurox_probe, niw_covariances,  # noqa: E402
                               published_gaussian_greedy, sklearn_saga)
from rankers_synth import make_pos_like  # noqa: E402

from tl_neuronprobe.core.validation import split_indices  # noqa: E402
from tl_neuronprobe.probes import LogisticProbes  # noqa: E402
from tl_neuronprobe.rankers import Gaussian, Linear  # noqa: E402


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def load_data(args, n_words, n_neurons, layer=None):
    if args.acts:
        from tl_neuronprobe import Activations

        acts = Activations.load(args.acts)
        if layer is not None:
            acts = acts.select(layer=layer)
        X, y, classes, idx = acts.dataset(args.attribute, return_index=True, min_count=10)
        return X.numpy(), y.numpy(), np.asarray(acts.sentence_ids)[idx]
    X, y, sid, _ = make_pos_like(n_words=n_words, n_neurons=n_neurons, n_classes=17, seed=args.seed)
    return X.numpy(), y.numpy(), sid


def linear_part(args, out):
    X, y, sid = load_data(args, 14_000, 9_216)
    tr, te = split_indices(len(y), 0.2, groups=sid, seed=0, y=y, min_train_per_class=2)
    print(f"linear: {len(tr)} train / {len(te)} test words x {X.shape[1]} neurons, {len(np.unique(y))} classes")
    lin, t_ours = timed(lambda: Linear(seed=0).fit(X[tr], y[tr], groups=sid[tr]))
    out["linear_seconds"] = t_ours
    out["linear_accuracy"] = lin.score(X[te], y[te])
    out["linear_epochs"] = lin.n_epochs_
    print(f"  Linear.fit            {t_ours:7.2f} s  accuracy {out['linear_accuracy']:.4f}  ({lin.n_epochs_} epochs)")
    (W, b), t_ref = timed(lambda: neurox_probe(X[tr], y[tr], len(np.unique(y))))
    out["neurox_seconds"] = t_ref
    out["neurox_accuracy"] = float((neurox_predict(W, b, X[te]) == y[te]).mean())
    print(f"  NeuroX-style torch    {t_ref:7.2f} s  accuracy {out['neurox_accuracy']:.4f}")
    if not args.skip_saga:
        (Z, clf), t_saga = timed(lambda: sklearn_saga(X[tr], y[tr], max_iter=10))
        out["saga_seconds"] = t_saga
        out["saga_accuracy"] = clf.score(Z.transform(X[te]), y[te])
        print(f"  sklearn saga (10 it)  {t_saga:7.2f} s  accuracy {out['saga_accuracy']:.4f}")
        print(f"  speed-up vs saga {t_saga / t_ours:.1f}x")
    print(f"  speed-up vs NeuroX-style {t_ref / t_ours:.1f}x")
    ks = args.ks
    ref_order = neurox_mass_order(W.numpy())
    probe = LogisticProbes(seed=0)
    orders = {"ours_mass": lin.order_, "ours_mean_abs": lin.order_mean_abs_, "reference_mass": ref_order}
    for l1 in args.extra_l1:  # the ordering's dependence on the sparsity pressure
        other = Linear(l1=l1, seed=0).fit(X[tr], y[tr], groups=sid[tr])
        acc_other = other.score(X[te], y[te])
        out[f"linear_l1_{l1:g}_accuracy"] = acc_other
        print(f"  Linear(l1={l1:g})        accuracy {acc_other:.4f}")
        orders[f"l1={l1:g}_mass"] = other.order_
        orders[f"l1={l1:g}_mean_abs"] = other.order_mean_abs_
    (probe), t_probe = timed(lambda: probe.fit(X[tr], y[tr], [o[:k] for o in orders.values() for k in ks],
                                               groups=sid[tr]))
    acc = probe.subset_scores(X[te], y[te]).reshape(len(orders), len(ks))
    print(f"  top-k retrained probes ({len(orders) * len(ks)} probes in {t_probe:.1f} s), k = {ks}")
    for (name, _), a in zip(orders.items(), acc):
        print(f"    {name:18s} " + " ".join(f"{v:.3f}" for v in a) + f"   mean {a.mean():.4f}")
        out[f"topk_{name}"] = dict(zip(ks, a.tolist()))


def gaussian_part(args, out):
    X, y, sid = load_data(args, 12_600, 1_536, layer=args.layer)
    C = len(np.unique(y))
    print(f"gaussian: {len(y)} words x {X.shape[1]} neurons, {C} classes")
    g, t_ours = timed(lambda: Gaussian.from_preset("published", max_k=50, seed=0).fit(X, y, groups=sid))
    out["gaussian_seconds_50_steps"] = t_ours
    out["gaussian_selected"] = g.selected_.tolist()
    print(f"  ours: 50 steps in {t_ours:.2f} s (dev {len(g.dev_index_)} words); MI (bits) after 1/10/50 steps: "
          f"{g.mi_[0]:.3f} {g.mi_[9]:.3f} {g.mi_[-1]:.3f}")
    if args.ref_steps > 0:
        tr, dv = g.train_index_, g.dev_index_
        means, covs, pri = niw_covariances(X[tr], y[tr], C)
        with torch.no_grad():
            sel, times = published_gaussian_greedy(means, covs, pri, X[dv], y[dv], args.ref_steps, time_steps=True)
        out["published_step_seconds"] = times
        out["same_neurons"] = sel == g.selected_[: len(sel)].tolist()
        print(f"  published loop: steps took {', '.join(f'{t:.1f}' for t in times)} s; selected {sel}; "
              f"ours {g.selected_[:len(sel)].tolist()}; same: {out['same_neurons']}")
        print(f"  published 50 steps >= {50 * times[0]:.0f} s (50 x its first step): "
              f">= {50 * times[0] / t_ours:.0f}x slower")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--acts", default=None, help="saved Activations folder (default: synthetic data)")
    p.add_argument("--attribute", default="upos")
    p.add_argument("--layer", type=int, default=None, help="layer for the Gaussian part (saved activations)")
    p.add_argument("--skip-saga", action="store_true")
    p.add_argument("--skip-linear", action="store_true")
    p.add_argument("--skip-gaussian", action="store_true")
    p.add_argument("--ref-steps", type=int, default=2, help="steps of the published Gaussian loop to time")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ks", type=int, nargs="+", default=[10, 25, 50, 100, 200, 500],
                   help="top-k sizes for the retrained probes (use small ones where accuracy saturates)")
    p.add_argument("--extra-l1", type=float, nargs="*", default=[],
                   help="also rank with Linear(l1=...) for these values and retrain on their top-k")
    p.add_argument("--json", default=None, help="write the numbers here")
    p.add_argument("--threads", type=int, default=None, help="torch threads for everything (default: torch's)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    out: dict = {}
    if not args.skip_linear:
        linear_part(args, out)
    if not args.skip_gaussian:
        gaussian_part(args, out)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=float))


if __name__ == "__main__":
    main()
