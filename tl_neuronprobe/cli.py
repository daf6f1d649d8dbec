"""Command line: ``tl-neuronprobe extract | demo | rank | evaluate-encoded | evaluate-used | compare | textualize``."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

#: modules that add subcommands through ``register(subparsers)``
SUBCOMMAND_MODULES = ("cli_rank", "cli_used", "cli_textualize")


def layer_statistics(acts) -> "pandas.DataFrame":  # noqa: F821
    """Per (site, layer): mean, std, share of positive activations, max |activation|, dead neurons."""
    import pandas as pd

    rows = []
    for site in sorted({n.site for n in acts.neurons}):
        for layer in acts.layers:
            cols = [i for i, n in enumerate(acts.neurons) if n.layer == layer and n.site == site]
            if not cols:
                continue
            X = acts.X[:, torch.as_tensor(cols)].float()
            rows.append(dict(site=site, layer=layer, neurons=len(cols), words=acts.n_words,
                             mean=float(X.mean()), std=float(X.std()), share_positive=float((X > 0).float().mean()),
                             max_abs=float(X.abs().max()),
                             dead_neurons=int(((X > 0).sum(0) == 0).sum()) if site == "mlp.post" else 0))
    return pd.DataFrame(rows)


def plot_layer_statistics(acts, path: Path) -> None:
    """Box plot of neuron means per layer: how activation scale changes with depth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    data = [acts.X[:, torch.as_tensor([i for i, n in enumerate(acts.neurons) if n.layer == layer])].float().mean(0)
            .numpy() for layer in acts.layers]
    ax.boxplot(data, showfliers=False)
    ax.set_xticks(range(1, len(acts.layers) + 1), [str(layer) for layer in acts.layers])
    ax.set_xlabel("layer")
    ax.set_ylabel("mean activation per neuron")
    ax.set_title(f"{acts.meta.get('model', '')} {','.join(acts.meta.get('sites', []))}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def cmd_extract(args) -> int:
    from . import models
    from .corpus import Corpus
    from .extraction import extract

    model = models.load(args.model, device=args.device)
    corpus = Corpus.load(args.data, seed=args.seed)
    layers = [int(x) for x in args.layers.split(",")] if args.layers else None
    t0 = time.perf_counter()
    acts = extract(model, corpus, site=args.site.split(","), layers=layers, aggregation=args.aggregation,
                   dtype=args.dtype, batch_size=args.batch_size, out_dir=args.out, long_sentences=args.long_sentences,
                   progress=not args.no_progress)
    seconds = time.perf_counter() - t0
    layer_statistics(acts).to_csv(Path(args.out) / "layer_stats.csv", index=False)
    print(f"{acts} written to {args.out} in {seconds:.1f} s")
    return 0


def cmd_demo(args) -> int:
    """MiniLM + synthetic corpus: extraction, per-layer statistics, then every later stage that is installed."""
    from . import models
    from .corpus import Corpus
    from .extraction import extract

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    model = models.load(args.model, device=args.device)
    corpus = Corpus.synthetic(args.sentences, seed=args.seed)
    t0 = time.perf_counter()
    acts = extract(model, corpus, site="mlp.post", progress=not args.no_progress, out_dir=out / "activations")
    seconds = time.perf_counter() - t0
    stats = layer_statistics(acts)
    stats.to_csv(out / "layer_stats.csv", index=False)
    plot_layer_statistics(acts, out / "layer_stats.png")
    summary = dict(model=args.model, sentences=len(corpus), words=corpus.n_words, neurons=acts.n_neurons,
                   corpus="synthetic", seed=args.seed, skip=args.skip, extract_seconds=round(seconds, 2))
    print(stats.to_string(index=False))
    stages = [("cli_rank", "demo_encoded", lambda f: f(acts, out / "encoded", seed=args.seed)),
              ("cli_used", "demo_used", lambda f: f(out / "used", seed=args.seed, minilm_model=model)),
              ("cli_textualize", "demo_textualize", lambda f: f(model, None, corpus, out / "textualize", seed=args.seed))]
    for module, func, call in stages:
        if args.skip and module.split("_", 1)[1] in args.skip.split(","):
            continue
        try:
            fn = getattr(importlib.import_module(f".{module}", __package__), func)
        except (ImportError, AttributeError):
            continue
        t = time.perf_counter()
        call(fn)
        summary[f"{func}_seconds"] = round(time.perf_counter() - t, 2)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    print(f"demo results in {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tl-neuronprobe", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("extract", help="word-aligned activations of a corpus, streamed to a folder")
    p.add_argument("--model", required=True, help="minilm, a Hugging Face folder or name, planted, tiny")
    p.add_argument("--data", required=True, help="a .conllu file, a word<TAB>label file, or synthetic[:N]")
    p.add_argument("--site", default="mlp.post", help="comma-separated sites: mlp.post, mlp.pre, resid.post, ...")
    p.add_argument("--layers", default=None, help="comma-separated layers (default: all)")
    p.add_argument("--aggregation", default="last", choices=["first", "last", "mean"])
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--long-sentences", default="error", choices=["error", "window", "skip"])
    p.add_argument("--out", required=True)
    _add_common(p)
    p.set_defaults(func=cmd_extract)

    p = sub.add_parser("demo", help="the main job on the embedded default model (MiniLM) and synthetic data")
    p.add_argument("--model", default="minilm")
    p.add_argument("--sentences", type=int, default=600)
    p.add_argument("--out", default="tnp-demo")
    p.add_argument("--skip", default="", help="comma-separated stages to skip: rank, used, textualize")
    _add_common(p)
    p.set_defaults(func=cmd_demo)

    for module in SUBCOMMAND_MODULES:
        try:
            register = importlib.import_module(f".{module}", __package__).register
        except (ImportError, AttributeError):
            continue
        before = set(sub.choices)
        register(sub)
        for name in set(sub.choices) - before:
            _ensure_common(sub.choices[name])
    return parser


def _ensure_common(p: argparse.ArgumentParser) -> None:
    have = {a.dest for a in p._actions}
    for flag, kw in (("--device", dict(default=None)), ("--seed", dict(type=int, default=0)),
                     ("--no-progress", dict(action="store_true"))):
        if flag.lstrip("-").replace("-", "_") not in have:
            p.add_argument(flag, **kw)


def main(argv: "list[str] | None" = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, KeyError, FileNotFoundError, TypeError) as exc:
        print(f"tl-neuronprobe {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
