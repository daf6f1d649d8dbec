"""``tl-neuronprobe rank`` and ``tl-neuronprobe evaluate-encoded``: arguments for the encoded jobs.

Each command builds its config (``RankConfig``, ``EncodedConfig``) and calls one job of
:mod:`tl_neuronprobe.workflows`.
"""

from __future__ import annotations

import argparse

from .. import workflows
from ..evaluation.encoded import DEFAULT_KS, EncodedConfig
from ._args import comma_ints, comma_list

__all__ = ["register", "cmd_rank", "cmd_evaluate_encoded"]


def cmd_rank(args: argparse.Namespace) -> int:
    config = workflows.RankConfig(rankers=tuple(comma_list(args.rankers) or ("linear", "probeless")), k=args.k,
                                  min_count=args.min_count, seed=args.seed)
    workflows.rank_job(args.activations, args.attribute, args.out_dir, layer=args.layer, config=config,
                       device=args.device, progress=not args.no_progress)
    return 0


def cmd_evaluate_encoded(args: argparse.Namespace) -> int:
    config = EncodedConfig(ks=tuple(comma_ints(args.ks) or DEFAULT_KS),
                           probes=tuple(comma_list(args.probes) or ("logistic", "gaussian")),
                           control=not args.no_control, test_size=args.test_size, min_count=args.min_count,
                           seed=args.seed)
    workflows.evaluate_encoded_job(args.activations, args.attribute, args.out_dir, rankers=comma_list(args.rankers),
                                   layer=args.layer, k=args.k, test_activations=args.test_activations,
                                   config=config, device=args.device, progress=not args.no_progress)
    return 0


def _add_activations(p: argparse.ArgumentParser) -> None:
    p.add_argument("activations", help="folder written by `tl-neuronprobe extract`")
    p.add_argument("--attribute", required=True, help="e.g. upos, Number")
    p.add_argument("--layer", type=int, default=None, help="only neurons of this layer")
    p.add_argument("--out-dir", required=True)


def register(subparsers, common: argparse.ArgumentParser) -> None:
    """Add ``rank`` and ``evaluate-encoded``."""
    p = subparsers.add_parser("rank", parents=[common], help="rank neurons for an attribute on saved activations")
    _add_activations(p)
    p.add_argument("--rankers", default="linear,probeless",
                   help="comma-separated: linear, gaussian, probeless, mean_difference, f_statistic, "
                        "mutual_information, l1, average_precision, random")
    p.add_argument("--k", type=int, default=20, help="how many top neurons to list")
    p.add_argument("--min-count", type=int, default=2, help="drop classes with fewer words")
    p.set_defaults(func=cmd_rank)

    p = subparsers.add_parser("evaluate-encoded", parents=[common],
                              help="probe x ranking x k (top/bottom/random) with a control task")
    _add_activations(p)
    p.add_argument("--rankers", default=None, help="comma-separated (default: all)")
    p.add_argument("--ks", default=None, help="comma-separated k values (default 1,2,5,...,500)")
    p.add_argument("--probes", default="logistic,gaussian")
    p.add_argument("--no-control", action="store_true")
    p.add_argument("--test-size", type=float, default=0.3)
    p.add_argument("--test-activations", default=None,
                   help="saved activations of held-out words (same neurons) to score on; default: a split by "
                        "sentence of ACTIVATIONS (--test-size)")
    p.add_argument("--min-count", type=int, default=10)
    p.add_argument("--k", type=int, default=50, help="top-k used for the layer distribution")
    p.set_defaults(func=cmd_evaluate_encoded)
