"""Textualization: the inputs that drive a neuron, found by optimization, batched over many neurons.

``textualize(model, neurons, method=...)`` answers "what text makes this neuron fire?" for any TransformerLens
model (``HookedTransformer`` or ``TransformerBridge``, decoder or encoder):

- ``gumbel``: free logits over the vocabulary per position, relaxed with Gumbel-softmax into mixtures of token
  embeddings, temperature annealed, Adam; read out as the argmax n-gram (Poerner et al. 2018).
- ``dense``: free continuous input embeddings with a penalty that keeps them near the token-embedding manifold,
  snapped to their nearest tokens by cosine similarity (Baeumel et al. 2023); ``similarity`` reports how far
  from real tokens the optimum lies.
- ``discrete``: gradient-guided token swaps scored exactly by batched forward passes (GCG), a population per
  neuron with optional fluency weights (the model's own next-token cross-entropy; decoders only) and restarts
  (evolutionary prompt optimization, Thompson et al. 2024).
- ``corpus``: the baseline, the top-activating distinct token windows of a corpus, streamed.

Every method optimizes many neurons at once (one row per neuron and restart), stops the forward pass after
the deepest neuron's layer unless fluency needs the logits, keeps its best-so-far on the device (no host
synchronization inside the step loop) and scores candidates under ``torch.no_grad()`` in large batches. The
reported activation is always that of the discrete tokens, re-scored in the model's own precision, with its
ratio to the corpus maximum of the same neuron over windows of the same length, framed the same way.

Framing: the optimized tokens are wrapped exactly as the model's tokenizer wraps text (``[CLS] ... [SEP]``
for BERT-like encoders, BOS for decoders that expect it); soft inputs replace the output of the hook whose
output is the token embeddings alone, so positional and token-type embeddings and the embedding LayerNorm
are applied by the model itself.
"""

from __future__ import annotations

import contextlib
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence, Union

import numpy as np
import torch
from einops import einsum, rearrange, repeat
from tqdm.auto import tqdm

from ..core.adapter import ModelAdapter
from ..data.corpus import Corpus
from ..core.neurons import Neuron, parse_neurons

METHODS = ("gumbel", "dense", "discrete", "corpus")
#: per-method defaults: optimization steps (iterations for ``discrete``), restarts per neuron, learning rate
DEFAULTS: dict[str, dict[str, Any]] = {
    "gumbel": dict(steps=300, restarts=2, lr=1.0),
    "dense": dict(steps=300, restarts=2, lr=0.2),
    "discrete": dict(steps=60, restarts=4, lr=None),
    "corpus": dict(steps=0, restarts=1, lr=None),
}
COLUMNS = ["neuron", "method", "text", "tokens", "activation", "corpus_max", "ratio", "steps", "seconds",
           "fluency", "similarity", "corpus_text"]
_ENCODER_ARCHITECTURES = re.compile(r"bert|roberta|electra|albert|deberta|maskedlm|xlm", re.IGNORECASE)
_UNUSED_TOKEN = re.compile(r"^(\[unused\d+\]|<unused\d+>|<extra_id_\d+>)$")
_AMP = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}

#: allowed tokens: ids, token strings (or single-token words), a predicate on the token string, a boolean mask
VocabSpec = Union[Sequence[int], Sequence[str], Callable[[str], bool], torch.Tensor, None]


class TextualizeError(ValueError):
    """The model, neurons or options cannot be textualized; the message names the problem."""


# ------------------------------------------------------------------------------------------- results
@dataclass
class NeuronText:
    """The input found for one neuron by one method.

    ``activation`` is the neuron's activation on the discrete ``token_ids`` (framed like real text, in the
    model's precision); ``ratio`` divides it by ``corpus_max`` (the best corpus window of the same length).
    ``fluency`` is the model's mean self cross-entropy of the tokens (decoders; NaN for encoders);
    ``similarity`` (``dense``) is the mean cosine similarity between the optimized vectors and their tokens.
    """

    neuron: Neuron
    method: str
    tokens: list[str]
    token_ids: list[int]
    text: str
    activation: float
    corpus_max: float = math.nan
    corpus_text: str = ""
    steps: int = 0
    seconds: float = math.nan
    fluency: float = math.nan
    similarity: float = math.nan
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """``activation / corpus_max``; NaN when the corpus maximum is not positive (no meaningful scale)."""
        if math.isnan(self.corpus_max) or self.corpus_max <= 0:
            return math.nan
        return self.activation / self.corpus_max

    @property
    def beats_corpus(self) -> bool:
        return not math.isnan(self.corpus_max) and self.activation >= self.corpus_max

    def row(self) -> dict[str, Any]:
        return dict(neuron=str(self.neuron), method=self.method, text=self.text, tokens=tuple(self.tokens),
                    activation=self.activation, corpus_max=self.corpus_max, ratio=self.ratio, steps=self.steps,
                    seconds=self.seconds, fluency=self.fluency, similarity=self.similarity,
                    corpus_text=self.corpus_text)


class TextualizeResult:
    """Results of one :func:`textualize` call: one :class:`NeuronText` per neuron, in the order asked."""

    def __init__(self, results: Sequence[NeuronText], config: dict[str, Any] | None = None):
        self.results = list(results)
        self.config = dict(config or {})

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self) -> Iterator[NeuronText]:
        return iter(self.results)

    def __getitem__(self, key: "int | str | Neuron") -> NeuronText:
        if isinstance(key, int):
            return self.results[key]
        neuron = Neuron.parse(key)
        for r in self.results:
            if r.neuron == neuron:
                return r
        raise KeyError(f"neuron {neuron} is not in this result ({', '.join(str(r.neuron) for r in self.results)})")

    @property
    def table(self) -> "pandas.DataFrame":  # noqa: F821
        """One row per neuron: neuron, method, text, tokens, activation, corpus_max, ratio, steps, seconds,
        fluency, similarity, corpus_text."""
        import pandas as pd

        return pd.DataFrame([r.row() for r in self.results], columns=COLUMNS)

    def to_frame(self) -> "pandas.DataFrame":  # noqa: F821
        return self.table

    @property
    def win_rate(self) -> float:
        """Share of neurons whose discrete result reaches their corpus maximum (NaN without a corpus)."""
        scored = [r for r in self.results if not math.isnan(r.corpus_max)]
        return sum(r.beats_corpus for r in scored) / len(scored) if scored else math.nan

    @property
    def seconds(self) -> float:
        return float(sum(r.seconds for r in self.results))

    def __repr__(self) -> str:
        method = self.config.get("method", "?")
        return f"TextualizeResult({method}, {len(self)} neurons, win rate {self.win_rate:.2f})"


