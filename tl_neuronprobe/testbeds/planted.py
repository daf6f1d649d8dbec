"""Models with known ground truth, for tests and for checking a method before trusting it on a real model.

- :func:`word_tokenizer`: a word-level fast tokenizer over a word list, saved and reloaded with
  ``from_pretrained`` (TransformerBridge needs that).
- :func:`tiny_model`: a random GPT-2- or BERT-shaped model from a config, as a ``HookedTransformer``
  (TransformerLens 2.x/3.x) or a ``TransformerBridge`` (3.x/4.x), whichever is asked or available.
- :func:`build_model`: any GPT-2-shaped model from hand-written weights in TransformerLens naming
  (``embed.W_E``, ``blocks.0.mlp.W_in``, ...), for either generation, with identical outputs.
- :func:`planted_model`: a hand-built model over the synthetic vocabulary in which chosen MLP neurons of the
  last layer encode ``Number`` and ``upos``. The *used* Number neurons write the direction that the unembedding
  reads to choose between the singular and plural form of the input word (the model "predicts the word
  itself", like an MLM without [MASK]); the *unused* ones encode Number just as well but have zero output
  weights; the *cancelled* one (layer 0) writes Number into the very direction the unembedding reads, and a
  *canceller* in layer 1 writes it back out, so it has non-zero output weights and no net effect.
  ``model.planted`` says which neurons are which.

  The planted Number neurons are *quiet* (class means about 1.2 apart, spread below the median noise neuron's)
  and eight *decoys* in the last layer are *loud* (mean about 14, spread about 2, zero output weights) but
  carry no Number, so an ordering by maximum, variance or mean |activation| finds the decoys, not the planted
  neurons (``model.planted.decoys``). ``quiet=False`` gives the earlier model (loud planted neurons, no decoys).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from einops import rearrange

from ..data import synthetic
from ..data.corpus import Corpus
from ..core.neurons import Neuron

SPECIALS = ("<pad>", "<bos>", "<unk>")
GENERATIONS = ("hooked", "bridge")


def available_generations() -> list[str]:
    """TransformerLens generations importable here: ``hooked`` (HookedTransformer) and/or ``bridge``."""
    from ..core.adapter import transformer_lens_classes

    return [g for g in GENERATIONS if g in transformer_lens_classes()]


def _resolve_generation(generation: str) -> str:
    avail = available_generations()
    if generation == "auto":
        return "hooked" if "hooked" in avail else "bridge"
    if generation not in avail:
        raise ValueError(f"TransformerLens generation {generation!r} is not available here (have {avail})")
    return generation


def word_tokenizer(words: Sequence[str], path: "str | Path | None" = None):
    """A word-level fast tokenizer (specials ``<pad>``, ``<bos>``, ``<unk>``), saved to ``path`` and reloaded."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(list(SPECIALS) + [w for w in dict.fromkeys(words) if w not in SPECIALS])}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<bos>", eos_token="<bos>", pad_token="<pad>",
                                   unk_token="<unk>")
    path = Path(path) if path is not None else Path(tempfile.mkdtemp(prefix="tnp-tokenizer-"))
    fast.save_pretrained(path)
    return AutoTokenizer.from_pretrained(path)


def _config(n_layers, d_model, n_heads, d_mlp, n_ctx, d_vocab) -> dict:
    return dict(n_layers=n_layers, d_model=d_model, n_heads=n_heads, d_head=d_model // n_heads, d_mlp=d_mlp,
                n_ctx=n_ctx, d_vocab=d_vocab)


def _boot_bridge(hf_model, tokenizer, folder: Path):
    from transformer_lens.model_bridge import TransformerBridge

    hf_model.config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    hf_model.eval()
    return TransformerBridge.boot_transformers(str(folder), hf_model=hf_model, tokenizer=tokenizer,
                                               device=str(next(hf_model.parameters()).device))


