"""Neurons versus latents on MiniLM over held-out shipped sentences (issue 24's table).

    python tests/benchmarks/measure_units.py --n-sentences 800 --used-sentences 200 --threads 2

The demo's SAE (``workflows.demo_sae``: layer 3 ``mlp.post``, 1,536 latents, TopK k=32, trained on the shipped
slice from the first document boundary after sentence 1,000; cached) against layer 3's 1,536 neurons, on the first
``--n-sentences`` sentences (before that boundary, so never seen by the SAE): per attribute (UPOS, Number),
ranker (Probeless, Linear) and k, the held-out probe accuracy of the top k, the effect of translating them on
MiniLM's own predictions (identity readout through the shipped MLM head, the EWT lexicon), and their descriptions'
held-out F1. Prints the table as markdown and writes ``--out`` (JSON) if given.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch

import tl_neuronprobe as tnp
from tl_neuronprobe.interventions import Identity
from tl_neuronprobe.workflows import markdown_table
from tl_neuronprobe.workflows._demo_used import USED_CONFIG
from tl_neuronprobe.workflows._units import SAE_TRAIN_FROM, demo_sae, units_stage


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-sentences", type=int, default=800)
    ap.add_argument("--used-sentences", type=int, default=200)
    ap.add_argument("--layer", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None)
    ap.add_argument("--keep", default=None, help="write the stage's folder (units/) here instead of a temporary one")
    args = ap.parse_args(argv)
    if args.n_sentences > SAE_TRAIN_FROM:
        raise SystemExit(f"--n-sentences must stay below {SAE_TRAIN_FROM} (the SAE trains on what follows)")
    torch.set_num_threads(args.threads)
    model = tnp.models.load("minilm", device="cpu")
    corpus = tnp.Corpus.load(f"ud-english:{args.n_sentences}")
    t0 = time.perf_counter()
    sae = demo_sae(model, "ud-english", corpus, args.layer, progress=True)
    sae_seconds = time.perf_counter() - t0
    print(sae, sae.meta, f"{sae_seconds:.0f} s", flush=True)
    used = USED_CONFIG.replace(readout=Identity(lexicon="ud-english"), n_sentences=None, seed=0)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or tmp
        table = units_stage(model, corpus, sae, out, used=used, used_sentences=args.used_sentences, progress=False)
        timings = json.loads(open(f"{out}/units_summary.json").read())
    stage_seconds = time.perf_counter() - t0
    cols = ["attribute", "ranking", "k", "units", "encoded_accuracy", "used_changed",
            "used_correct_lemma_wrong_value", "description_f1", "described"]
    t = table[[c for c in cols if c in table]].sort_values(["attribute", "ranking", "k", "units"])
    md = markdown_table(t)
    print(md)
    result = dict(n_sentences=args.n_sentences, used_sentences=args.used_sentences, layer=args.layer,
                  sae={k: v for k, v in sae.meta.items() if isinstance(v, (int, float, str))},
                  sae_seconds=round(sae_seconds, 1), stage_seconds=round(stage_seconds, 1), timings=timings,
                  table=table.to_dict(orient="records"), markdown=md)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1, default=str)
    return result


if __name__ == "__main__":
    main()
