"""Command line: ``tl-neuronprobe extract | demo | rank | evaluate-encoded | evaluate-used | compare | attribute |
textualize | words-needed | describe | report``.

Each command parses its arguments and calls one function of :mod:`tl_neuronprobe.workflows`.
"""

from __future__ import annotations

import argparse
import json
import sys

from .. import workflows
from ..core.adapter import LongSentenceError
from ..data.corpus import CorpusError
from ..data.extraction import ExtractConfig, NonFiniteActivationError
from ..textualization import TextualizeError
from . import attribute, describe, rank, textualize, used
from ._args import common_flags, comma_ints, comma_list

#: what a user can cause (a bad file, name, attribute or value); anything else is a bug and keeps its traceback
USER_ERRORS = (ValueError, KeyError, FileNotFoundError, CorpusError, LongSentenceError, NonFiniteActivationError,
               TextualizeError)


def cmd_extract(args: argparse.Namespace) -> int:
    sites = comma_list(args.site) or ["mlp.post"]
    config = ExtractConfig(site=sites[0] if len(sites) == 1 else tuple(sites), layers=comma_ints(args.layers),
                           aggregation=args.aggregation, dtype=args.dtype, batch_size=args.batch_size,
                           long_sentences=args.long_sentences, sentences_per_block=args.sentences_per_block,
                           storage=args.storage)
    workflows.extract_job(args.model, args.corpus, args.out_dir, config, seed=args.seed,
                          device_map=device_map(args.device_map), n_devices=args.n_devices, device=args.device,
                          dictionaries=tuple(args.dictionary), progress=not args.no_progress)
    return 0


def device_map(text: "str | None") -> "str | dict | None":
    """``--device-map``: ``auto``, ``balanced``, ``sequential`` ... as given, or a JSON object of module to device."""
    if not text or not text.lstrip().startswith("{"):
        return text or None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--device-map is neither a name (auto, balanced) nor a JSON object: {exc}") from None


def cmd_demo(args: argparse.Namespace) -> int:
    base = workflows.DemoConfig.quick() if args.quick else workflows.DemoConfig()
    changes: dict = dict(model=args.model, corpus=args.corpus, seed=args.seed,
                         skip=tuple(dict.fromkeys(base.skip + tuple(comma_list(args.skip) or ()))))
    if args.n_sentences is not None:
        changes["n_sentences"] = args.n_sentences
    if args.attributes:
        changes["attributes"] = tuple(comma_list(args.attributes))
    workflows.demo(base.replace(**changes), out_dir=args.out_dir, units=args.units, device=args.device,
                   progress=not args.no_progress)
    return 0


def _add_extract(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("extract", parents=[common], help="word-aligned activations of a corpus, streamed to a folder")
    p.add_argument("--model", required=True, help="minilm, a Hugging Face folder or name, planted, tiny")
    p.add_argument("--corpus", required=True, help="a .conllu file, a word<TAB>label file, ud-english, "
                                                   "ud-english:N (its first N sentences) or synthetic:N")
    p.add_argument("--site", default="mlp.post", help="comma-separated sites: mlp.post, mlp.pre, resid.post, ...")
    p.add_argument("--layers", default=None, help="comma-separated layers (default: all)")
    p.add_argument("--aggregation", default="last", choices=["first", "last", "mean"])
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--long-sentences", default="error", choices=["error", "window", "skip"])
    p.add_argument("--sentences-per-block", type=int, default=None,
                   help="sentences per shard: the unit of work split over torchrun ranks, resumed after a failure, "
                        "and held in RAM at once (default: from the corpus size and the number of ranks, at most "
                        "2048 sentences and about 2 GiB of rows)")
    p.add_argument("--device-map", default=None,
                   help="place a Hugging Face model over devices: auto, balanced, or a JSON object module->device")
    p.add_argument("--n-devices", type=int, default=None, help="split the model over the first N GPUs")
    p.add_argument("--dictionary", action="append", default=[], metavar="PATH",
                   help="an SAE, transcoder or directions folder in SAELens's layout (cfg.json + "
                        "sae_weights.safetensors), registered for this extraction so that --site sae (transcoder, "
                        "...) reads its latents; repeat for several")
    p.add_argument("--storage", default="auto", choices=["auto", "dense", "sparse"],
                   help="rows stored dense or as sparse rows (auto: sparse when every site is a ReLU, JumpReLU or "
                        "TopK dictionary)")
    p.add_argument("--out-dir", required=True, help="the activations folder to write")
    p.set_defaults(func=cmd_extract)


def _add_demo(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("demo", parents=[common], help="every stage on MiniLM and real English (UD EWT), in one folder")
    p.add_argument("--model", default="minilm")
    p.add_argument("--corpus", default="ud-english",
                   help="ud-english (shipped held-out EWT slice), synthetic, or a .conllu path (e.g. the full "
                        "treebank)")
    p.add_argument("--n-sentences", type=int, default=None,
                   help=f"first N sentences of the corpus (default {workflows.DEFAULT_SENTENCES}; --quick: 40)")
    p.add_argument("--attributes", default=None, help="comma-separated (default: upos,Number,VerbForm)")
    p.add_argument("--quick", action="store_true", help="every output, built small, in well under a minute")
    p.add_argument("--out-dir", default="tnp-demo")
    p.add_argument("--skip", default="", help=f"comma-separated stages to skip: {', '.join(workflows.STAGES)}")
    p.add_argument("--units", default="neurons",
                   help="neurons (default); sae: also train (once, cached) a small SAE at layer 3 and compare its "
                        "latents with the neurons; or a dictionary folder in SAELens's layout")
    p.set_defaults(func=cmd_demo)


def cmd_rerun(args: argparse.Namespace) -> int:
    workflows.rerun(args.summary, args.out_dir, device=args.device, progress=not args.no_progress)
    return 0


def _add_rerun(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("rerun", help="run a stage again from the summary.json it wrote (its seed included)")
    p.add_argument("summary", help="a summary.json (or the folder holding it) written by any command")
    p.add_argument("--device", default=None, help="where the run computes (cpu, cuda, cuda:1); default: the best one")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--out-dir", default=None, help="write the new run here (default: the recorded folder)")
    p.set_defaults(func=cmd_rerun)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tl-neuronprobe", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    common = common_flags()
    _add_extract(sub, common)
    _add_demo(sub, common)
    _add_rerun(sub, common)
    for module in (rank, used, attribute, textualize, describe):
        module.register(sub, common)
    return parser


def main(argv: "list[str] | None" = None) -> int:
    """Run one command; a user error prints ``tl-neuronprobe <command>: error: ...`` and returns 2."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"tl-neuronprobe {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