def tiny_model(generation: str = "auto", architecture: str = "gpt2", n_layers: int = 2, d_model: int = 32,
               n_heads: int = 4, d_mlp: int = 64, n_ctx: int = 64, vocab: Sequence[str] | None = None,
               seed: int = 0):
    """A random model from a config (no download) with a word-level tokenizer over ``vocab``.

    ``architecture='bert'`` gives an encoder (TransformerBridge only); ``'gpt2'`` a decoder.
    """
    generation = _resolve_generation(generation)
    vocab = list(vocab) if vocab is not None else synthetic.vocabulary()
    folder = Path(tempfile.mkdtemp(prefix="tnp-tiny-"))
    tok = word_tokenizer(vocab, folder)
    torch.manual_seed(seed)
    if architecture == "bert":
        if generation != "bridge":
            raise ValueError("encoder (bert) tiny models need TransformerBridge (TransformerLens >= 3)")
        from transformers import BertConfig, BertForMaskedLM

        cfg = BertConfig(vocab_size=len(tok), hidden_size=d_model, num_hidden_layers=n_layers,
                         num_attention_heads=n_heads, intermediate_size=d_mlp, max_position_embeddings=n_ctx,
                         pad_token_id=tok.pad_token_id)
        return _boot_bridge(BertForMaskedLM(cfg), tok, folder)
    if architecture != "gpt2":
        raise ValueError(f"architecture must be 'gpt2' or 'bert', got {architecture!r}")
    cfg = _config(n_layers, d_model, n_heads, d_mlp, n_ctx, len(tok))
    if generation == "hooked":
        from transformer_lens import HookedTransformer, HookedTransformerConfig

        model = HookedTransformer(HookedTransformerConfig(**cfg, act_fn="gelu_new", normalization_type="LN",
                                                          seed=seed), tokenizer=tok)
        model.eval()
        return model
    from transformers import GPT2Config, GPT2LMHeadModel

    hf = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=n_ctx, n_embd=d_model, n_layer=n_layers,
                                    n_head=n_heads, n_inner=d_mlp, activation_function="gelu_new",
                                    bos_token_id=tok.bos_token_id, eos_token_id=tok.bos_token_id,
                                    tie_word_embeddings=False, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0))
    return _boot_bridge(hf, tok, folder)


