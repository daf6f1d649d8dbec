"""``tl-neuronprobe textualize``: arguments for the textualize job (the inputs that drive neurons)."""

from __future__ import annotations

import argparse

from .. import workflows
from ..textualization import CorpusSearch, Dense, Discrete, Gumbel, TextualizeConfig, WordsNeededConfig
from ._args import comma_ints, comma_list

__all__ = ["register", "cmd_textualize", "cmd_words_needed", "textualize_config"]


def textualize_config(args: argparse.Namespace) -> TextualizeConfig:
    """The :class:`TextualizeConfig` the ``textualize`` flags describe (unset flags: the optimizer's defaults)."""
    given = {k: v for k, v in dict(max_steps=args.max_steps, restarts=args.restarts, lr=args.lr).items()
             if v is not None}
    if args.optimizer == "gumbel":
        if args.samples is not None:
            given["samples"] = args.samples
        optimizer = (Gumbel(**given) if args.schedule == "anneal"
                     else Gumbel.from_schedule(args.schedule, **given))
    else:
        if args.schedule != "anneal" or args.samples is not None:
            raise ValueError("--schedule and --samples apply to --optimizer gumbel only")
        if args.optimizer == "discrete":
            if "lr" in given:
                raise ValueError("--lr does not apply to --optimizer discrete")
            optimizer = Discrete(fluency=_fluency(args.fluency), selection=args.selection, **given)
        elif args.optimizer == "dense":
            optimizer = Dense(**given)
        else:
            if given:
                raise ValueError(f"--optimizer corpus takes none of {sorted(given)}")
            optimizer = CorpusSearch()
    if args.optimizer != "discrete" and (_fluency(args.fluency) != 0.0 or args.selection != "auto"):
        raise ValueError("--fluency and --selection apply to --optimizer discrete only")
    return TextualizeConfig(optimizer=optimizer, length=args.length, position=args.position, seed=args.seed,
                            batch_size=args.batch_size, corpus=None if args.corpus.lower() == "none" else args.corpus,
                            dtype=args.dtype)


def cmd_textualize(args: argparse.Namespace) -> int:
    workflows.textualize_job(args.model, args.neurons, out_dir=args.out_dir, config=textualize_config(args),
                             device=args.device, progress=not args.no_progress)
    return 0


def _fluency(text: str) -> "float | tuple[float, float]":
    lo, _, hi = text.partition(",")
    try:
        return (float(lo), float(hi)) if hi else float(lo)
    except ValueError:
        raise ValueError(f"--fluency must be a number or LO,HI, got {text!r}") from None


def cmd_words_needed(args: argparse.Namespace) -> int:
    config = WordsNeededConfig(ks=comma_ints(args.ks), seed=args.seed,
                               optimizer=Dense(max_steps=args.max_steps, restarts=1))
    workflows.words_needed_job(args.model, comma_list(args.words), comma_ints(args.layers), out_dir=args.out_dir,
                               config=config, device=args.device, progress=not args.no_progress)
    return 0


def register(subparsers, common: argparse.ArgumentParser) -> None:
    """Add ``textualize``."""
    p = subparsers.add_parser("textualize", parents=[common],
                              help="find the inputs that drive neurons (activation maximization)",
                              description="Find, per neuron, the tokens that make it fire most, by optimization "
                                          "(gumbel, dense, discrete) or from a corpus (corpus).")
    p.add_argument("--model", required=True, help="minilm, a Hugging Face folder or name, planted, tiny")
    p.add_argument("--neurons", required=True, help="comma-separated neurons: L3.N1207,L5.N88[@site]")
    p.add_argument("--optimizer", default="gumbel", choices=["gumbel", "dense", "discrete", "corpus"])
    p.add_argument("--length", type=int, default=5, help="optimized tokens (specials are added around them)")
    p.add_argument("--position", type=int, default=None,
                   help="token the neuron is read at (default: last for decoders, middle for encoders)")
    p.add_argument("--max-steps", type=int, default=None,
                   help="optimization steps, iterations for discrete (default: per optimizer)")
    p.add_argument("--restarts", type=int, default=None, help="rows per neuron (population for discrete)")
    p.add_argument("--lr", type=float, default=None, help="learning rate, gumbel and dense (default: per optimizer)")
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
    p.add_argument("--out-dir", default=None, help="folder for textualize.csv, textualize.md, the saved result "
                                                   "(dense: the vectors and a nearest-token plot per neuron) and "
                                                   "summary.json")
    p.set_defaults(func=cmd_textualize)

    p = subparsers.add_parser("words-needed", parents=[common],
                              help="how many neurons encode a word (Baeumel et al.): recovery against k")
    p.add_argument("--model", required=True, help="minilm, a Hugging Face folder or name, planted, tiny")
    p.add_argument("--words", required=True, help="comma-separated words")
    p.add_argument("--layers", required=True, help="comma-separated layers")
    p.add_argument("--ks", default="1,2,5,10,20,50,100", help="comma-separated numbers of neurons")
    p.add_argument("--max-steps", type=int, default=150, help="dense optimization steps")
    p.add_argument("--out-dir", default=None, help="folder for words_needed.csv, the curve, its plot and "
                                                   "summary.json")
    p.set_defaults(func=cmd_words_needed)
