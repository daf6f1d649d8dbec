"""The optimization problem every textualization optimizer shares: the neurons (and the surrogate each one is
optimized through), the framing and reading position, the allowed tokens and their embeddings, and batched
forward passes in which each row reads its own neuron. Not the optimizers themselves (``_gumbel``,
``_dense``, ``_discrete``)."""

from __future__ import annotations

import contextlib
import math
import re
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from einops import rearrange, repeat

from ..core.adapter import ModelAdapter
from ..core.hooks import capture_hooks, run_capture, stop_when_all_read
from ..core.neurons import Neuron
from ..core.units import is_unit_site, registered
from ._vocab import TextualizeError, VocabSpec, framing, resolve_vocab, token_names


def surrogate_neuron(adapter: ModelAdapter, neuron: Neuron, surrogate: bool | None) -> Neuron:
    """The neuron optimized in place of ``neuron``: its pre-activation for ``mlp.post`` neurons of non-gated
    MLPs with a monotone-where-positive activation (ReLU, GELU, SiLU), when ``surrogate`` is True or None."""
    if surrogate is False or neuron.site != "mlp.post":
        return neuron
    pre = Neuron(neuron.layer, neuron.index, "mlp.pre")
    act_fn = str(getattr(adapter.cfg, "act_fn", "") or "")
    gated = getattr(adapter.cfg, "gated_mlp", False)
    ok = (not gated and pre.hook_name in adapter.model.hook_dict
          and re.fullmatch(r"(gelu\w*|relu|silu|swish)", act_fn) is not None)
    if surrogate and not ok:
        raise TextualizeError(f"neuron {neuron}: no monotone pre-activation to optimize instead (act_fn "
                              f"{act_fn!r}, gated={gated}); use surrogate=False")
    return pre if ok else neuron


def _no_read(act: torch.Tensor, hook=None) -> None:  # noqa: ARG001 - a stop hook reads nothing itself
    return None


def token_embedding_hook(adapter: ModelAdapter) -> str:
    """The hook soft inputs are fed through; a clear error when the model has none."""
    try:
        name = adapter.token_embedding_hook
        adapter.W_E
    except (ValueError, AttributeError) as exc:
        raise TextualizeError(
            f"{adapter.name} has no token embeddings reachable by hooks ({exc}); the Gumbel, Dense and Discrete "
            "optimizers feed soft inputs through that hook (CorpusSearch() still works)") from exc
    return name


@dataclass
class Rows:
    """Which neuron each row (sequence) of a batch is scored on: ``index[i]`` indexes ``Problem.neurons``;
    ``runs`` says the same on the host as consecutive ``(neuron id, number of rows)`` runs, so passes know
    each slice's hooks and depth without asking the device (no host synchronization)."""

    index: torch.Tensor
    runs: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        if sum(count for _, count in self.runs) != self.index.shape[0]:
            raise ValueError(f"Rows: runs cover {sum(c for _, c in self.runs)} rows, index has "
                             f"{self.index.shape[0]}")

    @property
    def neuron_ids(self) -> list[int]:
        """The distinct neurons these rows read (sorted)."""
        return sorted({i for i, _ in self.runs})

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def repeat(self, times: int) -> "Rows":
        """Each row ``times`` times, consecutively."""
        return Rows(self.index.repeat_interleave(times), tuple((i, c * times) for i, c in self.runs))

    def __getitem__(self, item: slice) -> "Rows":
        if not isinstance(item, slice) or item.step not in (None, 1):
            raise TypeError(f"Rows take contiguous slices only (their neurons are known on the host by runs), "
                            f"got {type(item).__name__}; build picked rows with Problem.rows")
        start, stop, _ = item.indices(len(self))
        runs, at = [], 0
        for i, count in self.runs:
            lo, hi = max(start, at), min(stop, at + count)
            if hi > lo:
                runs.append((i, hi - lo))
            at += count
        return Rows(self.index[start:stop], tuple(runs))

    def split(self, key: Callable[[int], int]) -> list[tuple[int, int]]:
        """``(start, stop)`` of the longest consecutive stretches of rows whose neurons share ``key(neuron id)``
        (e.g. the layer a pass must reach)."""
        bounds, at = [], 0
        for i, count in self.runs:
            if bounds and key(i) == bounds[-1][0]:
                bounds[-1][2] = at + count
            else:
                bounds.append([key(i), at, at + count])
            at += count
        return [(lo, hi) for _, lo, hi in bounds]


