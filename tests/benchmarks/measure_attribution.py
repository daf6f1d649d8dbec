"""Attribution patching against exhaustive exact patching on MiniLM (issue 23's targets), as a table.

    python tests/benchmarks/measure_attribution.py --part heldout --layer 3 --n-sentences 100 \
        --edits zero,mean --n-samples 8 --out attribution_minilm.json

``--part tune`` takes the first sentences of the *tune* documents of the full EWT train file (where settings are
chosen); ``heldout`` the shipped slice (where numbers are reported). For every edit: the exact effect of editing
each of the layer's 1,536 neurons alone (:func:`exact_effects`, the ground truth; cached under ``--cache`` so
that settings can be compared without recomputing it), then :func:`attribute_used` for each ``--n-samples`` and
``--ig-steps`` value; printed: Spearman over all neurons, top-20 recall before and after the verification's
re-ranking (``--verify-top``), and wall times. One torch thread by default (``--threads``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import tl_neuronprobe as tnp
from tl_neuronprobe.data.treebank import split_by_document
from tl_neuronprobe.evaluation.attribution import AttributionConfig, Verify, exact_effects
from tl_neuronprobe.evaluation.used import UsedBatching
from tl_neuronprobe.interventions import EDITS, Divergence

EWT = Path(__file__).resolve().parents[3] / "shared" / "data" / "en_ewt-ud-train.conllu"


def corpus_for(part: str, n: int) -> tnp.Corpus:
    if part == "heldout":
        return tnp.Corpus.load(f"ud-english:{n}")
    return split_by_document(tnp.Corpus.from_conllu(EWT))["tune"][:n]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def recall(estimate: np.ndarray, exact: np.ndarray, k: int = 20) -> float:
    return len(set(np.argsort(-estimate)[:k]) & set(np.argsort(-exact)[:k])) / k


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--part", choices=["tune", "heldout"], default="heldout")
    ap.add_argument("--layer", type=int, default=3)
    ap.add_argument("--attribute", default="upos")
    ap.add_argument("--n-sentences", type=int, default=100)
    ap.add_argument("--edits", default="zero,mean")
    ap.add_argument("--n-samples", default="8")
    ap.add_argument("--ig-steps", default="1")
    ap.add_argument("--verify-top", type=int, default=40)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache", default="/tmp/tnp-exact-cache")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = tnp.models.load("minilm", device="cpu")
    corpus = corpus_for(args.part, args.n_sentences)
    rows = []
    for edit_name in args.edits.split(","):
        edit = EDITS[edit_name]()
        base = AttributionConfig(edit=edit, readout=Divergence(), layers=(args.layer,), verify=Verify(0, 0),
                                 batching=UsedBatching(batch_size=32))
        neurons = [tnp.Neuron(args.layer, j) for j in range(tnp.ModelAdapter.wrap(model).d_mlp)]
        cache = Path(args.cache) / f"{args.part}_{args.n_sentences}_{args.attribute}_L{args.layer}_{edit_name}.npy"
        t = time.perf_counter()
        if cache.exists():
            exact, exact_seconds = np.load(cache), float(json.loads(cache.with_suffix(".json").read_text())["s"])
        else:
            table = exact_effects(model, corpus, args.attribute, neurons, base, progress=True)
            exact_seconds = time.perf_counter() - t
            exact = table["exact"].to_numpy(dtype=np.float64)
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.save(cache, exact)
            cache.with_suffix(".json").write_text(json.dumps({"s": exact_seconds}))
        for n_samples in (int(x) for x in args.n_samples.split(",")):
            for ig in (int(x) for x in args.ig_steps.split(",")):
                config = base.replace(n_samples=n_samples, ig_steps=ig)
                t = time.perf_counter()
                attr = tnp.attribute_used(model, corpus, args.attribute, config, progress=False)
                seconds = time.perf_counter() - t
                est = attr.scores_
                checked = tnp.attribute_used(model, corpus, args.attribute,
                                             config.replace(verify=Verify(args.verify_top, 0)), progress=False)
                corrected = -checked.table["rank"].to_numpy(dtype=np.float64)  # rank 1 = most used
                rows.append(dict(part=args.part, edit=edit_name, n_samples=n_samples, ig_steps=ig,
                                 spearman=spearman(est, exact), top20_recall=recall(est, exact),
                                 top20_recall_corrected=recall(corrected, exact), attribution_seconds=seconds,
                                 exact_seconds=exact_seconds, cost_ratio=seconds / exact_seconds,
                                 verify_top=args.verify_top))
                print(json.dumps(rows[-1]), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
