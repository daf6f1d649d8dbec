"""Encoded rankings judged by MiniLM's own predictions (the identity readout through its shipped MLM head), as the
tables of docs/interventions.md (issue 26).

    python tests/benchmarks/measure_used_identity.py --part heldout --n-sentences 800 \
        --attributes upos,Number,VerbForm --rankers probeless,linear,gaussian --ks 1,5,20,100 --out used_identity.json

``--part heldout`` reads the shipped held-out slice (where numbers are reported), ``tune`` the first sentences of
the tune documents of the full EWT train file. The part is cut at a document boundary near its middle: rankers and
class means are fitted on the first half, the edits evaluated on the second (``evaluate_used(..., test=...)``).
Setup (the paper's, fixed before any run): layer 3 ``mlp.post``, scaled translation (beta 8) over mean-of-sub-token
word vectors, predictions judged with the lexicon of the whole shipped slice (``Identity(lexicon="ud-english")``),
3 random draws, 1,000 bootstrap resamples over sentences. Printed per attribute: for each ranking and k the share
of attribute words whose predicted word changed (``changed``) and changed to the same lemma with another value
(``flip``: ``correct_lemma_wrong_value``), for the top-k, bottom-k and random-k neurons. One torch thread.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import tl_neuronprobe as tnp
from tl_neuronprobe.data.treebank import document_of, split_by_document
from tl_neuronprobe.evaluation.used import Baselines, UsedConfig, UsedFit
from tl_neuronprobe.interventions import Identity, Translate

EWT = Path(__file__).resolve().parents[3] / "shared" / "data" / "en_ewt-ud-train.conllu"


def halves(corpus: tnp.Corpus) -> tuple[tnp.Corpus, tnp.Corpus]:
    """The corpus cut at the first document boundary at or after its middle (no document in both halves)."""
    docs = [document_of(s.id) for s in corpus.sentences]
    cut = next(i for i in range(len(docs) // 2, len(docs)) if docs[i] != docs[i - 1])
    return corpus[:cut], corpus[cut:]


def table(result, ks, rankers) -> str:
    t = result.table
    lines = ["| ranking | k | changed top | bottom | random | flip top | bottom | random |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name in rankers:
        for k in ks:
            cells = []
            for metric in ("changed", "correct_lemma_wrong_value"):
                for sel in ("top", "bottom", "random"):
                    row = t[(t.ranking == name) & (t.selection == sel) & (t.k == k) & (t.metric == metric)]
                    v = row.iloc[0]
                    cells.append(f"{v.value:.3f}" + (f" ({v.ci_low:.3f}–{v.ci_high:.3f})" if sel == "top" else ""))
            lines.append(f"| {name} | {k} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=["heldout", "tune"], default="heldout")
    ap.add_argument("--n-sentences", type=int, default=800)
    ap.add_argument("--attributes", default="upos,Number,VerbForm")
    ap.add_argument("--rankers", default="probeless,linear,gaussian")
    ap.add_argument("--ks", default="1,5,20,100")
    ap.add_argument("--layer", type=int, default=3)
    ap.add_argument("--head", default="trained", choices=["trained", "none"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    if args.part == "heldout":
        corpus = tnp.Corpus.load(f"ud-english:{args.n_sentences}")
    else:
        corpus = split_by_document(tnp.Corpus.from_conllu(EWT))["tune"][: args.n_sentences]
    fit, test = halves(corpus)
    model = tnp.models.load("minilm", device="cpu", head=args.head)
    ks = tuple(int(k) for k in args.ks.split(","))
    rankers = args.rankers.split(",")
    config = UsedConfig(edit=Translate(alpha="scaled", beta=8.0), readout=Identity(lexicon="ud-english"), ks=ks,
                        baselines=Baselines(bottom=True, n_random=3), fit=UsedFit(layer=args.layer, aggregation="mean"),
                        n_bootstrap=1000, seed=0)
    out: dict = dict(part=args.part, n_fit=len(fit), n_test=len(test), layer=args.layer, head=args.head, results={})
    print(f"{corpus.name}: fit on {len(fit)} sentences, evaluated on {len(test)} (documents apart)")
    for attribute in args.attributes.split(","):
        t0 = time.perf_counter()
        result = tnp.evaluate_used(model, fit, attribute, rankers, config, test=test, progress=False)
        seconds = time.perf_counter() - t0
        md = table(result, ks, rankers)
        n_units = int(result.table.n_units.iloc[0])
        print(f"\n{attribute} ({n_units} words, readout {result.readout}, {seconds:.0f} s)\n{md}", flush=True)
        out["results"][attribute] = dict(table=result.table.to_dict(orient="records"), markdown=md,
                                         seconds=round(seconds, 1), n_units=n_units)
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1, default=str))
    return out


if __name__ == "__main__":
    main()
