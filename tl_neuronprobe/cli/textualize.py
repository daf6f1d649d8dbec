"""``tl-neuronprobe textualize``: arguments for the textualize job (the inputs that drive neurons)."""

from __future__ import annotations

import argparse

from .. import workflows
from ..textualization import METHODS
from ._args import comma_ints, comma_list

__all__ = ["register", "cmd_textualize", "cmd_words_needed"]


def cmd_textualize(args: argparse.Namespace) -> int:
    workflows.textualize_job(args.model, args.neurons, out=args.out,
                             corpus=None if args.corpus.lower() == "none" else args.corpus, device=args.device,
                             seed=args.seed, progress=not args.no_progress, method=args.method, length=args.length,
                             position=args.position, steps=args.steps, restarts=args.restarts,
                             batch_size=args.batch_size, fluency=_fluency(args.fluency), dtype=args.dtype,
                             schedule=args.schedule, selection=args.selection, samples=args.samples)
    return 0


def _fluency(text: str) -> "float | tuple[float, float]":
    lo, _, hi = text.partition(",")
    try:
        return (float(lo), float(hi)) if hi else float(lo)
    except ValueError:
        raise ValueError(f"--fluency must be a number or LO,HI, got {text!r}") from None


def cmd_words_needed(args: argparse.Namespace) -> int:
    workflows.words_needed_job(args.model, comma_list(args.words), comma_ints(args.layers),
                               comma_ints(args.ks), out=args.out, device=args.device, seed=args.seed,
                               steps=args.steps, progress=not args.no_progress)
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
    p.add_argument("--fluency", default="0",
                   help="discrete, decoders: weight of the self cross-entropy in the objective, or LO,HI for a "
                        "population selected across fluency weights (Thompson et al.)")
    p.add_argument("--schedule", default="anneal", choices=["anneal", "poerner", "poerner-bert"],
                   help="gumbel temperature schedule: the package's short anneal, or Poerner et al.'s published "
                        "ones (poerner: 2.0 x 0.99995 per step, floor 0.1, 64 samples, lr 1e-3; poerner-bert)")
    p.add_argument("--selection", default="auto", choices=["auto", "member", "population"],
                   help="discrete: keep each member's best child, or select across the population")
    p.add_argument("--samples", type=int, default=None, help="gumbel samples per step (default: per schedule)")
    p.add_argument("--corpus", default="ud-english:300",
                   help="baseline corpus: ud-english, ud-english:N (its first N sentences), synthetic:N, a .conllu "
                        "or word<TAB>label file, or 'none'")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                   help="autocast dtype for the optimization (results are re-scored in the model's precision)")
    p.add_argument("--out", default=None, help="folder for textualize.csv, textualize.md and the saved result "
                                               "(dense: the vectors and a nearest-token plot per neuron)")
    p.set_defaults(func=cmd_textualize)

    p = subparsers.add_parser("words-needed", parents=[common],
                              help="how many neurons encode a word (Baeumel et al.): recovery against k")
    p.add_argument("--model", required=True, help="minilm, a Hugging Face folder or name, planted, tiny")
    p.add_argument("--words", required=True, help="comma-separated words")
    p.add_argument("--layers", required=True, help="comma-separated layers")
    p.add_argument("--ks", default="1,2,5,10,20,50,100", help="comma-separated numbers of neurons")
    p.add_argument("--steps", type=int, default=150, help="dense optimization steps")
    p.add_argument("--out", default=None, help="folder for words_needed.csv, the curve and its plot")
    p.set_defaults(func=cmd_words_needed)
