"""``tl-neuronprobe evaluate-used`` and ``tl-neuronprobe compare``: arguments for the used jobs.

::

    tl-neuronprobe evaluate-used --model agreement --data synthetic:300 --attribute Number \\
        --rankings probeless,linear --layer 0 --ks 1,2,5,10,20 --out used/
    tl-neuronprobe compare --encoded encoded_Number.csv --used used/used_Number.csv --out compare/
"""

from __future__ import annotations

import argparse

from .. import workflows
from ._args import comma_ints

__all__ = ["register", "cmd_evaluate_used", "cmd_compare"]


def _alpha(text: str) -> "float | str":
    if text == "scaled":
        return text
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"--alpha must be a number or 'scaled', got {text!r}") from None


def cmd_evaluate_used(args: argparse.Namespace) -> int:
    workflows.evaluate_used_job(
        args.model, args.data, args.attribute, args.rankings, comma_ints(args.ks) or [], args.out,
        fit_data=args.fit_data, device=args.device, seed=args.seed, progress=not args.no_progress,
        method=args.method, readout=args.readout, site=args.site, layer=args.layer, positions=args.positions,
        alpha=_alpha(args.alpha), beta=args.beta, n_random=args.n_random, bottom=not args.no_bottom,
        n_bootstrap=args.n_bootstrap, batch_size=args.batch_size, strategy=args.strategy,
        preset=args.preset, min_forms=args.min_forms, max_sentences=args.max_sentences)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    workflows.compare_job(args.encoded, args.used, args.out, encoded_metric=args.encoded_metric,
                          used_metric=args.used_metric, probe=args.probe)
    return 0


def register(subparsers, common: argparse.ArgumentParser) -> None:
    """Add ``evaluate-used`` and ``compare``."""
    p = subparsers.add_parser("evaluate-used", parents=[common],
                              help="intervene on the top-k neurons of each ranking: what the model uses "
                                   "(against bottom-k and random-k)")
    p.add_argument("--model", required=True, help="minilm, a Hugging Face folder or name, or a built-in test "
                                                  "model: planted, agreement (trained in seconds), tiny")
    p.add_argument("--data", required=True, help="a .conllu file, a word<TAB>label file, ud-english, "
                                                 "ud-english:N (its first N sentences) or synthetic:N")
    p.add_argument("--fit-data", default=None, help="corpus for class means and ranker fitting (default: --data)")
    p.add_argument("--attribute", required=True, help="e.g. Number, upos")
    p.add_argument("--rankings", required=True,
                   help="comma-separated ranker names (probeless, linear, gaussian, ...) and/or ranking files "
                        "(name=path.txt|.json|.csv, neurons best first)")
    p.add_argument("--site", default="mlp.post")
    p.add_argument("--layer", type=int, default=None, help="layer the ranker names rank (needed for names)")
    p.add_argument("--ks", default="1,2,5,10,20,50", help="comma-separated k values")
    p.add_argument("--method", default="translate", choices=["translate", "zero", "mean", "resample"])
    p.add_argument("--readout", default="auto", choices=["auto", "identity", "agreement", "divergence"])
    p.add_argument("--positions", default="attribute", choices=["attribute", "all"])
    p.add_argument("--alpha", default="1.0", help="translation strength, or 'scaled' (beta decaying with rank)")
    p.add_argument("--beta", type=float, default=8.0)
    p.add_argument("--n-random", type=int, default=3, help="random-k draws per k")
    p.add_argument("--no-bottom", action="store_true", help="skip the bottom-k baseline")
    p.add_argument("--n-bootstrap", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=32, help="sentences per batch")
    p.add_argument("--strategy", default="auto", choices=["auto", "batched", "cached", "naive"])
    p.add_argument("--preset", default=None, choices=["antverg"],
                   help="Antverg & Belinkov's setup: mean of sub-tokens, scaled translation (beta 8), class values "
                        "with fewer than 100 forms dropped, at most 6,500 sentences")
    p.add_argument("--min-forms", type=int, default=0, help="drop class values with fewer distinct word forms")
    p.add_argument("--max-sentences", type=int, default=None, help="evaluate at most this many sentences")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_evaluate_used)

    p = subparsers.add_parser("compare", help="encoded versus used curves side by side, and where they disagree")
    p.add_argument("--encoded", required=True, help="CSV from evaluate-encoded (or any ranking/k/metric table)")
    p.add_argument("--used", required=True, help="CSV from evaluate-used")
    p.add_argument("--encoded-metric", default=None, help="default: accuracy")
    p.add_argument("--used-metric", default=None, help="default: the readout's first metric")
    p.add_argument("--probe", default="logistic", help="which probe's encoded curves (if the table has several)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_compare)
