"""Train MiniLM-L6's masked-LM head (the body frozen) on the *tune* part of UD English EWT train.

``all-MiniLM-L6-v2`` ships without the BERT MLM head, so ``BertForMaskedLM`` comes up with a random one. This
script fits that head: dense 384x384, GELU, LayerNorm, a decoder tied to MiniLM's (frozen) input embeddings and
an output bias, the shape of BERT's ``cls.predictions``. Only the head's own weights are trained and shipped
(``tl_neuronprobe/data/minilm_head/head.safetensors``, float32, about 0.7 MB); ``tnp.models.load("minilm")``
attaches them.

Data: the tune part of ``en_ewt-ud-train.conllu`` (``split_by_document(...)["tune"]``: the three quarters of the
documents that the shipped held-out slice does not hold), words joined by single spaces as the package tokenizes
them. Objective, as BERT's: in each of ``--copies`` masked copies of the tune sentences, 15% of the non-special
tokens are chosen (80% replaced by [MASK], 10% by a random token, 10% kept) and predicted; the tokens not chosen
are predicted as themselves (the identity objective the identity readout relies on), an equal number of them
sampled per copy. The body runs once per copy (final hidden states precomputed); the head then trains on them
with Adam, seeded. A tenth of the tune documents (by the SHA-1 of their id) is kept aside as a dev part and
reported. About 5 minutes on 2 CPU cores.

    python scripts/train_minilm_head.py [--treebank /work/shared/data/en_ewt-ud-train.conllu] [--steps 600]

``scripts/measure_minilm_head.py`` measures the shipped head on the held-out slice (docs/foundation.md).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tl_neuronprobe" / "data" / "minilm_head" / "head.safetensors"
TREEBANK = "/work/shared/data/en_ewt-ud-train.conllu"
MASK_RATE = 0.15
MAX_TOKENS = 256  # longer sentences are truncated for training (a handful of the tune part)


# --------------------------------------------------------------------------------------------- data
def token_ids(tokenizer, sentences, max_tokens: int = MAX_TOKENS) -> list[np.ndarray]:
    """Token ids (with [CLS] / [SEP]) of each sentence, words joined by single spaces as the package does."""
    enc = tokenizer([" ".join(words) for words in sentences], truncation=True, max_length=max_tokens)
    return [np.asarray(ids, dtype=np.int64) for ids in enc["input_ids"]]


def mask_tokens(ids: list[np.ndarray], rng: np.random.Generator, mask_id: int, vocab_size: int,
                rate: float = MASK_RATE, bert_mix: bool = True):
    """BERT's masking of one copy: per sentence (inputs, chosen positions). Of the chosen non-special tokens
    (each with probability ``rate``), 80% become [MASK], 10% a uniformly random token and 10% stay
    (``bert_mix=False``: all become [MASK], as in the evaluation)."""
    inputs, chosen = [], []
    for x in ids:
        sel = np.zeros(len(x), dtype=bool)
        sel[1:-1] = rng.random(len(x) - 2) < rate
        y = x.copy()
        if bert_mix:
            r = rng.random(len(x))
            y[sel & (r < 0.8)] = mask_id
            rand = sel & (r >= 0.8) & (r < 0.9)
            y[rand] = rng.integers(0, vocab_size, int(rand.sum()))
        else:
            y[sel] = mask_id
        inputs.append(y)
        chosen.append(sel)
    return inputs, chosen


@torch.inference_mode()
def final_hidden(body, inputs: list[np.ndarray], positions: list[np.ndarray], max_batch_tokens: int = 4096):
    """The body's final hidden states at ``positions[s]`` (bool per token) of each input: [n, d] float32, in
    sentence order; batches of similar length, right-padded."""
    order = np.argsort([len(x) for x in inputs], kind="stable")
    out: list[torch.Tensor | None] = [None] * len(inputs)
    i = 0
    while i < len(order):
        j = i
        while j < len(order) and (j - i + 1) * len(inputs[order[j]]) <= max_batch_tokens:
            j += 1
        j = max(j, i + 1)
        idx = order[i:j]
        width = max(len(inputs[s]) for s in idx)
        ids = torch.zeros(len(idx), width, dtype=torch.long)
        att = torch.zeros(len(idx), width, dtype=torch.long)
        for r, s in enumerate(idx):
            ids[r, : len(inputs[s])] = torch.as_tensor(inputs[s])
            att[r, : len(inputs[s])] = 1
        h = body(input_ids=ids, attention_mask=att).last_hidden_state
        for r, s in enumerate(idx):
            out[s] = h[r, : len(inputs[s])][torch.as_tensor(positions[s])].float()
        i = j
    return torch.cat(out) if out else torch.zeros(0)


# --------------------------------------------------------------------------------------------- head
class MLMHead(torch.nn.Module):
    """BERT's ``cls.predictions``: dense, GELU, LayerNorm, then the tied (frozen) decoder plus an output bias."""

    def __init__(self, embeddings: torch.Tensor, eps: float = 1e-12):
        super().__init__()
        d = embeddings.shape[1]
        self.register_buffer("embeddings", embeddings.detach().clone())
        self.dense = torch.nn.Linear(d, d)
        self.norm = torch.nn.LayerNorm(d, eps=eps)
        self.bias = torch.nn.Parameter(torch.zeros(embeddings.shape[0]))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.norm(torch.nn.functional.gelu(self.dense(h))) @ self.embeddings.T + self.bias

    def state(self) -> dict[str, torch.Tensor]:
        """The head's weights under Hugging Face's ``BertForMaskedLM`` names (the decoder is the tied embedding)."""
        return {"cls.predictions.transform.dense.weight": self.dense.weight.detach().float().contiguous(),
                "cls.predictions.transform.dense.bias": self.dense.bias.detach().float().contiguous(),
                "cls.predictions.transform.LayerNorm.weight": self.norm.weight.detach().float().contiguous(),
                "cls.predictions.transform.LayerNorm.bias": self.norm.bias.detach().float().contiguous(),
                "cls.predictions.bias": self.bias.detach().float().contiguous()}