# ------------------------------------------------------------------------------------- the problem
def is_encoder(adapter: ModelAdapter) -> bool:
    """Bidirectional model? (TransformerLens 3.x bridges report BERT as causal, so the architecture counts.)"""
    arch = " ".join(str(getattr(adapter.cfg, k, "") or "") for k in ("architecture", "original_architecture"))
    return bool(adapter.is_encoder or _ENCODER_ARCHITECTURES.search(arch))


def framing(adapter: ModelAdapter) -> tuple[list[int], list[int]]:
    """Token ids the tokenizer puts before and after a text (``[CLS]``/``[SEP]``, BOS), as corpus text gets."""
    tok = adapter.tokenizer
    if tok is None:
        raise TextualizeError(f"{adapter.name} has no tokenizer: textualize needs one to frame and read out text")
    probe = "the"
    plain = list(tok(probe, add_special_tokens=False)["input_ids"])
    full = list(tok(probe, add_special_tokens=True)["input_ids"])
    start = next((i for i in range(len(full) - len(plain) + 1) if full[i:i + len(plain)] == plain), None)
    if start is None or not plain:
        raise TextualizeError(f"cannot locate the text inside the tokenizer's special-token framing {full}")
    prefix, suffix = full[:start], full[start + len(plain):]
    bos = tok.bos_token_id
    if not is_encoder(adapter) and adapter.prepend_bos and bos is not None and (not prefix or prefix[0] != bos):
        prefix = [int(bos)] + prefix
    return [int(i) for i in prefix], [int(i) for i in suffix]


def token_names(adapter: ModelAdapter) -> list[str]:
    """The tokenizer's name for every embedding row (``''`` for rows past the tokenizer's vocabulary)."""
    tok = adapter.tokenizer
    n = min(adapter.d_vocab, len(tok)) if tok is not None else 0
    names = [str(t) for t in tok.convert_ids_to_tokens(list(range(n)))] if n else []
    return names + [""] * (adapter.d_vocab - n)


def resolve_vocab(adapter: ModelAdapter, vocab: VocabSpec = None) -> torch.Tensor:
    """Allowed token ids (sorted, CPU) from ``vocab``: None (every real, non-special token), token ids, token
    strings or single-token words, a predicate on the token string, or a boolean mask over the vocabulary."""
    V = adapter.d_vocab
    names = token_names(adapter)
    tok = adapter.tokenizer
    special = set(int(i) for i in (getattr(tok, "all_special_ids", None) or []))
    if vocab is None:
        ids = [i for i, name in enumerate(names) if i not in special and name and not _UNUSED_TOKEN.match(name)]
        what = "the default vocabulary (non-special tokens)"
    elif callable(vocab):
        ids = [i for i, name in enumerate(names) if name and vocab(name)]
        what = "the vocabulary predicate"
    elif isinstance(vocab, torch.Tensor) and vocab.dtype == torch.bool:
        if vocab.shape != (V,):
            raise TextualizeError(f"a boolean vocabulary mask must have shape ({V},), got {tuple(vocab.shape)}")
        ids = torch.nonzero(vocab.cpu()).flatten().tolist()
        what = "the vocabulary mask"
    else:
        items = vocab.tolist() if isinstance(vocab, torch.Tensor) else list(vocab)
        ids, unknown = [], []
        for item in items:
            if isinstance(item, (int, np.integer)):
                if not 0 <= int(item) < V:
                    raise TextualizeError(f"token id {item} is outside the vocabulary 0..{V - 1}")
                ids.append(int(item))
                continue
            tid = _single_token(tok, str(item))
            (unknown if tid is None else ids).append(str(item) if tid is None else tid)
        if unknown:
            raise TextualizeError(f"not single tokens of {adapter.name}'s tokenizer: {unknown[:10]}"
                                  + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""))
        what = f"the vocabulary list of {len(items)} entries"
    ids = sorted(set(ids))
    if not ids:
        raise TextualizeError(f"{what} leaves no token to optimize over")
    return torch.as_tensor(ids, dtype=torch.long)


def _single_token(tok, text: str) -> int | None:
    if tok is None:
        return None
    tid = tok.convert_tokens_to_ids(text)
    unk = tok.unk_token_id
    if tid is not None and (tid != unk or text == tok.unk_token):
        return int(tid)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    return int(ids[0]) if len(ids) == 1 and ids[0] != unk else None


def _surrogate(adapter: ModelAdapter, neuron: Neuron, surrogate: bool | None) -> Neuron:
    """The neuron optimized in place of ``neuron``: its pre-activation for ``mlp.post`` neurons of non-gated
    MLPs with a monotone-where-positive activation (ReLU, GELU, SiLU), when ``surrogate`` is True or None."""
    if surrogate is False or neuron.site != "mlp.post":
        return neuron
    pre = Neuron(neuron.layer, neuron.index, "mlp.pre")
    act_fn = str(getattr(adapter.cfg, "act_fn", "") or "")
    ok = (not getattr(adapter.cfg, "gated_mlp", False) and pre.hook_name in adapter.model.hook_dict
          and re.fullmatch(r"(gelu\w*|relu|silu|swish)", act_fn) is not None)
    if surrogate and not ok:
        raise TextualizeError(f"neuron {neuron}: no monotone pre-activation to optimize instead (act_fn "
                              f"{act_fn!r}, gated={getattr(adapter.cfg, 'gated_mlp', False)}); use surrogate=False")
    return pre if ok else neuron


def _check_token_embedding_hook(adapter: ModelAdapter) -> str:
    try:
        name = adapter.token_embedding_hook
        adapter.W_E
    except (ValueError, AttributeError) as exc:
        raise TextualizeError(
            f"{adapter.name} has no token embeddings reachable by hooks ({exc}); the gumbel, dense and discrete "
            "methods feed soft inputs through that hook (method='corpus' still works)") from exc
    return name


@dataclass
class Rows:
    """Which neuron each row (sequence) of a batch is scored on: ``index[i]`` indexes ``Problem.neurons``;
    ``neuron_ids`` lists the distinct ones on the host, so passes know their hooks and depth without asking
    the device."""

    index: torch.Tensor
    neuron_ids: list[int]

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def repeat(self, times: int) -> "Rows":
        """Each row ``times`` times, consecutively."""
        return Rows(self.index.repeat_interleave(times), self.neuron_ids)

    def __getitem__(self, item: slice) -> "Rows":
        return Rows(self.index[item], self.neuron_ids)


