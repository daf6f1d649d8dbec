"""``tl-neuronprobe evaluate-used`` and ``tl-neuronprobe compare``: arguments for the used jobs.

::

    tl-neuronprobe evaluate-used --model agreement --corpus synthetic:300 --attribute Number \\
        --rankings probeless,linear --layer 0 --ks 1,2,5,10,20 --out-dir used/
    tl-neuronprobe compare --encoded encoded_Number.csv --used used/used_Number.csv --out-dir compare/
"""

from __future__ import annotations

import argparse

from .. import workflows
from ..evaluation.used import UsedConfig
from ..interventions import EDITS, Edit, Translate, edit_from_name
from ..interventions.readouts import READOUT_SPECS, Identity
from ._args import comma_ints

__all__ = ["register", "cmd_evaluate_used", "cmd_compare", "used_config"]


def _alpha(text: str) -> "float | str":
    if text == "scaled":
        return text
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"--alpha must be a number or 'scaled', got {text!r}") from None


def _edit(args: argparse.Namespace, base: Edit) -> Edit:
    """The edit of ``--edit`` (default: the base config's) with ``--alpha`` / ``--beta`` for translation."""
    edit = edit_from_name(args.edit) if args.edit is not None and args.edit != base.name else base
    if isinstance(edit, Translate):
        changes = {k: v for k, v in (("alpha", None if args.alpha is None else _alpha(args.alpha)),
                                     ("beta", args.beta)) if v is not None}
        edit = edit.replace(**changes) if changes else edit
    elif args.alpha is not None or args.beta is not None:
        raise ValueError(f"--alpha and --beta set the translation strength; --edit {edit.name} has none")
    return edit


def used_config(args: argparse.Namespace) -> UsedConfig:
    """The :class:`UsedConfig` of the flags: ``UsedConfig.antverg()`` with ``--antverg`` (else ``UsedConfig()``),
    every flag given replacing its field."""
    base = UsedConfig.antverg() if args.antverg else UsedConfig()
    readout = base.readout if args.readout is None else (None if args.readout == "auto"
                                                         else READOUT_SPECS[args.readout]())
    if args.lexicon is not None:
        if args.readout not in (None, "identity"):
            raise ValueError(f"--lexicon judges the identity readout's predictions; --readout is {args.readout}")
        readout = Identity(lexicon=args.lexicon)
    fit = base.fit.replace(**{k: v for k, v in (("site", args.site), ("layer", args.layer)) if v is not None})
    batching = base.batching.replace(**{k: v for k, v in (("batch_size", args.batch_size),
                                                          ("strategy", args.strategy)) if v is not None})
    baselines = base.baselines.replace(**({"n_random": args.n_random} if args.n_random is not None else {}),
                                       **({"bottom": False} if args.no_bottom else {}))
    changes = dict(edit=_edit(args, base.edit), readout=readout, fit=fit, batching=batching, baselines=baselines,
                   seed=args.seed)
    given = dict(positions=args.positions, ks=comma_ints(args.ks), n_bootstrap=args.n_bootstrap,
                 min_forms=args.min_forms, n_sentences=args.n_sentences)
    return base.replace(**changes, **{k: v for k, v in given.items() if v is not None})


def cmd_evaluate_used(args: argparse.Namespace) -> int:
    workflows.evaluate_used_job(args.model, args.corpus, args.attribute, args.rankings, args.out_dir,
                                fit_corpus=args.fit_corpus, config=used_config(args), device=args.device,
                                progress=not args.no_progress)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from ..evaluation.compare import CompareConfig

    config = CompareConfig(encoded_metric=args.encoded_metric, used_metric=args.used_metric, probe=args.probe,
                           selection=args.selection, tol=args.tol, attribute=args.attribute)
    workflows.compare_job(args.encoded, args.used, args.out_dir, config=config)
    return 0