def build_model(weights: dict[str, torch.Tensor], tokenizer, n_heads: int, generation: str = "auto"):
    """A GPT-2-shaped model (pre-LN, learned positions, gelu_new) from weights in TransformerLens naming.

    Keys: ``embed.W_E`` [V, D], ``pos_embed.W_pos`` [n_ctx, D], per block ``ln1.w/b``, ``attn.W_Q/W_K/W_V``
    [H, D, dh], ``attn.b_Q/b_K/b_V`` [H, dh], ``attn.W_O`` [H, dh, D], ``attn.b_O``, ``ln2.w/b``, ``mlp.W_in``
    [D, M], ``mlp.b_in``, ``mlp.W_out`` [M, D], ``mlp.b_out``; ``ln_final.w/b``, ``unembed.W_U`` [D, V],
    ``unembed.b_U``. Both generations compute the same function.
    """
    generation = _resolve_generation(generation)
    W_E, W_pos = weights["embed.W_E"], weights["pos_embed.W_pos"]
    d_vocab, d_model = W_E.shape
    n_layers = 1 + max(int(k.split(".")[1]) for k in weights if k.startswith("blocks."))
    d_mlp = weights["blocks.0.mlp.W_in"].shape[1]
    cfg = _config(n_layers, d_model, n_heads, d_mlp, W_pos.shape[0], d_vocab)
    if generation == "hooked":
        from transformer_lens import HookedTransformer, HookedTransformerConfig

        model = HookedTransformer(HookedTransformerConfig(**cfg, act_fn="gelu_new", normalization_type="LN"),
                                  tokenizer=tokenizer)
        state = model.state_dict()
        missing = [k for k in weights if k not in state]
        if missing:
            raise KeyError(f"unknown weight names {missing}")
        state.update({k: v.to(state[k].dtype) for k, v in weights.items()})
        model.load_state_dict(state)
        model.eval()
        return model
    from transformers import GPT2Config, GPT2LMHeadModel

    hf = GPT2LMHeadModel(GPT2Config(vocab_size=d_vocab, n_positions=W_pos.shape[0], n_embd=d_model,
                                    n_layer=n_layers, n_head=n_heads, n_inner=d_mlp, activation_function="gelu_new",
                                    bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.bos_token_id,
                                    tie_word_embeddings=False, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0))
    sd = {"transformer.wte.weight": W_E, "transformer.wpe.weight": W_pos,
          "transformer.ln_f.weight": weights["ln_final.w"], "transformer.ln_f.bias": weights["ln_final.b"],
          "lm_head.weight": weights["unembed.W_U"].T}
    for layer in range(n_layers):
        w = {k.split(".", 2)[2]: v for k, v in weights.items() if k.startswith(f"blocks.{layer}.")}
        p = f"transformer.h.{layer}."
        qkv_w = [rearrange(w[f"attn.W_{x}"], "h d e -> d (h e)") for x in "QKV"]
        qkv_b = [rearrange(w[f"attn.b_{x}"], "h e -> (h e)") for x in "QKV"]
        sd.update({
            p + "ln_1.weight": w["ln1.w"], p + "ln_1.bias": w["ln1.b"],
            p + "attn.c_attn.weight": torch.cat(qkv_w, dim=1), p + "attn.c_attn.bias": torch.cat(qkv_b),
            p + "attn.c_proj.weight": rearrange(w["attn.W_O"], "h e d -> (h e) d"), p + "attn.c_proj.bias": w["attn.b_O"],
            p + "ln_2.weight": w["ln2.w"], p + "ln_2.bias": w["ln2.b"],
            p + "mlp.c_fc.weight": w["mlp.W_in"], p + "mlp.c_fc.bias": w["mlp.b_in"],
            p + "mlp.c_proj.weight": w["mlp.W_out"], p + "mlp.c_proj.bias": w["mlp.b_out"],
        })
    missing, unexpected = hf.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not k.endswith((".attn.bias", ".attn.masked_bias"))]
    if missing or unexpected:
        raise KeyError(f"weight conversion left missing={missing} unexpected={unexpected}")
    if "unembed.b_U" in weights and bool(weights["unembed.b_U"].abs().sum() > 0):
        raise ValueError("the bridge path (GPT-2) has no unembedding bias; keep unembed.b_U at zero")
    return _boot_bridge(hf, tokenizer, Path(tempfile.mkdtemp(prefix="tnp-built-")))


# ------------------------------------------------------------------------------------ planted model
@dataclass
class Planted(dict):
    """``planted[attribute]``: every neuron planted to encode it; ``used`` / ``unused`` split them by whether
    the model's output reads them; ``trigger`` maps a neuron to the token that alone drives it."""

    used: dict[str, list[Neuron]] = field(default_factory=dict)
    unused: dict[str, list[Neuron]] = field(default_factory=dict)
    trigger: dict[Neuron, str] = field(default_factory=dict)
    #: encoded, written (non-zero output weights) and cancelled downstream: no net effect on the output
    cancelled: dict[str, list[Neuron]] = field(default_factory=dict)
    #: the later-layer neurons that undo what ``cancelled`` writes (they read it, so they encode it too)
    canceller: dict[str, list[Neuron]] = field(default_factory=dict)
    #: loud neurons (large mean and spread) that carry none of the planted attributes; not in ``self[attr]``
    decoys: list[Neuron] = field(default_factory=list)

    def __post_init__(self) -> None:
        for attr in set(self.used) | set(self.unused) | set(self.cancelled) | set(self.canceller):
            self[attr] = (self.used.get(attr, []) + self.unused.get(attr, []) + self.cancelled.get(attr, [])
                          + self.canceller.get(attr, []))

    def __hash__(self) -> int:  # dataclass(eq) on a dict subclass
        return id(self)


