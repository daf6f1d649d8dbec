"""Measure MiniLM's masked-LM head on the held-out slice (``Corpus.load("ud-english")``): the trained head that
``tnp.models.load("minilm")`` attaches, the random one of ``load("minilm", head="none")`` and a unigram baseline.

- masked: one seeded copy of the slice with 15% of the non-special tokens replaced by [MASK]; top-1 and top-5
  accuracy of the original token at those positions;
- identity: the clean slice; share of non-special tokens whose top-1 prediction is the input token itself (what
  the ``identity`` readout needs), and the same at the tokens of the words that carry Number;
- unigram: the most frequent tokens of the tune part of EWT train (where the head was trained), whatever the
  context.

Everything runs through the package's own model (``ModelAdapter.forward``: the TransformerBridge and its head).

    python scripts/measure_minilm_head.py [--n-sentences N] [--treebank .../en_ewt-ud-train.conllu]

prints a Markdown table (docs/foundation.md) and writes it with the raw counts to ``--out-dir`` if given.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from train_minilm_head import MASK_RATE, TREEBANK, token_ids


def predictions(model, corpus, seed: int, batch_size: int = 32) -> dict[str, np.ndarray]:
    """Per non-special token of ``corpus``: the input id, whether it was masked, the top-5 ids on the masked copy
    (at masked tokens) and the top-1 id on the clean input, and whether the token's word carries Number."""
    from tl_neuronprobe.core.adapter import Batch, ModelAdapter

    adapter = ModelAdapter.wrap(model)
    mask_id = adapter.tokenizer.mask_token_id
    rng = np.random.default_rng(seed)
    out: dict[str, list] = {k: [] for k in ("ids", "masked", "top5", "clean", "number")}
    number = corpus.attribute("Number") if "Number" in corpus.attribute_names else None
    starts = np.concatenate([[0], np.cumsum([len(s) for s in corpus.sentences])])
    for i in range(0, len(corpus), batch_size):
        sents = list(range(i, min(i + batch_size, len(corpus))))
        batch = adapter.collate(adapter.tokenize_sentences([corpus.sentences[s].words for s in sents]))
        word = batch.word_of_token
        real = word >= 0
        chosen = real & torch.as_tensor(rng.random(tuple(word.shape)) < MASK_RATE, device=word.device)
        masked = Batch(torch.where(chosen, torch.full_like(batch.input_ids, mask_id), batch.input_ids),
                       batch.attention_mask, batch.word_of_token, batch.padded)
        with torch.inference_mode():
            clean = adapter.forward(batch).argmax(-1)
            top5 = adapter.forward(masked).topk(5, dim=-1).indices
        b, p = torch.nonzero(real, as_tuple=True)
        out["ids"].append(batch.input_ids[b, p].cpu().numpy())
        out["masked"].append(chosen[b, p].cpu().numpy())
        out["top5"].append(top5[b, p].cpu().numpy())
        out["clean"].append(clean[b, p].cpu().numpy())
        if number is not None:
            rows = np.asarray(sents)[b.cpu().numpy()]
            flat = starts[rows] + word[b, p].cpu().numpy()
            out["number"].append(np.asarray([number[j] is not None for j in flat]))
    return {k: np.concatenate(v) if v else np.zeros(0) for k, v in out.items()}


def unigram_top5(treebank: str, tokenizer) -> np.ndarray:
    """The five most frequent tokens of the tune part of EWT train (specials left out)."""
    from tl_neuronprobe.data.corpus import Corpus
    from tl_neuronprobe.data.treebank import split_by_document

    tune = split_by_document(Corpus.from_conllu(treebank))["tune"]
    ids = token_ids(tokenizer, [s.words for s in tune.sentences])
    counts = np.bincount(np.concatenate([x[1:-1] for x in ids]), minlength=len(tokenizer))
    return np.argsort(-counts, kind="stable")[:5]


def scores(ids: np.ndarray, masked: np.ndarray, top5: np.ndarray, clean: np.ndarray, number: np.ndarray) -> dict:
    m = masked.astype(bool)
    row = dict(masked_top1=float((top5[m, 0] == ids[m]).mean()),
               masked_top5=float((top5[m] == ids[m, None]).any(-1).mean()),
               identity=float((clean == ids).mean()))
    if number.size:
        row["identity_number_words"] = float((clean[number] == ids[number]).mean())
    return row


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-sentences", type=int, default=None, help="first N sentences of the slice (default: all)")
    ap.add_argument("--treebank", default=TREEBANK, help="EWT train, for the unigram baseline's tune counts")
    ap.add_argument("--seed", type=int, default=0, help="the masking draw (and the random head's init)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out-dir", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    import tl_neuronprobe as tnp

    t0 = time.perf_counter()
    corpus = tnp.Corpus.load("ud-english" if args.n_sentences is None else f"ud-english:{args.n_sentences}")
    rows = {}
    trained = tnp.models.load("minilm", device="cpu")
    pred = predictions(trained, corpus, args.seed)
    rows["trained head (`load(\"minilm\")`)"] = scores(**pred)
    torch.manual_seed(args.seed)
    random = tnp.models.load("minilm", device="cpu", head="none")
    rand = predictions(random, corpus, args.seed)
    rows["random head (`head=\"none\"`)"] = scores(**rand)
    best = unigram_top5(args.treebank, tnp.ModelAdapter.wrap(trained).tokenizer)
    n = len(pred["ids"])
    rows["unigram (tune counts)"] = scores(pred["ids"], pred["masked"], np.tile(best, (n, 1)),
                                           np.full(n, best[0]), pred["number"])
    n_masked = int(pred["masked"].sum())
    header = ("| head | masked top-1 | masked top-5 | identity (all tokens) | identity (Number words) |\n"
              "| --- | --- | --- | --- | --- |")
    lines = [header] + [f"| {name} | {r['masked_top1']:.3f} | {r['masked_top5']:.3f} | {r['identity']:.3f} | "
                        f"{r.get('identity_number_words', float('nan')):.3f} |" for name, r in rows.items()]
    table = "\n".join(lines)
    seconds = time.perf_counter() - t0
    print(f"{corpus.name}: {len(corpus)} sentences, {n} tokens, {n_masked} masked; {seconds:.0f} s")
    print(table)
    result = dict(corpus=corpus.name, n_sentences=len(corpus), n_tokens=n, n_masked=n_masked, seed=args.seed,
                  rows=rows, seconds=round(seconds))
    if args.out_dir:
        out = Path(args.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "minilm_head.json").write_text(json.dumps(result, indent=1))
        (out / "minilm_head.md").write_text(table + "\n")
    return result


if __name__ == "__main__":
    main()