def register(subparsers, common: argparse.ArgumentParser) -> None:
    """Add ``evaluate-used`` and ``compare``."""
    p = subparsers.add_parser("evaluate-used", parents=[common],
                              help="intervene on the top-k neurons of each ranking: what the model uses "
                                   "(against bottom-k and random-k)")
    p.add_argument("--model", required=True, help="minilm, a Hugging Face folder or name, or a built-in test "
                                                  "model: planted, agreement (trained in seconds), tiny")
    p.add_argument("--corpus", required=True, help="a .conllu file, a word<TAB>label file, ud-english, "
                                                   "ud-english:N (its first N sentences) or synthetic:N")
    p.add_argument("--fit-corpus", default=None,
                   help="corpus for class means and ranker fitting (default: --corpus); --corpus is then evaluated")
    p.add_argument("--attribute", required=True, help="e.g. Number, upos")
    p.add_argument("--rankings", required=True,
                   help="comma-separated ranker names (probeless, linear, gaussian, ...) and/or ranking files "
                        "(name=path.txt|.json|.csv, neurons best first)")
    p.add_argument("--antverg", action="store_true",
                   help="start from Antverg & Belinkov's setup (UsedConfig.antverg()): mean of sub-tokens, scaled "
                        "translation (beta 8), class values with fewer than 100 forms dropped, at most 6,500 "
                        "sentences; the flags below replace its values")
    p.add_argument("--site", default=None, help="site the ranker names rank (default mlp.post)")
    p.add_argument("--layer", type=int, default=None, help="layer the ranker names rank (needed for names)")
    p.add_argument("--ks", default=None, help="comma-separated k values (default 1,2,5,10,20,50)")
    p.add_argument("--edit", default=None, choices=sorted(EDITS), help="the edit (default translate)")
    p.add_argument("--readout", default=None, choices=["auto"] + sorted(READOUT_SPECS),
                   help="default: chosen from the model's clean behaviour")
    p.add_argument("--lexicon", default=None,
                   help="a corpus (spec as --corpus) whose lexicon judges predicted words; implies --readout identity "
                        "(default: the evaluated corpus)")
    p.add_argument("--positions", default=None, choices=["attribute", "all"])
    p.add_argument("--alpha", default=None,
                   help="translation strength, or 'scaled' (beta decaying with rank); default 1.0")
    p.add_argument("--beta", type=float, default=None, help="the scaled translation's top strength (default 8)")
    p.add_argument("--n-random", type=int, default=None, help="random-k draws per k (default 3)")
    p.add_argument("--no-bottom", action="store_true", help="skip the bottom-k baseline")
    p.add_argument("--n-bootstrap", type=int, default=None, help="bootstrap resamples (default 1000)")
    p.add_argument("--batch-size", type=int, default=None, help="sentences per batch (default 32)")
    p.add_argument("--strategy", default=None, choices=["auto", "batched", "cached", "naive"])
    p.add_argument("--min-forms", type=int, default=None, help="drop class values with fewer distinct word forms")
    p.add_argument("--n-sentences", type=int, default=None, help="evaluate at most this many sentences")
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=cmd_evaluate_used)

    p = subparsers.add_parser("compare", help="encoded versus used curves side by side, and where they disagree")
    p.add_argument("--encoded", required=True, help="CSV from evaluate-encoded (or any ranking/k/metric table)")
    p.add_argument("--used", required=True, help="CSV from evaluate-used")
    p.add_argument("--encoded-metric", default=None, help="default: accuracy")
    p.add_argument("--used-metric", default=None, help="default: the readout's first metric")
    p.add_argument("--probe", default="logistic", help="which probe's encoded curves (if the table has several)")
    p.add_argument("--selection", default="top", choices=["top", "bottom"])
    p.add_argument("--tol", type=float, default=0.02,
                   help="without bootstrap intervals: the margin of 'better than random' and 'disagree'")
    p.add_argument("--attribute", default=None, help="the attribute to compare when a table holds several")
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=cmd_compare)
