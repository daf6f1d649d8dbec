"""``tl-neuronprobe textualize``: arguments for the textualize job (the inputs that drive neurons)."""

from __future__ import annotations

import argparse

from .. import workflows
from ..textualization import METHODS

__all__ = ["register", "cmd_textualize"]


def cmd_textualize(args: argparse.Namespace) -> int:
    workflows.textualize_job(args.model, args.neurons, out=args.out,
                             corpus=None if args.corpus.lower() == "none" else args.corpus, device=args.device,
                             seed=args.seed, progress=not args.no_progress, method=args.method, length=args.length,
                             position=args.position, steps=args.steps, restarts=args.restarts,
                             batch_size=args.batch_size, fluency=args.fluency, dtype=args.dtype)
    return 0


def register(subparsers, common: argparse.ArgumentParser) -> None:
    """Add ``textualize``."""
    p = subparsers.add_parser("textualize", parents=[common],
                              help="find the inputs that drive neurons (activation maximization)",
                              description="Find, per neuron, the tokens that make it fire most, by optimization "
                                          "(gumbel, dense, discrete) or from a corpus (corpus).")
    p.add_argument("--model", required=True, help="minilm, a Hugging Face folder or name, planted, tiny")
    p.add_argument("--neurons", required=True, help="comma-separated neurons: L3.N1207,L5.N88[@site]")
    p.add_argument("--method", default="gumbel", choices=METHODS)
    p.add_argument("--length", type=int, default=5, help="optimized tokens (specials are added around them)")
    p.add_argument("--position", type=int, default=None,
                   help="token the neuron is read at (default: last for decoders, middle for encoders)")
    p.add_argument("--steps", type=int, default=None, help="optimization steps (default: per method)")
    p.add_argument("--restarts", type=int, default=None, help="rows per neuron (population for discrete)")
    p.add_argument("--batch-size", type=int, default=64, help="neurons optimized together")
    p.add_argument("--fluency", type=float, default=0.0,
                   help="discrete, decoders: weight of the self cross-entropy in the objective")
    p.add_argument("--corpus", default="ud-english:300",
                   help="baseline corpus: ud-english[:N], synthetic[:N], a .conllu or word<TAB>label file, or 'none'")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                   help="autocast dtype for the optimization (results are re-scored in the model's precision)")
    p.add_argument("--out", default=None, help="folder for textualize.csv and textualize.md")
    p.set_defaults(func=cmd_textualize)