class Problem:
    """Everything shared by the optimizers: neurons, framing, reading position, allowed tokens, embeddings, and
    batched forward passes that read each row's own neuron (:class:`Rows`)."""

    def __init__(self, adapter: ModelAdapter, neurons: Sequence[Neuron], length: int, position: int | None,
                 vocab: VocabSpec = None, amp_dtype: torch.dtype | None = None, soft: bool = True,
                 surrogate: bool | None = False):
        if not isinstance(length, (int, np.integer)) or length < 1:
            raise TextualizeError(f"length must be a positive number of tokens, got {length!r}")
        if not neurons:
            raise TextualizeError("no neurons given")
        self.adapter, self.neurons, self.n = adapter, list(neurons), int(length)
        self.encoder = adapter.is_encoder
        self.prefix, self.suffix = framing(adapter)
        self.lo = len(self.prefix)
        self.pos = self._position(position)
        self.seq_pos = self.lo + self.pos
        self.device, self.amp_dtype = adapter.device, amp_dtype
        self.objective_neurons = [surrogate_neuron(adapter, n, surrogate) for n in self.neurons]
        #: hook -> the dictionary whose latents are read there (a latent's objective is its pre-activation)
        self._dictionaries: dict = {}
        self._tables = {True: self._table(self.neurons), False: self._table(self.objective_neurons)}
        self.hooks = self._tables[True][0]
        self.allowed = resolve_vocab(adapter, vocab).to(self.device)
        self.names = token_names(adapter)
        self.emb_hook = token_embedding_hook(adapter) if soft else None
        if soft:
            self.E = adapter.W_E.detach()[self.allowed]  # [V', D]
        self.template = torch.as_tensor(self.prefix + [int(self.allowed[0])] * self.n + self.suffix,
                                        device=self.device)

    def _position(self, position: int | None) -> int:
        total = self.lo + self.n + len(self.suffix)
        if total > self.adapter.n_ctx:
            raise TextualizeError(f"length {self.n} plus {total - self.n} special tokens exceeds the context of "
                                  f"{self.adapter.n_ctx} tokens of {self.adapter.name}")
        if position is None:
            position = self.n // 2 if self.encoder else self.n - 1
        if not isinstance(position, (int, np.integer)) or not -self.n <= position < self.n:
            raise TextualizeError(f"position {position!r} is outside the {self.n} optimized tokens "
                                  f"(use 0..{self.n - 1} or negative indices)")
        return int(position) % self.n

    def _table(self, neurons: Sequence[Neuron]) -> tuple[list[str], torch.Tensor, torch.Tensor]:
        hooks = sorted({n.hook_name for n in neurons})
        for h in hooks:
            sites = sorted({n.site for n in neurons if n.hook_name == h})
            if len(sites) > 1:
                raise TextualizeError(f"units of sites {sites} share hook {h}: textualize neurons and a "
                                      "dictionary's latents of one hook point in separate calls")
            if is_unit_site(sites[0]):
                layer = next(n.layer for n in neurons if n.hook_name == h)
                self._dictionaries[h] = registered(sites[0], layer)
        hook_of = torch.as_tensor([hooks.index(n.hook_name) for n in neurons], device=self.device)
        return hooks, hook_of, torch.as_tensor([n.index for n in neurons], device=self.device)

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

    # --------------------------------------------------------------------------------- forward passes
    def _units(self, h: str, flat: torch.Tensor, target: bool = True) -> torch.Tensor:
        """A hook's units from its activation at the reading position ``[B, width]``: the neurons themselves,
        or a dictionary's latents (their pre-activations as the objective, ``target=False``: a ReLU latent that
        is off has no gradient)."""
        d = self._dictionaries.get(h)
        if d is None:
            return flat
        return d.encode(flat) if target else d.pre(flat)

    def _reader(self, rows: Rows, col_of: torch.Tensor, h: str = "", target: bool = True
                ) -> Callable[[torch.Tensor], torch.Tensor]:
        """What a hook keeps: each row's own neuron at the reading position [B]."""
        def read(act: torch.Tensor) -> torch.Tensor:
            flat = self._units(h, rearrange(act[:, self.seq_pos], "b ... -> b (...)"), target)
            col = col_of[rows.index].clamp(max=flat.shape[1] - 1)
            return flat.gather(1, col[:, None])[:, 0].float()
        return read

    def _reads(self, rows: Rows, hooks: Sequence[str], col_of: torch.Tensor, store: dict[str, torch.Tensor],
               target: bool = True):
        return capture_hooks({h: self._reader(rows, col_of, h, target) for h in hooks}, store, detach=False)

    def feed(self, embeds: torch.Tensor) -> tuple[str, Callable]:
        """A hook that replaces the token embeddings of the optimized positions with ``embeds`` [B, n, D]."""
        lo, hi = self.lo, self.lo + self.n

        def put(act: torch.Tensor, hook=None) -> torch.Tensor:  # noqa: ARG001 - TransformerLens signature
            return torch.cat([act[:, :lo], embeds.to(act.dtype), act[:, hi:]], dim=1)
        return self.emb_hook, put

    def forward(self, rows: Rows, tokens: torch.Tensor | None = None, embeds: torch.Tensor | None = None,
                logits: bool = False, target: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Activation of each row's neuron at the reading position, and logits if asked.

        Exactly one of ``tokens`` [B, n] (vocabulary ids) and ``embeds`` [B, n, D] (soft inputs fed through
        the token-embedding hook) is given. ``target`` reads the neurons asked for; otherwise their
        optimization objective (the surrogate). Without ``logits``, consecutive rows whose neurons sit in the
        same layer go through one pass that ends right after their last hook fires: a layer-1 row does not pay
        for layer 5 because a layer-5 row shares its batch (the rows are independent, so the values are those
        of one pass over all rows).
        """
        neurons = self.neurons if target else self.objective_neurons
        groups = [(0, len(rows))] if logits else rows.split(lambda i: neurons[i].layer)
        self.last_store = {}
        if len(groups) == 1:
            return self._pass(rows, tokens, embeds, logits, target)
        acts = [self._pass(rows[lo:hi], None if tokens is None else tokens[lo:hi],
                           None if embeds is None else embeds[lo:hi], False, target)[0] for lo, hi in groups]
        return torch.cat(acts), None

    def _pass(self, rows: Rows, tokens: torch.Tensor | None, embeds: torch.Tensor | None, logits: bool,
              target: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One forward pass over ``rows`` (see :meth:`forward`); without ``logits`` it ends once every read hook
        has fired (and in any case after the deepest layer read)."""
        neurons = self.neurons if target else self.objective_neurons
        all_hooks, hook_of, col_of = self._tables[target]
        hooks = sorted({neurons[i].hook_name for i in rows.neuron_ids})
        stop = max(neurons[i].layer for i in rows.neuron_ids)
        store: dict[str, torch.Tensor] = {}
        fwd = self._reads(rows, hooks, col_of, store, target)
        if not logits:  # after every other hook at these points: end the pass once all reads are stored
            fwd = fwd + stop_when_all_read([(h, _no_read) for h in hooks], store)
        if embeds is not None:
            ids, fwd = repeat(self.template, "t -> b t", b=embeds.shape[0]), [self.feed(embeds)] + fwd
        else:
            ids = self.ids(tokens)
        out = self.adapter.forward(ids, fwd, stop_at_layer=None if logits else stop + 1,
                                   return_type="logits" if logits else None)
        missing = [h for h in hooks if h not in store]
        if missing:
            raise TextualizeError(f"hook(s) {missing} never ran in a forward pass of {self.adapter.name}: "
                                  f"textualize cannot reach neurons at these sites")
        for h, value in store.items():  # every pass's reads, a cut graph in any of them kept (check_reachable)
            if h not in self.last_store or not value.requires_grad:
                self.last_store[h] = value
        act = store[hooks[0]]
        for h in hooks[1:]:
            act = torch.where(hook_of[rows.index] == all_hooks.index(h), store[h], act)
        return act, out

    def rows(self, neuron_ids: Sequence[int], repeats: int = 1) -> Rows:
        """Rows scoring ``neuron_ids``, each repeated ``repeats`` times consecutively (neuron-major)."""
        ids = [int(i) for i in neuron_ids]
        index = torch.as_tensor(ids, dtype=torch.long, device=self.device).repeat_interleave(repeats)
        return Rows(index, tuple((i, int(repeats)) for i in ids))

    def all_neuron_forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Activations [B, N] of every neuron on every row (for the corpus scan)."""
        cols = {h: torch.as_tensor([n.index for n in self.neurons if n.hook_name == h], device=self.device)
                for h in self.hooks}
        readers = {h: (lambda act, c=cols[h], h=h: self._units(h, rearrange(act[:, self.seq_pos],
                                                                          "b ... -> b (...)"))[:, c].float())
                   for h in self.hooks}
        store = run_capture(self.adapter, self.ids(tokens), readers)
        out = torch.empty(tokens.shape[0], len(self.neurons), device=self.device)
        for h in self.hooks:
            out[:, [i for i, n in enumerate(self.neurons) if n.hook_name == h]] = store[h]
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
              batch: int = 512, amp: bool = True, target: bool = False, step: int | None = None
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Exact scores of discrete candidates [B, n] in chunks: (objective, activation, self cross-entropy).

        ``weights`` [B] are fluency weights; the objective is ``activation - weight * cross-entropy`` (the
        cross-entropy needs the full forward pass and is NaN when no weight is given). A weighted
        cross-entropy that is not finite is an error naming the neuron and ``step``: read as zero it would
        make that candidate look perfectly fluent.
        """
        need_ce = weights is not None
        acts, ces = [], []
        for start in range(0, tokens.shape[0], batch):
            chunk = tokens[start:start + batch]
            with self.autocast() if amp else contextlib.nullcontext():
                act, logits = self.forward(rows[start:start + batch], tokens=chunk, logits=need_ce, target=target)
            acts.append(act)
            if need_ce:
                ces.append(self.self_ce(logits, chunk))
        act = torch.cat(acts)
        if not need_ce:
            return act, act, torch.full_like(act, math.nan)
        ce = torch.cat(ces)
        self._check_finite_ce(rows, tokens, ce, step)
        return act - weights * ce, act, ce

    def _check_finite_ce(self, rows: Rows, tokens: torch.Tensor, ce: torch.Tensor, step: int | None) -> None:
        """A :class:`TextualizeError` naming the first row whose self cross-entropy is NaN or infinite."""
        bad = torch.nonzero(~torch.isfinite(ce))
        if bad.numel():
            i = int(bad[0, 0])
            neuron = self.neurons[int(rows.index[i])]
            where = "the starting candidates" if step is None else f"step {step}"
            raise TextualizeError(
                f"self cross-entropy (the fluency term) is {float(ce[i])} for neuron {neuron} at {where} "
                f"({bad.shape[0]} of {ce.shape[0]} candidates; first: token ids {tokens[i].tolist()}): "
                "the model's logits are not finite there")

    def check_reachable(self, generator: torch.Generator) -> None:
        """One small pass: the token-embedding hook outputs ``W_E[ids]``, soft inputs reproduce token inputs,
        and every neuron's hook has a gradient path from the input embeddings; errors name the problem."""
        rows = self.rows(range(len(self.neurons)))
        tok_idx = torch.randint(self.n_allowed, (len(self.neurons), self.n), generator=generator,
                                device=self.device)
        tokens = self.allowed[tok_idx]
        with torch.no_grad():
            self._check_embedding_hook(self.ids(tokens[:1]))
            hard, _ = self.forward(rows, tokens=tokens)
            self.forward(rows, tokens=tokens, target=True)
        soft, _ = self.forward(rows, embeds=self.E[tok_idx].clone().requires_grad_(True))
        cut = [h for h, v in self.last_store.items() if not v.requires_grad]
        if cut:
            names = [str(n) for n, o in zip(self.neurons, self.objective_neurons) if o.hook_name in cut]
            raise TextualizeError(f"neurons {names} cannot be reached: no gradient flows from the input "
                                  f"embeddings to hook(s) {cut} (is a hook detaching or replacing them?)")
        if not torch.allclose(soft.detach(), hard, atol=1e-3, rtol=1e-3):
            raise TextualizeError(f"{self.adapter.name}: feeding W_E rows through {self.emb_hook!r} does not "
                                  "reproduce the token inputs' activations; soft inputs are not faithful here")

    def _check_embedding_hook(self, ids: torch.Tensor) -> None:
        got = run_capture(self.adapter, ids, [self.emb_hook]).get(self.emb_hook)
        ref = self.adapter.W_E[ids]
        if got is None or got.shape != ref.shape or not torch.allclose(got.float(), ref.float(), atol=1e-4,
                                                                       rtol=1e-3):
            raise TextualizeError(
                f"{self.adapter.name}: hook {self.emb_hook!r} does not output the token embeddings W_E[ids] "
                "alone, so soft inputs cannot be fed there (CorpusSearch() still works)")

    def decode(self, token_ids: Sequence[int]) -> tuple[list[str], str]:
        names = [self.names[i] for i in token_ids]
        return names, self.adapter.tokenizer.decode(list(token_ids)).strip()