class Problem:
    """Everything shared by the methods: neurons, framing, reading position, allowed tokens, embeddings, and
    batched forward passes that read each row's own neuron.

    Rows are sequences, each scored on its own neuron (:class:`Rows`).
    """

    def __init__(self, adapter: ModelAdapter, neurons: Sequence[Neuron], length: int, position: int | None,
                 vocab: VocabSpec = None, amp_dtype: torch.dtype | None = None, soft: bool = True,
                 surrogate: bool | None = False):
        if not isinstance(length, (int, np.integer)) or length < 1:
            raise TextualizeError(f"length must be a positive number of tokens, got {length!r}")
        if not neurons:
            raise TextualizeError("no neurons given")
        self.adapter = adapter
        self.neurons = list(neurons)
        self.n = int(length)
        self.encoder = is_encoder(adapter)
        self.prefix, self.suffix = framing(adapter)
        self.lo = len(self.prefix)
        total = self.lo + self.n + len(self.suffix)
        if total > adapter.n_ctx:
            raise TextualizeError(f"length {self.n} plus {total - self.n} special tokens exceeds the context of "
                                  f"{adapter.n_ctx} tokens of {adapter.name}")
        if position is None:
            position = self.n // 2 if self.encoder else self.n - 1
        if not isinstance(position, (int, np.integer)) or not -self.n <= position < self.n:
            raise TextualizeError(f"position {position!r} is outside the {self.n} optimized tokens "
                                  f"(use 0..{self.n - 1} or negative indices)")
        self.pos = int(position) % self.n
        self.seq_pos = self.lo + self.pos
        self.device = adapter.device
        self.amp_dtype = amp_dtype
        self.objective_neurons = [_surrogate(adapter, n, surrogate) for n in self.neurons]
        self._tables = {True: self._table(self.neurons), False: self._table(self.objective_neurons)}
        self.hooks = self._tables[True][0]
        self.allowed = resolve_vocab(adapter, vocab).to(self.device)
        self.names = token_names(adapter)
        self.emb_hook = _check_token_embedding_hook(adapter) if soft else None
        if soft:
            self.E = adapter.W_E.detach()[self.allowed]  # [V', D]
        self.template = torch.as_tensor(self.prefix + [int(self.allowed[0])] * self.n + self.suffix,
                                        device=self.device)

    def _table(self, neurons: Sequence[Neuron]) -> tuple[list[str], torch.Tensor, torch.Tensor]:
        hooks = sorted({n.hook_name for n in neurons})
        hook_of = torch.as_tensor([hooks.index(n.hook_name) for n in neurons], device=self.device)
        return hooks, hook_of, torch.as_tensor([n.index for n in neurons], device=self.device)

    # --------------------------------------------------------------------------------- forward passes
    @property
    def n_allowed(self) -> int:
        return int(self.allowed.numel())

    def ids(self, tokens: torch.Tensor) -> torch.Tensor:
        """Frame optimized token ids [B, n] (vocabulary ids) into model inputs [B, T]."""
        B = tokens.shape[0]
        pre = repeat(self.template[: self.lo], "t -> b t", b=B)
        post = repeat(self.template[self.lo + self.n:], "t -> b t", b=B)
        return torch.cat([pre, tokens, post], dim=1)

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _read_hooks(self, rows: Rows, hooks: Sequence[str], col_of: torch.Tensor, store: dict[str, torch.Tensor]):
        def make(name: str):
            def grab(act: torch.Tensor, hook=None) -> None:  # noqa: ARG001
                flat = rearrange(act[:, self.seq_pos], "b ... -> b (...)")
                col = col_of[rows.index].clamp(max=flat.shape[1] - 1)
                store[name] = flat.gather(1, col[:, None])[:, 0].float()
            return grab
        return [(h, make(h)) for h in hooks]

    def forward(self, rows: Rows, tokens: torch.Tensor | None = None, embeds: torch.Tensor | None = None,
                logits: bool = False, target: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Activation of each row's neuron at the reading position, and logits if asked.

        Exactly one of ``tokens`` [B, n] (vocabulary ids) and ``embeds`` [B, n, D] (soft inputs fed through
        the token-embedding hook) is given. Without ``logits`` the pass stops after the deepest layer needed.
        ``target`` reads the neurons asked for; otherwise their optimization objective (the pre-activation of
        an ``mlp.post`` neuron when the surrogate is on: same maximizers where the neuron fires, and a gradient
        where the activation function is flat).
        """
        neurons = self.neurons if target else self.objective_neurons
        all_hooks, hook_of, col_of = self._tables[target]
        hooks = sorted({neurons[i].hook_name for i in rows.neuron_ids})
        stop = max(neurons[i].layer for i in rows.neuron_ids)
        store: dict[str, torch.Tensor] = {}
        fwd = self._read_hooks(rows, hooks, col_of, store)
        if embeds is not None:
            ids = repeat(self.template, "t -> b t", b=embeds.shape[0])
            lo, hi = self.lo, self.lo + self.n

            def put(act: torch.Tensor, hook=None) -> torch.Tensor:  # noqa: ARG001
                return torch.cat([act[:, :lo], embeds.to(act.dtype), act[:, hi:]], dim=1)
            fwd = [(self.emb_hook, put)] + fwd
        else:
            ids = self.ids(tokens)
        out = self.adapter.forward(ids, fwd, stop_at_layer=None if logits else stop + 1,
                                   return_type="logits" if logits else None)
        missing = [h for h in hooks if h not in store]
        if missing:
            raise TextualizeError(f"hook(s) {missing} never ran in a forward pass of {self.adapter.name}: "
                                  f"textualize cannot reach neurons at these sites")
        self.last_store = store
        act = store[hooks[0]]
        for h in hooks[1:]:
            act = torch.where(hook_of[rows.index] == all_hooks.index(h), store[h], act)
        return act, out

    def rows(self, neuron_ids: Sequence[int], repeats: int = 1) -> Rows:
        """Rows scoring ``neuron_ids``, each repeated ``repeats`` times consecutively (neuron-major)."""
        ids = [int(i) for i in neuron_ids]
        index = torch.as_tensor(ids, dtype=torch.long, device=self.device).repeat_interleave(repeats)
        return Rows(index, sorted(set(ids)))

    def all_neuron_forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Activations [B, N] of every neuron on every row (for the corpus scan)."""
        store: dict[str, torch.Tensor] = {}
        cols = {h: torch.as_tensor([n.index for n in self.neurons if n.hook_name == h], device=self.device)
                for h in self.hooks}

        def make(name: str):
            def grab(act: torch.Tensor, hook=None) -> None:  # noqa: ARG001
                store[name] = rearrange(act[:, self.seq_pos], "b ... -> b (...)")[:, cols[name]].float()
            return grab
        stop = max(n.layer for n in self.neurons)
        self.adapter.forward(self.ids(tokens), [(h, make(h)) for h in self.hooks], stop_at_layer=stop + 1)
        missing = [h for h in self.hooks if h not in store]
        if missing:
            raise TextualizeError(f"hook(s) {missing} never ran in a forward pass of {self.adapter.name}")
        out = torch.empty(tokens.shape[0], len(self.neurons), device=self.device)
        for h in self.hooks:
            idx = [i for i, n in enumerate(self.neurons) if n.hook_name == h]
            out[:, idx] = store[h]
        return out

    # ------------------------------------------------------------------------------------ scoring
    def self_ce(self, logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Mean next-token cross-entropy of the optimized tokens under the model itself [B] (NaN if no token
        has a left context)."""
        first = 0 if self.lo > 0 else 1
        if self.n - first <= 0:
            return torch.full((tokens.shape[0],), math.nan, device=tokens.device)
        pred = logits[:, self.lo - 1 + first: self.lo + self.n - 1].float()
        logp = torch.log_softmax(pred, dim=-1).gather(-1, tokens[:, first:, None])[..., 0]
        return -logp.mean(dim=-1)

    @torch.no_grad()
    def score(self, rows: Rows, tokens: torch.Tensor, weights: torch.Tensor | None = None,
              batch: int = 512, amp: bool = True, target: bool = False
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Exact scores of discrete candidates [B, n] in chunks: (objective, activation, self cross-entropy).

        ``weights`` [B] are fluency weights; the objective is ``activation - weight * cross-entropy`` (the
        cross-entropy needs the full forward pass and is NaN when no weight is given).
        """
        need_ce = weights is not None
        acts, ces = [], []
        for start in range(0, tokens.shape[0], batch):
            sub = rows[start:start + batch]
            with self.autocast() if amp else contextlib.nullcontext():
                act, logits = self.forward(sub, tokens=tokens[start:start + batch], logits=need_ce, target=target)
            acts.append(act)
            if need_ce:
                ces.append(self.self_ce(logits, tokens[start:start + batch]))
        act = torch.cat(acts)
        if not need_ce:
            return act, act, torch.full_like(act, math.nan)
        ce = torch.cat(ces)
        return act - weights * torch.nan_to_num(ce), act, ce

    def check_reachable(self, generator: torch.Generator) -> None:
        """One small pass: the token-embedding hook outputs ``W_E[ids]``, soft inputs reproduce token inputs,
        and every neuron's hook has a gradient path from the input embeddings; errors name the problem."""
        rows = self.rows(range(len(self.neurons)))
        tok_idx = torch.randint(self.n_allowed, (len(self.neurons), self.n), generator=generator,
                                device=self.device)
        tokens = self.allowed[tok_idx]
        captured: dict[str, torch.Tensor] = {}

        def grab(act: torch.Tensor, hook=None) -> None:  # noqa: ARG001
            captured["emb"] = act.detach()
        with torch.no_grad():
            ids = self.ids(tokens[:1])
            self.adapter.forward(ids, [(self.emb_hook, grab)], stop_at_layer=1)
            ref = self.adapter.W_E[ids]
            got = captured.get("emb")
            if got is None or got.shape != ref.shape or not torch.allclose(got.float(), ref.float(), atol=1e-4,
                                                                           rtol=1e-3):
                raise TextualizeError(
                    f"{self.adapter.name}: hook {self.emb_hook!r} does not output the token embeddings W_E[ids] "
                    "alone, so soft inputs cannot be fed there (method='corpus' still works)")
            hard, _ = self.forward(rows, tokens=tokens)
            self.forward(rows, tokens=tokens, target=True)
        embeds = self.E[tok_idx].clone().requires_grad_(True)
        soft, _ = self.forward(rows, embeds=embeds)
        cut = [h for h, v in self.last_store.items() if not v.requires_grad]
        if cut:
            names = [str(n) for n, o in zip(self.neurons, self.objective_neurons) if o.hook_name in cut]
            raise TextualizeError(f"neurons {names} cannot be reached: no gradient flows from the input "
                                  f"embeddings to hook(s) {cut} (is a hook detaching or replacing them?)")
        if not torch.allclose(soft.detach(), hard, atol=1e-3, rtol=1e-3):
            raise TextualizeError(f"{self.adapter.name}: feeding W_E rows through {self.emb_hook!r} does not "
                                  "reproduce the token inputs' activations; soft inputs are not faithful here")

    def decode(self, token_ids: Sequence[int]) -> tuple[list[str], str]:
        tok = self.adapter.tokenizer
        names = [self.names[i] for i in token_ids]
        return names, tok.decode(list(token_ids)).strip()


# ------------------------------------------------------------------------------------------ corpus
def _corpus_sentences(corpus) -> list[str]:
    if corpus is None:
        raise TextualizeError("no corpus given")
    if isinstance(corpus, str):
        corpus = Corpus.load(corpus)
    if isinstance(corpus, Corpus):
        return [" ".join(s.words) for s in corpus.sentences]
    out = []
    for s in corpus:
        out.append(s if isinstance(s, str) else " ".join(str(w) for w in s))
    if not out:
        raise TextualizeError("the corpus is empty")
    return out


def _windows(problem: Problem, sentences: Sequence[str]) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """Distinct token windows of length ``problem.n`` (no specials) and where each first occurs."""
    tok = problem.adapter.tokenizer
    enc = tok(list(sentences), add_special_tokens=False)["input_ids"]
    seen: dict[tuple[int, ...], tuple[int, int]] = {}
    n = problem.n
    for si, ids in enumerate(enc):
        for start in range(0, len(ids) - n + 1):
            seen.setdefault(tuple(ids[start:start + n]), (si, start))
    if not seen:
        raise TextualizeError(f"no corpus sentence has {n} tokens: use a shorter window or a longer corpus")
    return torch.as_tensor(list(seen), dtype=torch.long), list(seen.values())


def corpus_top_windows(model, corpus, neurons, window: int = 5, k: int = 5, position: int | None = None,
                       batch_size: int = 512, progress: bool = False) -> "pandas.DataFrame":  # noqa: F821
    """The ``k`` distinct corpus token windows of ``window`` tokens that drive each neuron most.

    Each window runs on its own, framed like :func:`textualize`'s inputs (BOS / ``[CLS] ... [SEP]``), and the
    neuron is read at ``position`` of the window (default: last token for decoders, the middle for encoders).
    Windows are streamed in batches with a running top-k per neuron. Returns a DataFrame with columns neuron,
    rank, activation, text, tokens, token_ids, sentence, start.
    """
    import pandas as pd

    adapter = ModelAdapter.wrap(model)
    neurons = adapter.check_neurons(_parse(neurons))
    problem = Problem(adapter, neurons, window, position, soft=False)
    top_vals, top_idx, windows, where = _scan(problem, _corpus_sentences(corpus), k, batch_size, progress)
    rows = []
    for j, neuron in enumerate(neurons):
        for rank in range(top_vals.shape[1]):
            w = int(top_idx[j, rank])
            ids = windows[w].tolist()
            names, text = problem.decode(ids)
            rows.append(dict(neuron=str(neuron), rank=rank, activation=float(top_vals[j, rank]), text=text,
                             tokens=tuple(names), token_ids=tuple(ids), sentence=where[w][0], start=where[w][1]))
    return pd.DataFrame(rows, columns=["neuron", "rank", "activation", "text", "tokens", "token_ids", "sentence",
                                       "start"])


def _scan(problem: Problem, sentences: Sequence[str], k: int, batch_size: int, progress: bool):
    windows, where = _windows(problem, sentences)
    k = max(1, min(int(k), len(windows)))
    N = len(problem.neurons)
    best_v = torch.full((N, 0), -math.inf, device=problem.device)
    best_i = torch.zeros((N, 0), dtype=torch.long, device=problem.device)
    dev_windows = windows.to(problem.device)
    with torch.no_grad(), _eval_mode(problem.adapter):
        for start in tqdm(range(0, len(windows), batch_size), disable=not progress, desc="corpus windows"):
            chunk = dev_windows[start:start + batch_size]
            acts = problem.all_neuron_forward(chunk).T  # [N, b]
            idx = torch.arange(start, start + chunk.shape[0], device=problem.device).expand(N, -1)
            vals = torch.cat([best_v, acts], dim=1)
            ids = torch.cat([best_i, idx], dim=1)
            top = vals.topk(min(k, vals.shape[1]), dim=1)  # ties: lowest index first is not guaranteed
            best_v, best_i = top.values, ids.gather(1, top.indices)
    return best_v.cpu(), best_i.cpu(), windows, where


# ------------------------------------------------------------------------------------------ helpers
@contextlib.contextmanager
def _eval_mode(adapter: ModelAdapter):
    model = adapter.model
    was = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was)


def _parse(neurons) -> list[Neuron]:
    if isinstance(neurons, (str, Neuron)):
        neurons = [neurons] if isinstance(neurons, Neuron) else parse_neurons(neurons)
    out = parse_neurons(list(neurons))
    if not out:
        raise TextualizeError("no neurons given")
    return out


def _amp_dtype(dtype, device: torch.device) -> torch.dtype | None:
    if dtype is None or dtype == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return None
    if isinstance(dtype, str):
        if dtype not in _AMP:
            raise TextualizeError(f"dtype must be one of {list(_AMP)} or 'auto', got {dtype!r}")
        return _AMP[dtype]
    if dtype == torch.float32:
        return None
    if dtype not in (torch.bfloat16, torch.float16):
        raise TextualizeError(f"dtype must be float32, bfloat16 or float16, got {dtype}")
    return dtype


def _generator(seed: int, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


def _fluency_weights(fluency, restarts: int, device) -> torch.Tensor:
    """Per-restart fluency weights: one value for all, or (low, high) log-spaced over the population."""
    if isinstance(fluency, (tuple, list)):
        lo, hi = float(fluency[0]), float(fluency[1])
        if lo <= 0 or hi < lo:
            raise TextualizeError(f"fluency range must be 0 < low <= high, got {fluency}")
        w = np.geomspace(lo, hi, restarts) if restarts > 1 else np.asarray([lo])
    else:
        if float(fluency) < 0:
            raise TextualizeError(f"fluency must be >= 0, got {fluency}")
        w = np.full(restarts, float(fluency))
    return torch.as_tensor(w, dtype=torch.float32, device=device)


def _best_per_neuron(values: torch.Tensor, n_neurons: int, restarts: int) -> torch.Tensor:
    """Row index of the best restart of each neuron (rows are neuron-major)."""
    per = rearrange(values, "(n r) -> n r", r=restarts)
    return per.argmax(dim=1) + torch.arange(n_neurons, device=values.device) * restarts


# ------------------------------------------------------------------------------------------ methods
@dataclass
class _Batch:
    """State of one optimization batch: best tokens (allowed-index space) and their activation per row."""

    tokens: torch.Tensor  # [R, n] indices into problem.allowed
    value: torch.Tensor  # [R] objective used to pick
    similarity: torch.Tensor | None = None  # [R]


def _update_best(best: _Batch, tokens: torch.Tensor, value: torch.Tensor, sim: torch.Tensor | None = None) -> None:
    """Keep, per row, the better of the stored and new candidates (on the device, no synchronization)."""
    better = value > best.value
    best.tokens = torch.where(better[:, None], tokens, best.tokens)
    best.value = torch.where(better, value, best.value)
    if sim is not None and best.similarity is not None:
        best.similarity = torch.where(better, sim, best.similarity)


def _pick_candidates(problem: Problem, rows: Rows, cands: torch.Tensor, eval_batch: int
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact activation of C candidates per row [R, C, n] (allowed-index space); the best candidate per row
    and its activation."""
    R, C, _ = cands.shape
    _, act, _ = problem.score(rows.repeat(C), problem.allowed[rearrange(cands, "r c n -> (r c) n")],
                              batch=eval_batch)
    act = rearrange(act, "(r c) -> r c", c=C)
    best, which = act.max(dim=1)
    return cands[torch.arange(R, device=cands.device), which], best


def _gumbel(problem: Problem, rows: Rows, steps: int, lr: float, gen: torch.Generator, bar,
            samples: int = 4, temperature: tuple[float, float] = (2.0, 0.1), eval_every: int = 10,
            eval_batch: int = 512, **_) -> _Batch:
    """Gumbel-softmax relaxation of free logits per position (Poerner et al. 2018)."""
    R, n, V = len(rows), problem.n, problem.n_allowed
    theta = (0.01 * torch.randn(R, n, V, generator=gen, device=problem.device)).requires_grad_(True)
    opt = torch.optim.Adam([theta], lr=lr)
    srows = rows.repeat(samples)
    E = problem.E
    best = _Batch(torch.zeros(R, n, dtype=torch.long, device=problem.device),
                  torch.full((R,), -math.inf, device=problem.device))
    t0, t1 = temperature
    decay = (t1 / t0) ** (1.0 / max(steps - 1, 1))
    for step in range(steps):
        tau = max(t0 * decay ** step, t1)
        u = torch.rand(R, samples, n, V, generator=gen, device=problem.device).clamp_(1e-9, 1 - 1e-9)
        noisy = theta[:, None] - torch.log(-torch.log(u))  # Gumbel noise
        mix = torch.softmax(noisy / tau, dim=-1)
        with problem.autocast():
            embeds = einsum(mix.to(E.dtype), E, "r s n v, v d -> r s n d")
            act, _ = problem.forward(srows, embeds=rearrange(embeds, "r s n d -> (r s) n d"))
        loss = -rearrange(act, "(r s) -> r s", s=samples).mean(dim=1).sum()  # rows independent
        (theta.grad,) = torch.autograd.grad(loss, [theta])
        opt.step()
        if (step + 1) % eval_every == 0 or step == steps - 1:
            with torch.no_grad():  # the argmax n-gram and each sample's hard n-gram
                cands = torch.cat([theta.argmax(-1)[:, None], noisy.argmax(-1)], dim=1)  # [R, 1 + S, n]
                _update_best(best, *_pick_candidates(problem, rows, cands, eval_batch))
        bar.update(1)
    return best


def _dense(problem: Problem, rows: Rows, steps: int, lr: float, gen: torch.Generator, bar,
           penalty: float = 1.0, eval_every: int = 10, eval_batch: int = 512, **_) -> _Batch:
    """Free input embeddings kept near the token-embedding manifold, snapped to nearest tokens."""
    R, n = len(rows), problem.n
    E = problem.E.float()
    D = E.shape[1]
    En = torch.nn.functional.normalize(E, dim=-1)
    radius = E.norm(dim=-1).median()
    # start off the manifold (random directions at the typical token norm); the penalty then grows from 0 to
    # full weight over the run, so early steps explore freely and late steps settle near real tokens
    noise = torch.randn(R, n, D, generator=gen, device=problem.device)
    x = (E.mean(dim=0) + radius * torch.nn.functional.normalize(noise, dim=-1)).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr * float(radius) / math.sqrt(D))  # lr in units of a typical coordinate
    best = _Batch(torch.zeros(R, n, dtype=torch.long, device=problem.device),
                  torch.full((R,), -math.inf, device=problem.device), torch.zeros(R, device=problem.device))
    for step in range(steps):
        lam = penalty * (step + 1) / steps
        with problem.autocast():
            act, _ = problem.forward(rows, embeds=x)
        near = (torch.nn.functional.normalize(x, dim=-1) @ En.T).max(dim=-1).values  # [R, n]
        off = (1 - near).mean(dim=-1) + ((x.norm(dim=-1) - radius) / radius).pow(2).mean(dim=-1)
        loss = (-act + lam * off).sum()
        (x.grad,) = torch.autograd.grad(loss, [x])
        opt.step()
        if (step + 1) % eval_every == 0 or step == steps - 1:
            with torch.no_grad():
                near, idx = (torch.nn.functional.normalize(x, dim=-1) @ En.T).max(dim=-1)
                _, val, _ = problem.score(rows, problem.allowed[idx], batch=eval_batch)
                _update_best(best, idx, val, near.mean(dim=-1))
        bar.update(1)
    return best


def _discrete(problem: Problem, rows: Rows, steps: int, gen: torch.Generator, bar, restarts: int,
              fluency=0.0, candidates: int = 32, topk: int = 64, restart_every: int = 30, eval_batch: int = 512,
              init: torch.Tensor | None = None, **_) -> _Batch:
    """Gradient-guided single-token swaps scored exactly (GCG), a population with fluency weights and
    restarts (evolutionary prompt optimization)."""
    R, n, V = len(rows), problem.n, problem.n_allowed
    dev = problem.device
    use_ce = _uses_fluency(fluency)
    lam = _fluency_weights(fluency, restarts, dev).repeat(R // restarts)  # [R]; rows are neuron-major
    weights = lam if use_ce else None
    kid_weights = lam.repeat_interleave(candidates) if use_ce else None
    k = min(topk, V)
    cur = torch.randint(V, (R, n), generator=gen, device=dev) if init is None else init.clone()
    cur_obj, _, _ = problem.score(rows, problem.allowed[cur], weights, batch=eval_batch)
    best = _Batch(cur.clone(), cur_obj.clone())
    stale = torch.zeros(R, dtype=torch.long, device=dev)
    ar = torch.arange(R, device=dev)
    kid_rows = rows.repeat(candidates)
    first = 0 if problem.lo > 0 else 1
    for step in range(steps):
        # gradient of the objective with respect to a one-hot encoding of the current tokens
        embeds = problem.E[cur].detach().requires_grad_(True)
        with problem.autocast():
            act, logits = problem.forward(rows, embeds=embeds, logits=use_ce)
            obj = act - lam * problem.self_ce(logits, problem.allowed[cur]) if use_ce else act
        (g,) = torch.autograd.grad(obj.sum(), [embeds])
        grad = einsum(g.float(), problem.E.float(), "r n d, v d -> r n v")
        if use_ce and n > first:  # the cross-entropy's direct dependence on the swapped token (target term)
            logp = torch.log_softmax(logits.detach()[:, problem.lo - 1 + first: problem.lo + n - 1].float(), -1)
            grad[:, first:] += lam[:, None, None] * logp[..., problem.allowed] / (n - first)
        # ties (a flat activation gives no gradient) are broken at random, so proposals still explore
        scale = grad.abs().amax(dim=-1, keepdim=True) * 1e-6 + 1e-30
        grad = grad + scale * torch.rand(grad.shape, generator=gen, device=dev)
        top = grad.topk(k, dim=-1).indices  # [R, n, k]
        # children: one random position swapped for one of its top-k tokens; scored exactly
        where = torch.randint(n, (R, candidates), generator=gen, device=dev)
        pick = torch.randint(k, (R, candidates), generator=gen, device=dev)
        kids = repeat(cur, "r n -> r c n", c=candidates).clone()
        kids.scatter_(2, where[..., None], top[ar[:, None], where, pick][..., None])
        kid_obj, _, _ = problem.score(kid_rows, problem.allowed[rearrange(kids, "r c n -> (r c) n")],
                                      kid_weights, batch=eval_batch)
        child_obj, which = rearrange(kid_obj, "(r c) -> r c", c=candidates).max(dim=1)
        improved = child_obj > cur_obj
        cur = torch.where(improved[:, None], kids[ar, which], cur)
        cur_obj = torch.where(improved, child_obj, cur_obj)
        stale = torch.where(improved, torch.zeros_like(stale), stale + 1)
        _update_best(best, cur, cur_obj)
        if restart_every and (step + 1) % restart_every == 0 and step + 1 < steps:
            fresh = torch.randint(V, (R, n), generator=gen, device=dev)
            fresh_obj, _, _ = problem.score(rows, problem.allowed[fresh], weights, batch=eval_batch)
            reset = stale >= restart_every  # no improvement for a whole period: start afresh
            cur = torch.where(reset[:, None], fresh, cur)
            cur_obj = torch.where(reset, fresh_obj, cur_obj)
            stale = torch.where(reset, torch.zeros_like(stale), stale)
        bar.update(1)
    return best


def _uses_fluency(fluency) -> bool:
    return isinstance(fluency, (tuple, list)) or float(fluency) > 0


_RUNNERS = {"gumbel": _gumbel, "dense": _dense, "discrete": _discrete}


# --------------------------------------------------------------------------------------------- API
def textualize(
    model,
    neurons: "str | Neuron | Iterable[str | Neuron]",
    method: str = "gumbel",
    length: int = 5,
    position: int | None = None,
    seed: int = 0,
    *,
    steps: int | None = None,
    restarts: int | None = None,
    batch_size: int = 64,
    lr: float | None = None,
    vocab: VocabSpec = None,
    corpus: "Corpus | Sequence[str] | str | None" = "synthetic:300",
    corpus_max: "dict | None" = None,
    fluency: "float | tuple[float, float]" = 0.0,
    samples: int = 4,
    temperature: tuple[float, float] = (2.0, 0.1),
    penalty: float = 1.0,
    candidates: int = 32,
    topk: int = 64,
    restart_every: int = 30,
    init: str = "random",
    surrogate: bool | None = None,
    eval_every: int = 10,
    eval_batch: int = 512,
    device: "str | torch.device | None" = None,
    dtype: "str | torch.dtype | None" = "auto",
    progress: bool = True,
) -> TextualizeResult:
    """Find, for each neuron, ``length`` tokens that make it fire most (read at ``position`` of them).

    Args:
        model: a ``HookedTransformer``, ``TransformerBridge`` or :class:`ModelAdapter`.
        neurons: ``"L3.N1207,L5.N88"``, :class:`Neuron` objects, or a list of either.
        method: ``gumbel``, ``dense``, ``discrete`` or ``corpus`` (see the module docstring).
        length: number of optimized tokens (the model's special tokens are added around them).
        position: which optimized token the neuron is read at; default last (decoders) or middle (encoders).
        seed: seeds every random draw; the same call gives the same result.
        steps, restarts, lr: optimization steps (iterations for ``discrete``), rows per neuron (population for
            ``discrete``), learning rate; ``None`` takes the method's :data:`DEFAULTS`.
        batch_size: neurons optimized together (rows = neurons x restarts).
        vocab: allowed tokens: ids, token strings, a predicate on the token string, or a boolean mask.
        corpus: corpus for the baseline (a :class:`Corpus`, sentences, ``"synthetic:N"``, a file; None: none);
            its best window of ``length`` tokens per neuron gives ``corpus_max`` and ``ratio``.
        corpus_max: precomputed ``{neuron: (activation, text)}`` to skip the corpus scan.
        fluency: ``discrete``: weight of the self cross-entropy in the objective (decoders only); a pair
            ``(low, high)`` gives the population log-spaced weights (evolutionary prompt optimization).
        samples, temperature: ``gumbel``: Gumbel samples per step, temperature (start, end), annealed
            geometrically.
        penalty: ``dense``: weight of the off-manifold penalty (1 - nearest cosine + squared relative norm gap).
        candidates, topk, restart_every, init: ``discrete``: children per member per iteration, tokens per
            position proposed by the gradient, iterations without improvement before a member restarts, and
            ``"random"`` or ``"corpus"`` (start from the top corpus windows) initial tokens.
        surrogate: optimize an ``mlp.post`` neuron's pre-activation (same maximizers where it fires, and a
            gradient where GELU/ReLU are flat); None: wherever the MLP allows it. Results are always scored on
            the neuron itself.
        eval_every, eval_batch: relaxed methods read out and score their discrete tokens every
            ``eval_every`` steps; candidates are scored ``eval_batch`` sequences per forward pass.
        device: move the model there first (default: where it is).
        dtype: autocast dtype for the optimization (``"auto"``: bfloat16 on CUDA, none on CPU); the reported
            activations are always recomputed in the model's own precision.
        progress: show a progress bar.
    """
    if method not in METHODS:
        raise TextualizeError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    adapter = ModelAdapter.wrap(model)
    if device is not None:
        adapter.model.to(device)
    dev = adapter.device
    neurons = adapter.check_neurons(_parse(neurons))
    defaults = DEFAULTS[method]
    steps = defaults["steps"] if steps is None else int(steps)
    restarts = defaults["restarts"] if restarts is None else int(restarts)
    lr = defaults["lr"] if lr is None else float(lr)
    if steps < 0 or (method != "corpus" and steps < 1):
        raise TextualizeError(f"steps must be >= 1, got {steps}")
    if restarts < 1 or batch_size < 1 or samples < 1 or candidates < 1 or eval_every < 1:
        raise TextualizeError("restarts, batch_size, samples, candidates and eval_every must be >= 1")
    if init not in ("random", "corpus"):
        raise TextualizeError(f"init must be 'random' or 'corpus', got {init!r}")
    amp = _amp_dtype(dtype, dev)
    problem = Problem(adapter, neurons, length, position, vocab=vocab, amp_dtype=amp, soft=method != "corpus",
                      surrogate=surrogate)
    uses_fluency = _uses_fluency(fluency)
    if uses_fluency and method != "discrete":
        raise TextualizeError("fluency weights apply to method='discrete' only")
    if uses_fluency and problem.encoder:
        raise TextualizeError(f"{adapter.name} is an encoder: self cross-entropy (fluency) needs a decoder's "
                              "next-token predictions")
    config = dict(method=method, length=problem.n, position=problem.pos, seed=seed, steps=steps,
                  restarts=restarts, lr=lr, batch_size=batch_size, model=adapter.name, amp=str(amp),
                  encoder=problem.encoder)

    with _eval_mode(adapter):
        # baseline first: the corpus maximum per neuron (also the result of method='corpus')
        base: dict[Neuron, tuple[float, str, list[int]]] = {}
        scan_seconds = 0.0
        need_scan = corpus is not None and (corpus_max is None or method == "corpus" or init == "corpus")
        top_k = restarts if init == "corpus" else 1
        if need_scan:
            t = time.perf_counter()
            vals, idx, windows, _ = _scan(problem, _corpus_sentences(corpus), top_k, eval_batch, progress)
            scan_seconds = time.perf_counter() - t
            for j, nrn in enumerate(neurons):
                ids = windows[int(idx[j, 0])].tolist()
                base[nrn] = (float(vals[j, 0]), problem.decode(ids)[1], ids)
            corpus_windows = (idx, windows)
        elif corpus_max is not None:
            for key, value in corpus_max.items():
                act, text = (value, "") if isinstance(value, (int, float)) else (value[0], value[1])
                base[Neuron.parse(key)] = (float(act), str(text), [])
        elif method == "corpus":
            raise TextualizeError("method='corpus' needs a corpus")

        if method == "corpus":
            results = []
            for nrn in neurons:
                act, text, ids = base[nrn]
                names, _ = problem.decode(ids)
                results.append(NeuronText(nrn, method, names, ids, text, act, act, text, 0,
                                          scan_seconds / len(neurons), _fluency_of(problem, [ids])[0]))
            return TextualizeResult(results, config)

        gen = _generator(seed, dev)
        problem.check_reachable(gen)
        gen = _generator(seed, dev)
        order = sorted(range(len(neurons)), key=lambda i: (neurons[i].layer, i))  # shallow batches stop early
        chunks = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        out: dict[int, NeuronText] = {}
        bar = tqdm(total=steps * len(chunks), disable=not progress, desc=f"textualize ({method})")
        try:
            for chunk in chunks:
                t = time.perf_counter()
                rows = problem.rows(chunk, restarts)
                kwargs = dict(samples=samples, temperature=temperature, penalty=penalty, candidates=candidates,
                              topk=topk, restart_every=restart_every, eval_every=eval_every,
                              eval_batch=eval_batch, fluency=fluency, restarts=restarts)
                if method == "discrete" and init == "corpus" and need_scan:
                    kwargs["init"] = _corpus_init(problem, corpus_windows, chunk, restarts)
                best = _RUNNERS[method](problem, rows, steps=steps, lr=lr, gen=gen, bar=bar, **kwargs)
                # the discrete result, re-scored exactly in the model's precision
                tokens = problem.allowed[best.tokens]
                _, act, _ = problem.score(rows, tokens, batch=eval_batch, amp=False, target=True)
                pick = _best_per_neuron(act, len(chunk), restarts)
                final_tokens = tokens[pick].cpu().tolist()
                final_act = act[pick].cpu().tolist()
                sims = best.similarity[pick].cpu().tolist() if best.similarity is not None else None
                fluencies = _fluency_of(problem, final_tokens)
                seconds = (time.perf_counter() - t) / len(chunk)
                for j, i in enumerate(chunk):
                    nrn = neurons[i]
                    names, text = problem.decode(final_tokens[j])
                    cmax, ctext, _ = base.get(nrn, (math.nan, "", []))
                    extra = {}
                    if method == "dense":
                        extra["nearest"] = _nearest(problem, final_tokens[j])
                    out[i] = NeuronText(nrn, method, names, final_tokens[j], text, float(final_act[j]), cmax, ctext,
                                        steps, seconds, fluencies[j], sims[j] if sims else math.nan, extra)
        finally:
            bar.close()
    return TextualizeResult([out[i] for i in range(len(neurons))], config)


def _corpus_init(problem: Problem, corpus_windows, chunk: Sequence[int], restarts: int) -> torch.Tensor:
    """Start tokens from each neuron's top corpus windows (allowed-index space; disallowed tokens random)."""
    idx, windows = corpus_windows
    lookup = torch.full((problem.adapter.d_vocab,), -1, dtype=torch.long)
    lookup[problem.allowed.cpu()] = torch.arange(problem.n_allowed)
    rows = []
    for i in chunk:
        for r in range(restarts):
            w = windows[int(idx[i, min(r, idx.shape[1] - 1)])]
            rows.append(lookup[w])
    init = torch.stack(rows)
    init = torch.where(init < 0, torch.zeros_like(init), init)
    return init.to(problem.device)


def _fluency_of(problem: Problem, token_lists: Sequence[Sequence[int]]) -> list[float]:
    """Self cross-entropy of finished token sequences (decoders; NaN for encoders or empty)."""
    if problem.encoder or not token_lists or not token_lists[0]:
        return [math.nan] * len(token_lists)
    tokens = torch.as_tensor(token_lists, dtype=torch.long, device=problem.device)
    with torch.no_grad():
        logits = problem.adapter.forward(problem.ids(tokens), return_type="logits")
        return problem.self_ce(logits, tokens).cpu().tolist()


def _nearest(problem: Problem, token_ids: Sequence[int], k: int = 3) -> list[list[str]]:
    """The ``k`` allowed tokens nearest (cosine) to each chosen token, for the dense readout."""
    with torch.no_grad():
        En = torch.nn.functional.normalize(problem.E.float(), dim=-1)
        lookup = {int(t): i for i, t in enumerate(problem.allowed.tolist())}
        vecs = En[[lookup[int(t)] for t in token_ids]]
        top = (vecs @ En.T).topk(min(k + 1, En.shape[0]), dim=-1).indices[:, 1:]
        return [[problem.names[int(problem.allowed[j])] for j in row] for row in top.tolist()]