def is_dev(sentence_id: str) -> bool:
    """A tenth of the tune documents, by the SHA-1 of the document id (never the held-out slice's documents)."""
    from tl_neuronprobe.data.treebank import document_of

    doc = document_of(sentence_id)
    return int(hashlib.sha1(f"dev:{doc}".encode()).hexdigest()[:8], 16) / 16 ** 8 < 0.1


def training_examples(body, tokenizer, sentences, copies: int, seed: int, progress: bool = True):
    """(masked hidden, masked targets, identity hidden, identity targets) over ``copies`` masked copies."""
    ids = token_ids(tokenizer, sentences)
    rng = np.random.default_rng(seed)
    hm, ym, hi, yi = [], [], [], []
    for c in range(copies):
        t0 = time.perf_counter()
        inputs, chosen = mask_tokens(ids, rng, tokenizer.mask_token_id, len(tokenizer))
        # as many unchosen (identity) positions as chosen ones, drawn uniformly among the non-special tokens
        n_chosen = sum(int(s.sum()) for s in chosen)
        n_other = sum(len(x) - 2 - int(s.sum()) for x, s in zip(ids, chosen))
        keep = min(1.0, n_chosen / max(n_other, 1))
        other = []
        for x, s in zip(ids, chosen):
            o = ~s
            o[0] = o[-1] = False
            other.append(o & (rng.random(len(x)) < keep))
        both = [s | o for s, o in zip(chosen, other)]
        h = final_hidden(body, inputs, both)
        is_chosen = torch.as_tensor(np.concatenate([s[b] for s, b in zip(chosen, both)]))
        target = torch.as_tensor(np.concatenate([x[b] for x, b in zip(ids, both)]))
        hm.append(h[is_chosen].half())
        ym.append(target[is_chosen])
        hi.append(h[~is_chosen].half())
        yi.append(target[~is_chosen])
        if progress:
            print(f"copy {c}: {int(is_chosen.sum())} masked + {int((~is_chosen).sum())} identity positions, "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
    return torch.cat(hm), torch.cat(ym), torch.cat(hi), torch.cat(yi)


def unigram_log_prior(ids: list[np.ndarray], vocab_size: int) -> torch.Tensor:
    """Log of add-one-smoothed token frequencies (specials left out): the output bias's starting point."""
    counts = np.bincount(np.concatenate([x[1:-1] for x in ids]), minlength=vocab_size).astype(np.float64)
    p = (counts + 1.0) / (counts.sum() + vocab_size)
    return torch.as_tensor(np.log(p) - np.log(p).mean(), dtype=torch.float32)


@torch.no_grad()
def accuracy(head: MLMHead, h: torch.Tensor, y: torch.Tensor, batch: int = 2048) -> tuple[float, float, float]:
    """(cross-entropy, top-1, top-5) of ``head`` on hidden states ``h`` with targets ``y``."""
    loss = top1 = top5 = 0.0
    for i in range(0, len(h), batch):
        logits = head(h[i:i + batch].float())
        t = y[i:i + batch]
        loss += float(torch.nn.functional.cross_entropy(logits, t, reduction="sum"))
        best = logits.topk(5, dim=-1).indices
        top1 += float((best[:, 0] == t).sum())
        top5 += float((best == t[:, None]).any(-1).sum())
    n = max(len(h), 1)
    return loss / n, top1 / n, top5 / n


def train(head: MLMHead, masked, identity, steps: int, batch: int, lr: float, seed: int,
          identity_weight: float, progress: bool = True) -> list[dict]:
    """Adam with a linear warm-up (5%) and a cosine decay; each step one batch of masked and one of identity
    examples (``batch`` each), loss = masked CE + ``identity_weight`` x identity CE. Returns the log."""
    gen = torch.Generator().manual_seed(seed)
    params = [p for n, p in head.named_parameters()]
    opt = torch.optim.Adam(params, lr=lr)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, steps - warm))))
    (hm, ym), (hi, yi) = masked, identity
    log = []
    t0 = time.perf_counter()
    for step in range(steps):
        a = torch.randint(0, len(hm), (batch,), generator=gen)
        b = torch.randint(0, len(hi), (batch,), generator=gen)
        lm = torch.nn.functional.cross_entropy(head(hm[a].float()), ym[a])
        li = torch.nn.functional.cross_entropy(head(hi[b].float()), yi[b])
        loss = lm + identity_weight * li
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if progress and (step % 50 == 0 or step == steps - 1):
            lm, li = float(lm.detach()), float(li.detach())
            log.append(dict(step=step, masked_loss=round(lm, 4), identity_loss=round(li, 4)))
            print(f"step {step}: masked CE {lm:.3f}, identity CE {li:.3f}, "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
    return log


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--treebank", default=TREEBANK, help="UD English EWT train (.conllu); only its tune part is read")
    ap.add_argument("--out", default=str(OUT), help="where the head's safetensors go")
    ap.add_argument("--copies", type=int, default=3, help="masked copies of the tune sentences")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=512, help="masked and identity examples per step (each)")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--identity-weight", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", default=None, help="a .pt file keeping the precomputed hidden states between runs "
                                                  "(made if missing; same --copies and --seed only)")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    from safetensors.torch import save_file
    from transformers import AutoTokenizer, BertModel

    from tl_neuronprobe.data.corpus import Corpus
    from tl_neuronprobe.data.treebank import split_by_document
    from tl_neuronprobe.models import minilm_path

    t_start = time.perf_counter()
    tune = split_by_document(Corpus.from_conllu(args.treebank))["tune"]
    dev_mask = np.asarray([is_dev(s.id) for s in tune.sentences])
    fit = [s.words for s, d in zip(tune.sentences, dev_mask) if not d]
    dev = [s.words for s, d in zip(tune.sentences, dev_mask) if d]
    print(f"tune part: {len(tune)} sentences ({len(fit)} fit, {len(dev)} dev)", flush=True)

    path = minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(path, use_fast=True)
    body = BertModel.from_pretrained(path, add_pooling_layer=False).eval()
    key = dict(copies=args.copies, seed=args.seed, treebank=str(args.treebank))
    if args.cache and Path(args.cache).exists() and torch.load(args.cache)["key"] == key:
        examples = torch.load(args.cache)["examples"]
    else:
        examples = (training_examples(body, tokenizer, fit, args.copies, args.seed)
                    + training_examples(body, tokenizer, dev, 1, args.seed + 1, progress=False))
        if args.cache:
            torch.save(dict(key=key, examples=examples), args.cache)
    hm, ym, hi, yi, dev_m, dev_ym, dev_i, dev_yi = examples

    head = MLMHead(body.embeddings.word_embeddings.weight, eps=body.config.layer_norm_eps)
    with torch.no_grad():
        head.bias.copy_(unigram_log_prior(token_ids(tokenizer, fit), len(tokenizer)))
    log = train(head, (hm, ym), (hi, yi), args.steps, args.batch, args.lr, args.seed, args.identity_weight)
    head.eval()
    dev_masked = accuracy(head, dev_m, dev_ym)
    dev_identity = accuracy(head, dev_i, dev_yi)
    print(f"dev part: masked CE {dev_masked[0]:.3f} top-1 {dev_masked[1]:.3f} top-5 {dev_masked[2]:.3f}; "
          f"identity top-1 {dev_identity[1]:.3f}", flush=True)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = dict(command="python scripts/train_minilm_head.py " + " ".join(argv or []), seed=str(args.seed),
                steps=str(args.steps), batch=str(args.batch), lr=str(args.lr), copies=str(args.copies),
                identity_weight=str(args.identity_weight), data="en_ewt-ud-train.conllu, tune part minus dev")
    save_file(head.state(), str(out), metadata=meta)
    summary = dict(**{k: v for k, v in vars(args).items()}, n_fit=len(fit), n_dev=len(dev),
                   masked_examples=len(hm), identity_examples=len(hi),
                   dev_masked=dict(ce=dev_masked[0], top1=dev_masked[1], top5=dev_masked[2]),
                   dev_identity=dict(ce=dev_identity[0], top1=dev_identity[1], top5=dev_identity[2]),
                   seconds=round(time.perf_counter() - t_start), bytes=out.stat().st_size, log=log)
    print(json.dumps({k: v for k, v in summary.items() if k != "log"}, indent=1))
    return summary


if __name__ == "__main__":
    main()
