"""``tl-neuronprobe describe`` and ``tl-neuronprobe report``: arguments for the descriptions and the report."""

from __future__ import annotations

import argparse

from .. import workflows
from ..data.extraction import ExtractConfig
from ..descriptions import DescribeConfig, Search
from ..workflows import DescribeJobConfig
from ._args import comma_ints, comma_list

__all__ = ["register", "cmd_describe", "cmd_report"]


def cmd_describe(args: argparse.Namespace) -> int:
    describe = DescribeConfig(sources=tuple(comma_list(args.sources) or ()) or "auto", quantile=args.quantile,
                              alpha=args.alpha, search=Search(max_length=args.max_length, threshold=args.threshold,
                                            levels=tuple(float(q) for q in comma_list(args.levels) or ())),
                              seed=args.seed)
    config = DescribeJobConfig(extract=ExtractConfig(site=args.site, layers=comma_ints(args.layers),
                                                     long_sentences="skip"),
                               describe=describe, effects=args.effects)
    desc = workflows.describe_job(args.model, args.corpus, args.out_dir, n_sentences=args.n_sentences, config=config,
                                  device=args.device, progress=not args.no_progress)
    print(desc.coverage("layer").to_string(index=False))
    print(f"written to {args.out_dir}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    workflows.report_job(args.results, args.out_dir)
    return 0


def register(subparsers, common: argparse.ArgumentParser) -> None:
    """Add ``describe`` and ``report``."""
    p = subparsers.add_parser("describe", parents=[common],
                              help="describe every neuron with concepts from the corpus, scored on held-out text")
    p.add_argument("--model", required=True, help="minilm, a Hugging Face folder or name, planted, tiny")
    p.add_argument("--corpus", default="ud-english", help="ud-english, ud-english:N (its first N sentences), "
                                                          "synthetic:N, a .conllu file")
    p.add_argument("--n-sentences", type=int, default=None, help="first N sentences of the corpus")
    p.add_argument("--layers", default=None, help="comma-separated layers (default: all)")
    p.add_argument("--site", default="mlp.post")
    p.add_argument("--sources", default=None,
                   help="comma-separated concept sources (annotations, surface, context, discovered; default auto)")
    p.add_argument("--max-length", type=int, default=3, help="longest formula (1: single concepts)")
    p.add_argument("--quantile", type=float, default=0.05, help="a neuron fires on its top quantile of words")
    p.add_argument("--threshold", default="adaptive", choices=["adaptive", "quantile"],
                   help="firing threshold: fitted to the best concept, or every neuron's top --quantile (a level)")
    p.add_argument("--levels", default="0.01",
                   help="comma-separated top quantiles also described, each on its own ('' for none); every neuron's "
                        "top_description is its description at the highest of them where it has one")
    p.add_argument("--alpha", type=float, default=0.01, help="false discovery rate (Benjamini-Hochberg)")
    p.add_argument("--effects", type=int, default=0, help="ablate the N best described neurons and report effects")
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=cmd_describe)

    p = subparsers.add_parser("report", help="a static HTML neuron browser of a results folder (open index.html)")
    p.add_argument("results", help="a folder the demo or the jobs wrote")
    p.add_argument("--out-dir", default=None, help="site folder (default: RESULTS/report)")
    p.set_defaults(func=cmd_report)
