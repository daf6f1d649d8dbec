"""``tl-neuronprobe textualize``: the inputs that drive neurons; and the demo stage that shows optimized text
for the top UPOS and Number neurons beside their top corpus windows."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from ..core.adapter import ModelAdapter
from ..core.neurons import Neuron, parse_neurons
from ..textualization import METHODS, TextualizeError, corpus_top_windows, textualize

SHOWN = ["neuron", "method", "text", "activation", "corpus_max", "ratio", "fluency", "similarity", "corpus_text"]


def register(subparsers) -> None:
    """Add the ``textualize`` subcommand."""
    p = subparsers.add_parser("textualize", help="find the inputs that drive neurons (activation maximization)",
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
    p.add_argument("--corpus", default="synthetic:300",
                   help="baseline corpus: synthetic[:N], a .conllu or word<TAB>label file, or 'none'")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                   help="autocast dtype for the optimization (results are re-scored in the model's precision)")
    p.add_argument("--out", default=None, help="folder for textualize.csv and textualize.md")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=cmd_textualize)


def cmd_textualize(args: argparse.Namespace) -> int:
    from .. import models

    neurons = parse_neurons(args.neurons)
    model = models.load(args.model, device=args.device)
    corpus = None if args.corpus.lower() == "none" else args.corpus
    result = textualize(model, neurons, method=args.method, length=args.length, position=args.position,
                        seed=args.seed, steps=args.steps, restarts=args.restarts, batch_size=args.batch_size,
                        fluency=args.fluency, corpus=corpus, dtype=args.dtype, progress=not args.no_progress)
    table = result.table
    print(table[SHOWN].to_string(index=False))
    minutes = result.seconds / 60
    print(f"{len(result)} neurons in {result.seconds:.1f} s ({len(result) / minutes if minutes else float('nan'):.1f} "
          f"neurons/min); win rate vs corpus max: {result.win_rate:.2f}")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        table.to_csv(out / "textualize.csv", index=False)
        (out / "textualize.md").write_text(_markdown(table[SHOWN]))
        print(f"written to {out}")
    return 0


# --------------------------------------------------------------------------------------------- demo
def top_neurons(acts, attribute: str, k: int = 2, exclude: "set[Neuron] | None" = None) -> list[Neuron]:
    """The ``k`` neurons (not in ``exclude``) whose class means differ most for ``attribute`` (sum over class
    pairs of the absolute mean difference, as in Antverg & Belinkov's probeless ranking), in one pass."""
    X, y, classes = acts.dataset(attribute, min_count=2)
    X = X.float()
    C = len(classes)
    means = torch.zeros(C, X.shape[1]).index_add_(0, y, X) / torch.bincount(y, minlength=C)[:, None].float()
    score = torch.zeros(X.shape[1])
    for c in range(C):
        score += (means[c + 1:] - means[c]).abs().sum(dim=0)
    for i, n in enumerate(acts.neurons):
        if exclude and n in exclude:
            score[i] = -float("inf")
    return [acts.neurons[i] for i in score.topk(k).indices.tolist()]


def _demo_neurons(model, corpus, out_dir: Path, per_attribute: int) -> dict[str, list[Neuron]]:
    from ..data.activations import Activations
    from ..data.extraction import extract

    saved = out_dir.parent / "activations"  # the main demo extracts there first
    try:
        acts = Activations.load(saved)
        if len(acts.words) != corpus.n_words:
            raise FileNotFoundError
    except (FileNotFoundError, KeyError, ValueError):
        acts = extract(model, corpus, site="mlp.post", progress=False)
    groups: dict[str, list[Neuron]] = {}
    for attr in ("upos", "Number"):
        if attr in acts.attributes:  # distinct neurons per attribute
            groups[attr] = top_neurons(acts, attr, per_attribute, {n for g in groups.values() for n in g})
    return groups


def words_only(token: str) -> bool:
    """Vocabulary filter for readable demo text: whole alphabetic tokens (no sub-word pieces, digits or
    punctuation)."""
    return token.isalpha()


def demo_textualize(model, neurons, corpus, out_dir, seed: int = 0, method: str = "discrete", length: int = 4,
                    steps: int = 30, per_attribute: int = 2, vocab=words_only, progress: bool = False):
    """Textualize the top UPOS and Number neurons and write them beside their top corpus windows.

    ``neurons``: None (rank them here from the corpus, reusing ``out_dir/../activations`` when the main demo
    saved them there), a list, or ``{attribute: [neurons]}``. Writes ``textualize.md`` and
    ``textualize.csv`` under ``out_dir``; returns the table. The default budget (discrete, 30 iterations,
    2 members x 16 children, whole-word tokens) takes well under a minute for four MiniLM neurons on two CPU
    cores once activations are extracted.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if neurons is None:
        groups = _demo_neurons(model, corpus, out, per_attribute)
    elif isinstance(neurons, Mapping):
        groups = {k: parse_neurons(v) for k, v in neurons.items()}
    else:
        groups = {"": parse_neurons(neurons)}
    attribute_of: dict[Neuron, str] = {}
    for attr, group in groups.items():
        for n in group:
            attribute_of.setdefault(n, attr)
    chosen = list(attribute_of)
    if not chosen:
        raise TextualizeError("no neurons to textualize in the demo")
    windows = corpus_top_windows(model, corpus, chosen, window=length, k=3)
    corpus_max = {n: (float(g.activation.iloc[0]), str(g.text.iloc[0]))
                  for n, g in ((Neuron.parse(k), g) for k, g in windows.groupby("neuron", sort=False))}
    torch.manual_seed(seed)
    np.random.seed(seed)
    result = textualize(model, chosen, method=method, length=length, seed=seed, steps=steps, restarts=2,
                        candidates=16, corpus_max=corpus_max, vocab=vocab, progress=progress)
    table = result.table
    table.insert(1, "attribute", [attribute_of[Neuron.parse(n)] for n in table.neuron])
    top3 = windows.groupby("neuron")[["text", "activation"]].apply(
        lambda g: " / ".join(f"{t} ({a:.2f})" for t, a in zip(g.text, g.activation)))
    table["top_corpus_windows"] = [top3.get(n, "") for n in table.neuron]
    table.to_csv(out / "textualize.csv", index=False)
    seconds = time.perf_counter() - t0
    name = "/".join(Path(ModelAdapter.wrap(model).name).parts[-2:])
    lines = ["# Textualization: optimized text beside the top corpus windows", "",
             f"Model {name}, method {method}, "
             f"{length} tokens, {steps} iterations, seed {seed}; win rate vs corpus max {result.win_rate:.2f}; "
             f"{seconds:.1f} s in all.", "",
             _markdown(table[["attribute", "neuron", "text", "activation", "corpus_max", "ratio",
                              "top_corpus_windows"]])]
    (out / "textualize.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return table


def _markdown(frame) -> str:
    """A GitHub markdown table (no extra dependency)."""
    cols = list(frame.columns)

    def fmt(v) -> str:
        if isinstance(v, float):
            return f"{v:.3f}"
        if isinstance(v, (tuple, list)):
            v = " ".join(map(str, v))
        return str(v).replace("|", "\\|").replace("\n", " ")
    rows = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    rows += ["| " + " | ".join(fmt(v) for v in rec) + " |" for rec in frame.itertuples(index=False)]
    return "\n".join(rows) + "\n"
