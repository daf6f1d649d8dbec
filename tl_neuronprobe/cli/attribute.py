"""``tl-neuronprobe attribute``: arguments for the attribution job (a used ranking of every neuron, verified by
exact patching, compared neuron by neuron with an encoded ranking).

::

    tl-neuronprobe attribute --model planted --corpus synthetic:200 --attribute Number --edit zero \\
        --layers 0,1 --encoded encoded/encoded_Number.csv --k 20 --out-dir attribution/
"""

from __future__ import annotations

import argparse

from .. import workflows
from ..evaluation.attribution import AttributionConfig
from ..evaluation.compare import NeuronCompareConfig
from ..interventions import EDITS
from ..interventions.readouts import READOUT_SPECS
from ._args import comma_ints
from .used import _edit

__all__ = ["register", "cmd_attribute", "attribution_config"]


def attribution_config(args: argparse.Namespace) -> AttributionConfig:
    """The :class:`AttributionConfig` of the flags: ``AttributionConfig()`` with every flag given replacing its
    field (``--edit`` / ``--alpha`` / ``--beta`` and ``--readout`` read as ``evaluate-used`` reads them)."""
    base = AttributionConfig()
    readout = base.readout if args.readout in (None, "auto") else READOUT_SPECS[args.readout]()
    verify = base.verify.replace(**{k: v for k, v in (("top", args.verify_top), ("n_random", args.verify_random))
                                    if v is not None})
    batching = base.batching.replace(**({"batch_size": args.batch_size} if args.batch_size is not None else {}))
    given = dict(site=args.site, layers=comma_ints(args.layers), positions=args.positions,
                 n_sentences=args.n_sentences, n_samples=args.n_samples, ig_steps=args.ig_steps)
    return base.replace(edit=_edit(args, base.edit), readout=readout, verify=verify, batching=batching,
                        seed=args.seed, **{k: v for k, v in given.items() if v is not None})


def _compare_config(args: argparse.Namespace) -> "NeuronCompareConfig | None":
    if args.ranking is None and args.k is None and args.used_k is None:
        return None
    given = dict(ranking=args.ranking, k=args.k, used_k=args.used_k)
    return NeuronCompareConfig(**{k: v for k, v in given.items() if v is not None})


def cmd_attribute(args: argparse.Namespace) -> int:
    compare = _compare_config(args)
    if compare is not None and args.encoded is None:
        raise ValueError("--ranking, --k and --used-k set the per-neuron comparison: give --encoded FILE too")
    workflows.attribute_job(args.model, args.corpus, args.attribute, args.out_dir, attribution_config(args),
                            encoded=args.encoded, compare=compare, fit_corpus=args.fit_corpus, device=args.device,
                            progress=not args.no_progress)
    return 0


def register(subparsers, common: argparse.ArgumentParser) -> None:
    """Add ``attribute``."""
    p = subparsers.add_parser("attribute", parents=[common],
                              help="a used ranking of every neuron at once (attribution patching, checked by exact "
                                   "patching), and encoded versus used neuron by neuron")
    p.add_argument("--model", required=True, help="minilm, a Hugging Face folder or name, or a built-in test "
                                                  "model: planted, agreement (trained in seconds), tiny")
    p.add_argument("--corpus", required=True, help="a .conllu file, a word<TAB>label file, ud-english, "
                                                   "ud-english:N (its first N sentences) or synthetic:N")
    p.add_argument("--fit-corpus", default=None,
                   help="corpus for class means and donors (default: --corpus); --corpus is then evaluated")
    p.add_argument("--attribute", required=True, help="e.g. Number, upos")
    p.add_argument("--site", default=None, help="the attributed site (default mlp.post)")
    p.add_argument("--layers", default=None, help="comma-separated attributed layers (default: all)")
    p.add_argument("--edit", default=None, choices=sorted(EDITS), help="the edit each estimate is for (default mean)")
    p.add_argument("--alpha", default=None, help="translation strength, or 'scaled' (a single neuron: beta)")
    p.add_argument("--beta", type=float, default=None, help="the scaled translation's strength (default 8)")
    p.add_argument("--readout", default=None, choices=["auto"] + sorted(READOUT_SPECS),
                   help="default: chosen from the model's clean behaviour, as evaluate-used chooses")
    p.add_argument("--positions", default=None, choices=["attribute", "all"])
    p.add_argument("--n-sentences", type=int, default=None, help="use at most this many sentences")
    p.add_argument("--n-samples", type=int, default=None,
                   help="Hutchinson samples per batch for divergence readouts (default 8)")
    p.add_argument("--ig-steps", type=int, default=None,
                   help="integrated-gradient steps (default 1: plain attribution patching)")
    p.add_argument("--verify-top", type=int, default=None,
                   help="patch this many top-attributed neurons exactly (default 20)")
    p.add_argument("--verify-random", type=int, default=None,
                   help="and this many random others (default 20)")
    p.add_argument("--batch-size", type=int, default=None, help="sentences per batch (default 32)")
    p.add_argument("--encoded", default=None,
                   help="an encoded result (encoded_<attribute>.csv from evaluate-encoded) or a ranking file: "
                        "compare it with the attribution neuron by neuron")
    p.add_argument("--ranking", default=None, help="the encoded result's ranking to compare (default: its first)")
    p.add_argument("--k", type=int, default=None,
                   help="the first k neurons of the encoded ranking count as encoded (default 50)")
    p.add_argument("--used-k", type=int, default=None,
                   help="the first used-k of the attribution count as used (default: --k)")
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=cmd_attribute)