def _number_sign(word: str) -> int:
    """+1 for singular forms, -1 for plural (and non-3sg present) forms, 0 for words without Number."""
    for sg, pl in synthetic.NOUNS.values():
        if word in (sg, pl):
            return 1 if word == sg else -1
    for third, other, _ in synthetic.VERBS.values():
        if word in (third, other):
            return 1 if word == third else -1
    if word in ("is", "was"):
        return 1
    if word in ("are", "were"):
        return -1
    if word in synthetic.PRONOUNS:
        return 1 if synthetic.PRONOUNS[word][1] == "Sing" else -1
    n = synthetic.DETERMINERS.get(word)
    return {"Sing": 1, "Plur": -1}.get(n, 0)


def _lexicon() -> dict[str, tuple[str, str]]:
    """word -> (lemma, upos) for the synthetic vocabulary."""
    lex: dict[str, tuple[str, str]] = {}
    for lemma, forms in synthetic.NOUNS.items():
        lex.update({f: (lemma, "NOUN") for f in forms})
    for lemma, forms in synthetic.VERBS.items():
        lex.update({f: (lemma, "VERB") for f in forms})
    lex.update({f: ("be", "AUX") for pair in synthetic.BE.values() for f in pair})
    lex.update({w: (w, "PRON") for w in synthetic.PRONOUNS})
    lex.update({w: (w, "ADJ") for w in synthetic.ADJECTIVES})
    lex.update({w: (w, "ADP") for w in synthetic.PREPOSITIONS})
    lex.update({w: (w, "ADV") for w in synthetic.ADVERBS})
    lex.update({w: (w, "DET") for w in synthetic.DETERMINERS})
    lex["."] = (".", "PUNCT")
    return lex


#: neuron indices (last layer) of the default planted model
PLANTED_USED_NUMBER = (5, 23)
PLANTED_UNUSED_NUMBER = (11, 40)
PLANTED_UPOS = {"NOUN": 30, "VERB": 50}
PLANTED_TRIGGER = {57: "cabinet"}
#: the Number neuron whose write is cancelled (last layer but one) and the one cancelling it (last layer)
PLANTED_CANCELLED_NUMBER = 13
PLANTED_CANCELLER_NUMBER = 61
#: loud decoys (last layer): a large bias where gelu_new is linear, a read of upos and noun/verb lemmas only
PLANTED_DECOYS = (2, 9, 17, 26, 35, 44, 53, 60)
#: how strongly the planted Number neurons read the Number direction: ``quiet`` (preactivations about +-1.2,
#: so gelu_new gives about 1.1 and -0.14) or loud (the earlier model: about +-15 in the last layer)
_READ = {True: 0.25, False: 3.0}
#: the canceller's bias: gelu_new is the identity in float32 above 5.004, so the canceller is linear
_LINEAR_BIAS = {True: 8.0, False: 20.0}
_DECOY_BIAS, _DECOY_GAIN = 14.0, 2.0


