"""A small decoder that learns subject-verb agreement on the synthetic language, trained in seconds on a CPU.

:func:`train_agreement_decoder` trains a 2-layer GPT-2-shaped model (pre-LayerNorm, learned positions,
gelu_new) on next-word prediction over :func:`tl_neuronprobe.synthetic.generate` sentences, in plain torch with
TransformerLens weight names, then builds it with :func:`tl_neuronprobe.testing.build_model` as a
``HookedTransformer`` or a ``TransformerBridge`` (both compute the same function). Half the training sentences
put an attractor noun between subject and verb ("the keys to the cabinet are"), so the model must carry the
subject's number past it. ``model.agreement`` reports held-out agreement accuracy overall and per attractor
condition.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..data import synthetic
from ..data.corpus import Corpus

#: specials of :func:`tl_neuronprobe.testing.word_tokenizer`, in id order
_SPECIALS = ("<pad>", "<bos>", "<unk>")


@dataclass
class AgreementReport:
    """Held-out agreement accuracy of a trained decoder (a verb counts when its two forms differ)."""

    accuracy: float
    by_attractor: dict[str, float] = field(default_factory=dict)
    n_verbs: int = 0
    train_seconds: float = 0.0
    steps: int = 0
    final_loss: float = float("nan")

    def __str__(self) -> str:
        parts = ", ".join(f"{k} {v:.3f}" for k, v in sorted(self.by_attractor.items()))
        return (f"agreement accuracy {self.accuracy:.3f} on {self.n_verbs} held-out verbs ({parts}); "
                f"{self.steps} steps in {self.train_seconds:.1f} s, final loss {self.final_loss:.3f}")


def _gelu_new(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def _layer_norm(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, (x.shape[-1],), w, b, eps=1e-5)


def _init_weights(V: int, n_ctx: int, d_model: int, n_heads: int, d_mlp: int, n_layers: int,
                  gen: torch.Generator) -> dict[str, torch.Tensor]:
    dh = d_model // n_heads

    def normal(*shape, std=0.02):
        return torch.randn(*shape, generator=gen) * std

    w = {"embed.W_E": normal(V, d_model), "pos_embed.W_pos": normal(n_ctx, d_model, std=0.01),
         "ln_final.w": torch.ones(d_model), "ln_final.b": torch.zeros(d_model), "unembed.W_U": normal(d_model, V)}
    for layer in range(n_layers):
        p = f"blocks.{layer}."
        w.update({
            p + "ln1.w": torch.ones(d_model), p + "ln1.b": torch.zeros(d_model),
            p + "ln2.w": torch.ones(d_model), p + "ln2.b": torch.zeros(d_model),
            p + "attn.W_Q": normal(n_heads, d_model, dh), p + "attn.W_K": normal(n_heads, d_model, dh),
            p + "attn.W_V": normal(n_heads, d_model, dh), p + "attn.W_O": normal(n_heads, dh, d_model),
            p + "attn.b_Q": torch.zeros(n_heads, dh), p + "attn.b_K": torch.zeros(n_heads, dh),
            p + "attn.b_V": torch.zeros(n_heads, dh), p + "attn.b_O": torch.zeros(d_model),
            p + "mlp.W_in": normal(d_model, d_mlp), p + "mlp.b_in": torch.zeros(d_mlp),
            p + "mlp.W_out": normal(d_mlp, d_model), p + "mlp.b_out": torch.zeros(d_model),
        })
    return w


def gpt2_forward(w: dict[str, torch.Tensor], tokens: torch.Tensor, n_layers: int) -> torch.Tensor:
    """Logits of the GPT-2-shaped model with TransformerLens-named weights ``w`` (causal, no padding mask)."""
    b, p = tokens.shape
    x = w["embed.W_E"][tokens] + w["pos_embed.W_pos"][:p]
    causal = torch.ones(p, p, dtype=torch.bool, device=tokens.device).tril()
    for layer in range(n_layers):
        g = lambda name: w[f"blocks.{layer}.{name}"]  # noqa: E731
        h = _layer_norm(x, g("ln1.w"), g("ln1.b"))
        q = torch.einsum("bpd,hde->bhpe", h, g("attn.W_Q")) + g("attn.b_Q")[None, :, None]
        k = torch.einsum("bpd,hde->bhpe", h, g("attn.W_K")) + g("attn.b_K")[None, :, None]
        v = torch.einsum("bpd,hde->bhpe", h, g("attn.W_V")) + g("attn.b_V")[None, :, None]
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
        att = scores.masked_fill(~causal, float("-inf")).softmax(-1)
        z = att @ v  # [b, h, p, e]
        x = x + torch.einsum("bhpe,hed->bpd", z, g("attn.W_O")) + g("attn.b_O")
        h = _layer_norm(x, g("ln2.w"), g("ln2.b"))
        x = x + _gelu_new(h @ g("mlp.W_in") + g("mlp.b_in")) @ g("mlp.W_out") + g("mlp.b_out")
    return _layer_norm(x, w["ln_final.w"], w["ln_final.b"]) @ w["unembed.W_U"]


def _encode(corpus: Corpus, vocab: dict[str, int], bos: int, pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """BOS + word ids, right-padded; and a loss weight per target position (0 on padding)."""
    length = 1 + max(len(s) for s in corpus)
    ids = torch.full((len(corpus), length), pad, dtype=torch.long)
    weight = torch.zeros(len(corpus), length - 1)
    for i, s in enumerate(corpus):
        ids[i, 0] = bos
        ids[i, 1:len(s) + 1] = torch.as_tensor([vocab[wd] for wd in s.words])
        weight[i, : len(s)] = 1.0
        agree = s.attributes.get("Agreement", [None] * len(s))
        for j, a in enumerate(agree):
            if a is not None:  # the verb: predicting it is the agreement decision
                weight[i, j] = 3.0
    return ids, weight


def _verb_pairs(corpus: Corpus) -> list[tuple[int, int, int, str, str]]:
    """(sentence, verb word index, its class, form of the right number, form of the wrong number, attractor)."""
    out = []
    for i, s in enumerate(corpus):
        agree = s.attributes.get("Agreement", [None] * len(s))
        tense = s.attributes.get("Tense", [None] * len(s))
        person = s.attributes.get("Person", [None] * len(s))
        attractor = s.attributes.get("Attractor", [None] * len(s))
        lemma = s.attributes["lemma"]
        for j, a in enumerate(agree):
            if a is None or person[j] not in ("3", None):
                continue
            if lemma[j] == "be":
                forms = {n: synthetic.BE[n][1 if tense[j] == "Past" else 0] for n in ("Sing", "Plur")}
            elif tense[j] == "Past":
                continue  # one past form for both numbers
            else:
                forms = synthetic.verb_forms(lemma[j])
            other = "Plur" if a == "Sing" else "Sing"
            out.append((i, j, forms[a], forms[other], attractor[j] or "none"))
    return out


def agreement_accuracy(logits_fn, corpus: Corpus, vocab: dict[str, int]) -> tuple[float, dict[str, float], int]:
    """Share of verbs whose right form outscores the wrong one at the position before the verb.

    ``logits_fn(ids [b, p]) -> logits [b, p, V]`` runs the model on BOS-prefixed, right-padded word ids.
    """
    pairs = _verb_pairs(corpus)
    if not pairs:
        raise ValueError("the corpus has no present-tense third-person verbs to test agreement on")
    ids, _ = _encode(corpus, vocab, vocab["<bos>"], vocab["<pad>"])
    with torch.inference_mode():
        logits = logits_fn(ids)
    rows = torch.as_tensor([p[0] for p in pairs])
    pos = torch.as_tensor([p[1] for p in pairs])  # BOS shifts words by one: position j predicts word j
    right = torch.as_tensor([vocab[p[2]] for p in pairs])
    wrong = torch.as_tensor([vocab[p[3]] for p in pairs])
    sel = logits[rows, pos]
    ok = (sel.gather(1, right[:, None]) > sel.gather(1, wrong[:, None]))[:, 0].numpy()
    conds = np.asarray([p[4] for p in pairs])
    by = {c: float(ok[conds == c].mean()) for c in np.unique(conds)}
    return float(ok.mean()), by, len(pairs)


def train_agreement_weights(seed: int = 0, steps: int = 200, n_sentences: int = 3000, d_model: int = 64,
                            n_heads: int = 4, d_mlp: int = 128, n_layers: int = 2, n_ctx: int = 24,
                            lr: float = 3e-3, batch_size: int = 64, attractor_p: float = 0.6,
                            progress: bool = False):
    """Train the decoder's weights; returns ``(weights, words, report)`` (words: the tokenizer's vocabulary).

    Deterministic for a seed (trained on one CPU thread, whatever the caller's setting); results are cached per
    argument set, so building the same decoder for both TransformerLens generations trains once.
    """
    key = (seed, steps, n_sentences, d_model, n_heads, d_mlp, n_layers, n_ctx, lr, batch_size, attractor_p)
    if key not in _CACHE:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # tiny matrices: one thread is fastest, and immune to busy neighbours
        try:
            _CACHE[key] = _train(*key, progress=progress)
        finally:
            torch.set_num_threads(threads)
    weights, words, report = _CACHE[key]
    return {k: v.clone() for k, v in weights.items()}, list(words), report


_CACHE: dict[tuple, tuple] = {}


def _train(seed, steps, n_sentences, d_model, n_heads, d_mlp, n_layers, n_ctx, lr, batch_size, attractor_p,
           progress=False):
    t0 = time.perf_counter()
    words = list(_SPECIALS) + synthetic.vocabulary()
    vocab = {w: i for i, w in enumerate(words)}
    gen = torch.Generator().manual_seed(seed)
    weights = _init_weights(len(words), n_ctx, d_model, n_heads, d_mlp, n_layers, gen)
    params = {k: v.clone().requires_grad_(True) for k, v in weights.items() if k != "unembed.b_U"}
    train = synthetic.generate(n_sentences, seed=10_000 + seed, attractor_p=attractor_p)
    ids, wts = _encode(train, vocab, vocab["<bos>"], vocab["<pad>"])
    if ids.shape[1] > n_ctx:
        raise ValueError(f"training sentences need {ids.shape[1]} positions but n_ctx={n_ctx}")
    opt = torch.optim.AdamW(params.values(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    loss_val = float("nan")
    order = torch.randperm(len(ids), generator=gen)
    cursor = 0
    for step in range(steps):
        if cursor + batch_size > len(ids):
            order, cursor = torch.randperm(len(ids), generator=gen), 0
        idx = order[cursor:cursor + batch_size]
        cursor += batch_size
        x, wt = ids[idx], wts[idx]
        logits = gpt2_forward(params, x[:, :-1], n_layers)
        nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), reduction="none")
        loss = (nll * wt.reshape(-1)).sum() / wt.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params.values(), 1.0)
        opt.step()
        sched.step()
        loss_val = float(loss.detach()) if step == steps - 1 or (progress and step % 100 == 0) else loss_val
        if progress and step % 100 == 0:
            print(f"step {step:4d} loss {loss_val:.3f}")
    trained = {k: v.detach().clone() for k, v in params.items()}
    trained["unembed.b_U"] = torch.zeros(len(words))
    held_out = synthetic.generate(600, seed=20_000 + seed, attractor_p=0.5)
    acc, by, n = agreement_accuracy(lambda t: gpt2_forward(trained, t, n_layers), held_out, vocab)
    report = AgreementReport(acc, by, n, time.perf_counter() - t0, steps, loss_val)
    return trained, words, report


def train_agreement_decoder(seed: int = 0, steps: int = 200, generation: str = "auto", progress: bool = False,
                            **kwargs):
    """Train the small agreement decoder and return it as a TransformerLens model.

    ``model.agreement`` is an :class:`AgreementReport` measured through the built model (held-out sentences,
    half with attractors). Keyword arguments go to :func:`train_agreement_weights`.
    """
    from .planted import build_model, word_tokenizer

    n_heads = kwargs.get("n_heads", 4)
    weights, words, report = train_agreement_weights(seed=seed, steps=steps, progress=progress, **kwargs)
    model = build_model(weights, word_tokenizer(words), n_heads=n_heads, generation=generation)
    vocab = {w: i for i, w in enumerate(words)}
    held_out = synthetic.generate(600, seed=20_000 + seed, attractor_p=0.5)

    def run(ids: torch.Tensor) -> torch.Tensor:
        return model(ids, return_type="logits")

    acc, by, n = agreement_accuracy(run, held_out, vocab)
    model.agreement = AgreementReport(acc, by, n, report.train_seconds, report.steps, report.final_loss)
    return model