def _gelu_new(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


def _layer_norm(x: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    x = x - x.mean(-1, keepdims=True)
    return x / np.sqrt((x ** 2).mean(-1, keepdims=True) + eps)


def _plant_cancelled(weights: dict, W_E: np.ndarray, plural_rows: np.ndarray, dir_num, dir_out,
                     n_layers: int, quiet: bool = True) -> tuple[Neuron, Neuron]:
    """A layer-0 neuron that reads plural Number and writes it into the form direction ``dir_out`` (which the
    unembedding reads), and a layer-1 neuron that reads ``dir_out`` and writes its negative.

    The canceller sits at a bias where gelu_new is exactly linear, so it writes ``-g * LN(r) . dir_out``; ``g``
    is set from the residual norm of the plural words (attention writes nothing, positions are zero), so the
    write is undone up to the spread of that norm: non-zero weights, no net effect. The write is kept small
    because LayerNorm rescales every later input by the residual norm, which a large write would change.
    """
    (lw, jw), (lc, jc) = (n_layers - 2, PLANTED_CANCELLED_NUMBER), (n_layers - 1, PLANTED_CANCELLER_NUMBER)
    w, c = f"blocks.{lw}.", f"blocks.{lc}."
    # fires on plural forms, (nearly) silent on singular ones; pushes the plural form by about 0.2 units of
    # dir_out (1% of the used write) either way: quiet, preactivation +-1.2 and a larger output weight
    weights[w + "mlp.W_in"][:, jw] = -(_READ[True] if quiet else 1.5) * dir_num
    weights[w + "mlp.W_out"][jw] = -(0.2 if quiet else 0.03) * dir_out
    resid = W_E[plural_rows]
    for layer in range(lc):  # the residual stream the canceller reads (attention writes nothing)
        b = f"blocks.{layer}.mlp."
        hidden = _gelu_new(_layer_norm(resid) @ weights[b + "W_in"] + weights[b + "b_in"])
        resid = resid + hidden @ weights[b + "W_out"] + weights[b + "b_out"]
    gain = float(np.linalg.norm(resid, axis=1).mean()) / np.sqrt(W_E.shape[1])
    # a strong read, a weak write: the canceller's Number signal stands out among layer-1 neurons (quiet: class
    # means about 1 apart, with a read term of at most about 1.1 the preactivation stays above 6.9, still linear)
    read, bias = (2.0 if quiet else 10.0), _LINEAR_BIAS[quiet]
    weights[c + "mlp.W_in"][:, jc] = -read * dir_out
    weights[c + "mlp.b_in"][jc] = bias
    weights[c + "mlp.W_out"][jc] = gain / read * dir_out
    weights[c + "mlp.b_out"] = weights[c + "mlp.b_out"] - bias * gain / read * dir_out
    return Neuron(lw, jw), Neuron(lc, jc)


def _plant_last_layer(layer: int, W_in, W_out, b_in, W_E, words, dir_num, dir_out, dir_upos, quiet: bool = True
                      ) -> tuple[list[Neuron], dict[Neuron, str]]:
    """Write the used and unused Number neurons, the upos neurons and the trigger into the last layer's MLP.

    The used neurons write about 22 units of ``dir_out`` more on their class than on the other, loud or quiet
    (quiet: activations about 1.09 and -0.14, so an output weight of 18)."""
    upos_neurons, trigger = [], {}
    d_model = W_E.shape[1]
    read, write = _READ[quiet], (18.0 if quiet else 1.5)
    for j, sign in zip(PLANTED_USED_NUMBER, (1, -1)):
        W_in[:, j] = read * sign * dir_num
        W_out[j] = write * sign * dir_out
    for j, sign in zip(PLANTED_UNUSED_NUMBER, (1, -1)):
        W_in[:, j] = read * sign * dir_num
        W_out[j] = 0.0
    for tag, j in PLANTED_UPOS.items():
        W_in[:, j] = 3.0 * dir_upos[tag]
        W_out[j] = 0.0
        upos_neurons.append(Neuron(layer, j))
    for j, w in PLANTED_TRIGGER.items():  # fires on one token only: its embedding direction, biased
        e = W_E[words.index(w)]  # LayerNorm maps e to sqrt(D) e / |e|: the preactivation is 40 (cos - 0.9)
        W_in[:, j] = 40.0 * e / np.linalg.norm(e) / np.sqrt(d_model)
        b_in[j] = -36.0
        W_out[j] = 0.0
        trigger[Neuron(layer, j)] = w
    return upos_neurons, trigger


def _plant_decoys(layer: int, W_in, W_out, b_in, dir_upos: dict, free: np.ndarray, number_lemmas: list,
                  rng: np.random.Generator) -> list[Neuron]:
    """Loud neurons without Number: each reads a random mix of the upos directions and of a lemma direction
    orthogonal to every lemma that carries Number by itself (pronouns, determiners), so it gives a word's two
    forms (cat/cats, runs/run, is/are) the same input up to their small form noise; a bias of 14 keeps gelu_new
    linear (activations about 14 +- 2) and the output weights are zero (the model's outputs do not change)."""
    avoid, _ = np.linalg.qr(np.stack(number_lemmas, 1))  # [D, k] orthonormal
    upos = np.stack([dir_upos[u] for u in sorted(dir_upos)])
    out = []
    for j in PLANTED_DECOYS:
        lemma_dir = rng.standard_normal(len(free)) @ free
        lemma_dir = lemma_dir - avoid @ (avoid.T @ lemma_dir)
        upos_dir = rng.standard_normal(len(upos)) @ upos
        read = lemma_dir / np.linalg.norm(lemma_dir) + upos_dir / np.linalg.norm(upos_dir)
        W_in[:, j] = _DECOY_GAIN * read / np.linalg.norm(read)
        b_in[j] = _DECOY_BIAS
        W_out[j] = 0.0
        out.append(Neuron(layer, j))
    return out


def planted_weights(seed: int = 0, n_layers: int = 2, d_model: int = 64, d_mlp: int = 64, n_heads: int = 2,
                    n_ctx: int = 32, noise: float = 0.05, quiet: bool = True):
    """Weights (TransformerLens naming), tokenizer words and :class:`Planted` of the default planted model.

    Every planted neuron sits in the last layer's MLP; attention writes nothing (W_O = 0) and positions are
    zero, so a word's activations depend on the word alone. Directions in the residual stream are orthonormal
    and orthogonal to the all-ones vector, so LayerNorm only rescales them. ``quiet`` (default): quiet planted
    Number neurons and loud decoys, so that label-free orderings miss the planted neurons; ``quiet=False``: the
    earlier model (loud planted neurons, no decoys). Both predict the same words (same argmax on all 695 tokens
    of 100 synthetic sentences, corpus seed 5).
    """
    rng = np.random.default_rng(seed)
    words = list(SPECIALS) + synthetic.vocabulary()
    lex = _lexicon()
    upos_tags = sorted({u for _, u in lex.values()})
    lemmas = sorted({lemma for lemma, _ in lex.values()})
    # orthonormal basis orthogonal to the ones vector
    raw = rng.standard_normal((d_model, d_model))
    raw[:, 0] = 1.0
    q, _ = np.linalg.qr(raw)
    basis = q[:, 1:].T  # rows: directions, each orthogonal to ones
    dir_num, dir_out = basis[0], basis[1]
    dir_upos = {u: basis[2 + i] for i, u in enumerate(upos_tags)}
    free = basis[2 + len(upos_tags):]  # the lemma subspace
    lemma_vec = {lemma: (rng.standard_normal(len(free)) @ free) for lemma in lemmas}
    lemma_vec = {k: 2.0 * v / np.linalg.norm(v) for k, v in lemma_vec.items()}

    V = len(words)
    W_E = np.zeros((V, d_model))
    W_U = np.zeros((d_model, V))
    for i, w in enumerate(words):
        if w in SPECIALS:
            W_E[i] = 0.5 * (rng.standard_normal(len(free)) @ free)
            continue
        lemma, upos = lex[w]
        s = _number_sign(w)
        form = rng.standard_normal(len(free)) @ free
        form /= np.linalg.norm(form)
        W_E[i] = 2.0 * s * dir_num + 1.5 * dir_upos[upos] + lemma_vec[lemma] + (noise + 0.6) * form
        # the lemma picks the word; Number (from the used neurons) picks the form; forms without Number by identity
        W_U[:, i] = 1.5 * lemma_vec[lemma] + 3.0 * s * dir_out + (2.0 * form if s == 0 else 0.0)

    weights: dict[str, np.ndarray] = {"embed.W_E": W_E, "pos_embed.W_pos": np.zeros((n_ctx, d_model)),
                                      "ln_final.w": np.ones(d_model), "ln_final.b": np.zeros(d_model),
                                      "unembed.W_U": W_U, "unembed.b_U": np.zeros(V)}
    d_head = d_model // n_heads
    used, unused, decoys = {}, {}, []
    for layer in range(n_layers):
        p = f"blocks.{layer}."
        W_in = (0.3 * rng.standard_normal((d_mlp, len(free))) @ free).T  # [D, M], lemma subspace only
        W_out = 0.003 * rng.standard_normal((d_mlp, len(free))) @ free  # [M, D], lemma subspace only
        b_in = np.zeros(d_mlp)
        if layer == n_layers - 1:
            upos_neurons, trigger = _plant_last_layer(layer, W_in, W_out, b_in, W_E, words, dir_num, dir_out,
                                                      dir_upos, quiet=quiet)
            if quiet and d_mlp > max(PLANTED_DECOYS):  # own generator: every other weight stays as it was
                number_lemmas = [lemma_vec[lex[w][0]] for w in words if w in lex and lex[w][1] in ("PRON", "DET")
                                 and _number_sign(w) != 0]
                decoys = _plant_decoys(layer, W_in, W_out, b_in, dir_upos, free, number_lemmas,
                                       np.random.default_rng([seed, 1]))
            used["Number"] = [Neuron(layer, j) for j in PLANTED_USED_NUMBER]
            unused["Number"] = [Neuron(layer, j) for j in PLANTED_UNUSED_NUMBER]
        weights.update({
            p + "ln1.w": np.ones(d_model), p + "ln1.b": np.zeros(d_model),
            p + "attn.W_Q": 0.1 * rng.standard_normal((n_heads, d_model, d_head)),
            p + "attn.W_K": 0.1 * rng.standard_normal((n_heads, d_model, d_head)),
            p + "attn.W_V": 0.1 * rng.standard_normal((n_heads, d_model, d_head)),
            p + "attn.b_Q": np.zeros((n_heads, d_head)), p + "attn.b_K": np.zeros((n_heads, d_head)),
            p + "attn.b_V": np.zeros((n_heads, d_head)),
            p + "attn.W_O": np.zeros((n_heads, d_head, d_model)), p + "attn.b_O": np.zeros(d_model),
            p + "ln2.w": np.ones(d_model), p + "ln2.b": np.zeros(d_model),
            p + "mlp.W_in": W_in, p + "mlp.b_in": b_in, p + "mlp.W_out": W_out, p + "mlp.b_out": np.zeros(d_model),
        })
    cancelled, canceller = {}, {}
    if n_layers >= 2 and d_mlp > max(PLANTED_CANCELLED_NUMBER, PLANTED_CANCELLER_NUMBER):
        plural = np.asarray([i for i, w in enumerate(words) if w not in SPECIALS and _number_sign(w) < 0])
        writer, undo = _plant_cancelled(weights, W_E, plural, dir_num, dir_out, n_layers, quiet=quiet)
        cancelled, canceller = {"Number": [writer]}, {"Number": [undo]}
    planted = Planted(used=used, unused={**unused, "upos": upos_neurons}, trigger=trigger, cancelled=cancelled,
                      canceller=canceller, decoys=decoys)
    tensors = {k: torch.tensor(v, dtype=torch.float32) for k, v in weights.items()}
    return tensors, words, planted


def planted_model(generation: str = "auto", seed: int = 0, **kwargs):
    """The planted testbed model (see the module docstring); ``model.planted`` lists the planted neurons."""
    weights, words, planted = planted_weights(seed=seed, **kwargs)
    tok = word_tokenizer(words)
    model = build_model(weights, tok, n_heads=kwargs.get("n_heads", 2), generation=generation)
    model.planted = planted
    return model


def loud_planted_model(generation: str = "auto", seed: int = 0, **kwargs):
    """The earlier planted model, ``planted_model(quiet=False)``: loud planted neurons, no decoys (the CLI's
    ``--model planted-loud``). describe() names its Number neurons by Number; on the quiet default it names
    L1.N5 by its top word (``lemma=this``, IoU 1 at a threshold just under that word's activation)."""
    return planted_model(generation=generation, seed=seed, quiet=False, **kwargs)


def planted_corpus(n_sentences: int = 400, seed: int = 0) -> Corpus:
    """Synthetic sentences over the planted model's vocabulary."""
    return synthetic.generate(n_sentences=n_sentences, seed=seed)
