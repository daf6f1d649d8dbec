"""One small adapter over both TransformerLens generations.

``HookedTransformer`` (TransformerLens 2.x/3.x) and ``TransformerBridge`` (3.x/4.x) differ in how they are
built, where their tokenizer and config live, and in which arguments their forward honours. Everything the
package needs from a model goes through :class:`ModelAdapter`; no other module looks at the version.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from .neurons import SITES, Neuron, check_site, hook_name, site_of_hook
from .units import is_unit_site, registered, registered_layers

HookFn = Callable[..., "torch.Tensor | None"]
FwdHooks = list[tuple[str, HookFn]]


_ENCODER_ARCHITECTURES = ("Bert", "Roberta", "Electra", "Albert", "Deberta", "XLMRoberta", "ModernBert")


class LongSentenceError(ValueError):
    """A sentence has more tokens than the model's context."""


class _StopForward(Exception):
    """Raised inside a hook to end a forward pass once every wanted activation is captured."""


def _raise_stop(act: torch.Tensor, hook=None) -> None:  # noqa: ARG001 - TransformerLens hook signature
    raise _StopForward


def transformer_lens_classes() -> dict[str, type]:
    """The TransformerLens model classes installed: ``{"hooked": HookedTransformer, "bridge": TransformerBridge}``
    (either may be missing: TransformerLens 2.x has no bridge, 4.x no ``HookedTransformer``)."""
    classes: dict[str, type] = {}
    try:
        from transformer_lens import HookedTransformer

        classes["hooked"] = HookedTransformer
    except ImportError:  # TransformerLens 4.x
        pass
    try:
        from transformer_lens.model_bridge import TransformerBridge

        classes["bridge"] = TransformerBridge
    except ImportError:  # TransformerLens 2.x
        pass
    return classes




def names_an_encoder(text: str) -> bool:
    """Whether an architecture or model-type string (``"BertForMaskedLM"``, ``"xlm-roberta"``) is an encoder."""
    text = text.lower().replace("-", "")
    return any(a.lower() in text for a in _ENCODER_ARCHITECTURES)


def is_encoder_config(config) -> bool:
    """Whether a Hugging Face config describes an encoder (BERT-like), by the same rule as
    :attr:`ModelAdapter.is_encoder`."""
    if getattr(config, "is_decoder", False):
        return False
    return names_an_encoder(" ".join(getattr(config, "architectures", None) or []) + " "
                            + str(getattr(config, "model_type", "")))


def placement(device, device_map, n_devices: "int | None") -> tuple[dict, dict]:
    """Keyword arguments that place a model over several devices: ``(for from_pretrained, for boot_model)``.

    Bridges (TransformerLens >= 3) take a Hugging Face / accelerate ``device_map`` (``"auto"``, ``"balanced"`` or
    a dict of module name to device); ``n_devices=N`` becomes ``"balanced"`` over the first N GPUs.
    ``HookedTransformer`` (TransformerLens < 4) takes ``n_devices`` (its blocks split over GPUs 0..N-1) and no
    ``device_map``. Neither goes with ``device``."""
    if device_map is None and (n_devices is None or n_devices <= 1):
        return {}, {}
    if device is not None:
        raise ValueError("device and device_map / n_devices are mutually exclusive: pass one")
    if device_map is not None and n_devices not in (None, 1):
        raise ValueError("pass device_map or n_devices, not both")
    if "bridge" not in transformer_lens_classes():
        if device_map is not None:
            raise ValueError("device_map needs TransformerBridge (TransformerLens >= 3); HookedTransformer takes "
                             "n_devices=")
        return {}, {"n_devices": int(n_devices)}
    if device_map is None:
        available = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if available < n_devices:
            raise ValueError(f"n_devices={n_devices} but {available} CUDA devices are available")
        return {"device_map": "balanced",
                "max_memory": {i: torch.cuda.mem_get_info(i)[0] for i in range(n_devices)}}, {}
    return {"device_map": device_map}, {}


def boot_model(source: str, hf_model: torch.nn.Module, tokenizer, device: "str | torch.device | None",
               dtype: torch.dtype = torch.float32, n_devices: "int | None" = None) -> torch.nn.Module:
    """A TransformerLens model over a loaded Hugging Face model: ``TransformerBridge`` where TransformerLens has
    it (3.x/4.x), else ``HookedTransformer`` (2.x, decoders with official names only). A Hugging Face model
    dispatched with a ``device_map`` stays where accelerate put it (``device`` None); ``n_devices`` splits a
    ``HookedTransformer``'s blocks over that many GPUs."""
    classes = transformer_lens_classes()
    if "bridge" in classes:
        hf_model.eval()
        where = str(device) if device is not None else None
        return classes["bridge"].boot_transformers(source, hf_model=hf_model, tokenizer=tokenizer,
                                                   device=where, dtype=dtype)
    if is_encoder_config(hf_model.config):
        raise ValueError(f"{source}: encoders need TransformerBridge (TransformerLens >= 3)")
    name = getattr(hf_model.config, "_name_or_path", source)
    split = {"n_devices": n_devices} if n_devices and n_devices > 1 else {}
    return classes["hooked"].from_pretrained(name, hf_model=hf_model, tokenizer=tokenizer,
                                             device=str(device or "cuda"), dtype=dtype, **split)


@dataclass
class TokenizedSentence:
    """Token ids of one sentence and, per token, the index of the word it belongs to (-1: none)."""

    input_ids: np.ndarray
    word_of_token: np.ndarray
    n_words: int

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class Batch:
    """Right-padded token ids with an attention mask and the token-to-word map (-1 on specials and padding)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    word_of_token: torch.Tensor
    padded: bool = True  # False when every row has the same length (known on the host, no device sync)

    @property
    def n_tokens(self) -> int:
        return int(self.attention_mask.sum())


class ModelAdapter:
    """What the package needs from a TransformerLens model, whatever its generation.

    Wraps a ``HookedTransformer`` or a ``TransformerBridge`` (encoder or decoder). Exposes its sizes, device,
    tokenizer, hook-name validation, word-aligned tokenization and a forward pass that runs hooks and can stop
    right after the deepest layer that is needed (no later blocks, no unembedding, no MLM head).
    """

    def __init__(self, model: torch.nn.Module, prepend_bos: bool | None = None):
        if isinstance(model, ModelAdapter):
            model = model.model
        classes = transformer_lens_classes()
        self.generation = next((g for g, cls in classes.items() if isinstance(model, cls)), None)
        if self.generation is None:
            raise TypeError(
                f"{type(model).__name__} is neither a TransformerLens HookedTransformer (2.x/3.x) nor a "
                "TransformerBridge (3.x/4.x); wrap Hugging Face models with "
                "TransformerBridge.boot_transformers or use tl_neuronprobe.models.load"
            )
        self.model = model
        self.cfg = model.cfg
        self.tokenizer = getattr(model, "tokenizer", None)
        arch = str(getattr(self.cfg, "architecture", None) or getattr(self.cfg, "original_architecture", None) or "")
        # TransformerLens 3.x bridges report attention_dir="causal" for BERT-like models: trust the architecture
        self.is_encoder = getattr(self.cfg, "attention_dir", "causal") == "bidirectional" or names_an_encoder(arch)
        default_bos = bool(getattr(self.cfg, "default_prepend_bos", True))
        self.prepend_bos = (not self.is_encoder and default_bos) if prepend_bos is None else prepend_bos

    @classmethod
    def wrap(cls, model: "torch.nn.Module | ModelAdapter") -> "ModelAdapter":
        return model if isinstance(model, ModelAdapter) else cls(model)

    # ----------------------------------------------------------------------------------------- sizes
    @property
    def n_layers(self) -> int:
        return int(self.cfg.n_layers)

    @property
    def d_model(self) -> int:
        return int(self.cfg.d_model)

    @property
    def d_mlp(self) -> int:
        return int(self.cfg.d_mlp)

    @property
    def n_heads(self) -> int:
        return int(self.cfg.n_heads)

    @property
    def d_head(self) -> int:
        return int(self.cfg.d_head)

    @property
    def n_ctx(self) -> int:
        return int(self.cfg.n_ctx)

    @property
    def d_vocab(self) -> int:
        return int(self.cfg.d_vocab)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def input_device(self) -> torch.device:
        """Where token ids go: the input embedding's device (a model split over devices runs its embedding on
        one of them, not necessarily the device of its first parameter)."""
        hf = getattr(self.model, "original_model", None)  # a bridge's Hugging Face model
        if getattr(hf, "hf_device_map", None) and hasattr(hf, "get_input_embeddings"):
            return next(hf.get_input_embeddings().parameters()).device
        if self.generation == "hooked" and int(getattr(self.cfg, "n_devices", 1) or 1) > 1:
            return self.model.embed.W_E.device
        return self.device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def name(self) -> str:
        return str(getattr(self.cfg, "model_name", None) or type(self.model).__name__)

    def site_width(self, site: str, layer: "int | None" = None) -> int:
        """Number of neurons of ``site`` in one layer (a dictionary site: the units of its dictionary registered
        at ``layer``, or at every registered layer when they all have the same number)."""
        check_site(site)
        if is_unit_site(site):
            layers = [layer] if layer is not None else registered_layers(site)
            widths = {registered(site, lay).n_units for lay in layers}
            if len(widths) != 1:
                if not widths:
                    registered(site, -1)  # raises, naming what is registered
                raise ValueError(f"the dictionaries at site {site!r} differ in width by layer ({sorted(widths)}): "
                                 "give the layer")
            return widths.pop()
        if site.startswith("mlp."):
            return self.d_mlp
        if site == "attn.z":
            return self.n_heads * self.d_head
        return self.d_model

    def residual_writes(self, hook: str) -> "torch.Tensor | None":
        """``[width, d_model]``: the residual-stream direction each unit of hook point ``hook`` writes, for the
        hooks whose value reaches the residual stream linearly (``mlp.hook_post``: the rows of ``W_out``;
        ``attn.hook_z``: ``W_O`` flattened over heads; ``hook_resid_*``, ``hook_mlp_out``, ``hook_attn_out``: the
        identity); None for any other hook (``mlp.hook_pre`` passes the nonlinearity)."""
        m = re.fullmatch(r"blocks\.(\d+)\.(.+)", hook)
        if m is None:
            return None
        layer, rest = int(m.group(1)), m.group(2)
        block = self.model.blocks[layer]
        with torch.no_grad():
            if rest == "mlp.hook_post":
                return block.mlp.W_out.detach().reshape(-1, self.d_model)
            if rest == "attn.hook_z":
                return block.attn.W_O.detach().reshape(-1, self.d_model)
        if rest in ("hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_mlp_out", "hook_attn_out"):
            return torch.eye(self.d_model, device=self.input_device)
        return None

    def unembedding(self) -> "torch.Tensor | None":
        """``W_U [d_model, d_vocab]`` of a decoder (a residual direction's direct effect on the logits, the final
        LayerNorm's scale left out as feature dashboards do); None for an encoder, whose MLM head transforms the
        residual stream (a dense layer, GELU, LayerNorm) before its decoder."""
        if self.is_encoder:
            return None
        return self.model.W_U.detach()

    # ------------------------------------------------------------------------------------ validation
    @property
    def hook_names(self) -> list[str]:
        return list(self.model.hook_dict.keys())

    def check_hook(self, name: str) -> str:
        if name not in self.model.hook_dict:
            near = [h for h in self.hook_names if h.split(".")[-1] == name.split(".")[-1]][:8]
            raise ValueError(
                f"hook {name!r} does not exist in {self.name}"
                + (f"; hooks with the same suffix: {near}" if near else "")
                + f"; sites supported by tl_neuronprobe: {', '.join(SITES)}"
            )
        return name

    def check_layers(self, site: str, layers: "Sequence[int] | int | None") -> list[int]:
        """Validate layers for ``site`` (None: all) and check their hook points exist."""
        check_site(site)
        if layers is None:
            layers = registered_layers(site) if is_unit_site(site) else range(self.n_layers)
            if not layers:
                registered(site, -1)  # raises, naming what is registered
        elif isinstance(layers, int):
            layers = [layers]
        layers = [int(layer) for layer in layers]
        bad = [layer for layer in layers if not 0 <= layer < self.n_layers]
        if bad:
            raise ValueError(f"layers {bad} do not exist: {self.name} has layers 0..{self.n_layers - 1}")
        for layer in layers:
            self.check_hook(hook_name(site, layer))
            if is_unit_site(site):
                d = registered(site, layer)
                self.check_hook(d.write_hook)
                width = self.hook_width(d.hook)
                if width is not None and width != d.d_in:
                    raise ValueError(f"the dictionary at site {site!r} layer {layer} reads {d.d_in} values, but "
                                     f"{d.hook} of {self.name} has {width}")
        return layers

    def hook_width(self, name: str) -> "int | None":
        """The flattened width of a supported site's hook point (None for another hook)."""
        try:
            site, _ = site_of_hook(name)
        except ValueError:
            return None
        return self.site_width(site)

    def check_neurons(self, neurons: Sequence[Neuron]) -> list[Neuron]:
        """Raise if any neuron's layer, site or index does not exist in this model."""
        neurons = [Neuron.parse(n) for n in neurons]
        for n in neurons:
            self.check_layers(n.site, [n.layer])
            width = self.site_width(n.site, n.layer)
            if n.index >= width:
                raise ValueError(
                    f"neuron {n} is out of range: site {n.site!r} has {width} neurons per layer (0..{width - 1})"
                )
        return neurons

    # ---------------------------------------------------------------------------------- tokenization
    def _check_tokenizer(self):
        tok = self.tokenizer
        if tok is None:
            raise ValueError(f"{self.name} has no tokenizer; pass one when building the model")
        if not getattr(tok, "is_fast", False):
            raise ValueError(
                f"tokenizer {type(tok).__name__} gives no character offsets (not a 'fast' tokenizer); "
                "word alignment needs return_offsets_mapping: load it with AutoTokenizer.from_pretrained(..., use_fast=True)"
            )
        return tok

    @property
    def pad_token_id(self) -> int:
        tok = self._check_tokenizer()
        for cand in (tok.pad_token_id, tok.eos_token_id, tok.bos_token_id):
            if cand is not None:
                return int(cand)
        return 0

    def tokenize_words(self, words: Sequence[str]) -> TokenizedSentence:
        """Tokenize one pre-split sentence; each token is mapped to the word whose characters it covers."""
        return self.tokenize_sentences([words])[0]

    def tokenize_sentences(self, sentences: Sequence[Sequence[str]]) -> list[TokenizedSentence]:
        """Tokenize pre-split sentences in one tokenizer call (specials and BOS as the model expects).

        Words are joined with single spaces and each token is assigned to the word containing its last
        character, from the tokenizer's character offsets; specials, BOS and whitespace tokens map to -1.
        """
        tok = self._check_tokenizer()
        for i, words in enumerate(sentences):
            if len(words) == 0:
                raise ValueError(f"sentence {i} is empty: cannot tokenize a sentence without words")
        texts = [" ".join(words) for words in sentences]
        enc = tok(texts, add_special_tokens=True, return_offsets_mapping=True, return_special_tokens_mask=True)
        # one vectorized pass over the whole batch: global character positions of words and tokens
        n_tok = np.fromiter((len(x) for x in enc["input_ids"]), dtype=np.int64, count=len(texts))
        n_words = np.fromiter((len(w) for w in sentences), dtype=np.int64, count=len(texts))
        text_base = np.concatenate([[0], np.cumsum([len(t) + 1 for t in texts])[:-1]]).astype(np.int64)
        lengths = np.fromiter((len(w) for words in sentences for w in words), dtype=np.int64, count=int(n_words.sum()))
        sent_of_word = np.repeat(np.arange(len(texts)), n_words)
        word_base = np.concatenate([[0], np.cumsum(n_words)[:-1]])
        within = np.cumsum(lengths + 1) - (lengths + 1)  # start of each word counted over all words
        starts = within - (within[word_base][sent_of_word]) + text_base[sent_of_word]
        ends = starts + lengths
        ids = np.fromiter((i for x in enc["input_ids"] for i in x), dtype=np.int64, count=int(n_tok.sum()))
        offsets = np.asarray([o for x in enc["offset_mapping"] for o in x], dtype=np.int64).reshape(-1, 2)
        special = np.fromiter((m for x in enc["special_tokens_mask"] for m in x), dtype=bool, count=len(ids))
        sent_of_tok = np.repeat(np.arange(len(texts)), n_tok)
        last_char = offsets[:, 1] - 1 + text_base[sent_of_tok]
        word = np.searchsorted(starts, last_char, side="right") - 1  # global word index
        valid = (~special) & (offsets[:, 1] > offsets[:, 0]) & (word >= 0)
        word_c = np.clip(word, 0, max(len(starts) - 1, 0))
        valid &= (last_char < ends[word_c]) & (sent_of_word[word_c] == sent_of_tok)
        local = np.where(valid, word - word_base[sent_of_tok], -1)
        bos = tok.bos_token_id
        out = []
        bounds = np.concatenate([[0], np.cumsum(n_tok)])
        for i in range(len(texts)):
            sid, sword = ids[bounds[i]:bounds[i + 1]], local[bounds[i]:bounds[i + 1]]
            if self.prepend_bos and bos is not None and (len(sid) == 0 or sid[0] != bos):
                sid = np.concatenate([[bos], sid])
                sword = np.concatenate([[-1], sword])
            out.append(TokenizedSentence(sid, sword, int(n_words[i])))
        return out

    def tokenize_checked(self, sentences: Sequence, long_sentences: str = "error"
                         ) -> tuple[list[TokenizedSentence], list[int]]:
        """Tokenize corpus sentences (objects with ``.words`` and ``.id``) and check each against the model.

        Every word must produce at least one token (``ValueError`` naming sentence and word). A sentence over the
        context is never truncated: ``long_sentences="error"`` raises :class:`LongSentenceError` naming it;
        ``"skip"`` and ``"keep"`` return it and list its index in the second return value (the caller skips it
        or splits it into windows).
        """
        if long_sentences not in ("error", "skip", "keep", "window"):
            raise ValueError(f"long_sentences must be 'error', 'window' or 'skip', got {long_sentences!r}")
        tokenized = self.tokenize_sentences([s.words for s in sentences])
        too_long: list[int] = []
        for index, (sent, tok) in enumerate(zip(sentences, tokenized)):
            missing = np.bincount(tok.word_of_token[tok.word_of_token >= 0], minlength=len(sent.words)) == 0
            if missing.any():
                j = int(np.argmax(missing))
                raise ValueError(f"sentence {sent.id!r}: word {j} ({sent.words[j]!r}) produced no token "
                                 f"with this tokenizer; remove or replace it")
            if len(tok) > self.n_ctx:
                if long_sentences == "error":
                    raise LongSentenceError(
                        f"sentence {sent.id!r} has {len(tok)} tokens but {self.name} has a context of "
                        f"{self.n_ctx}; pass long_sentences='window' to split it into windows, or 'skip'")
                too_long.append(index)
        return tokenized, too_long

    def collate(self, sentences: Sequence[TokenizedSentence]) -> Batch:
        """Right-pad tokenized sentences into one batch on the model's device."""
        length = max(len(s) for s in sentences)
        ids = np.full((len(sentences), length), self.pad_token_id, dtype=np.int64)
        mask = np.zeros((len(sentences), length), dtype=np.int64)
        word = np.full((len(sentences), length), -1, dtype=np.int64)
        for row, s in enumerate(sentences):
            ids[row, : len(s)] = s.input_ids
            mask[row, : len(s)] = 1
            word[row, : len(s)] = s.word_of_token
        device = self.input_device
        return Batch(torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device),
                     torch.from_numpy(word).to(device), padded=bool((mask == 0).any()))

    # --------------------------------------------------------------------------------------- running
    def forward(
        self,
        batch: "Batch | torch.Tensor",
        fwd_hooks: FwdHooks = (),
        stop_at_layer: int | None = None,
        return_type: str | None = "logits",
        **kwargs,
    ):
        """Run the model with ``fwd_hooks`` (removed afterwards, also on errors).

        ``stop_at_layer=L`` has TransformerLens's meaning (exclusive): blocks ``0 .. L-1`` run, then the pass
        ends and returns None; later blocks and the unembedding or MLM head never run (``0``: embeddings only).
        Padding is masked with the batch's attention mask.
        """
        hooks = list(fwd_hooks)
        if stop_at_layer is not None:
            hooks.append((self.stop_hook_name(stop_at_layer), _raise_stop))
            return_type = None
        if isinstance(batch, Batch):
            tokens, mask = batch.input_ids, (batch.attention_mask if batch.padded else None)
        else:  # a caller-supplied mask is used as given (checking it would cost a device sync)
            tokens, mask = batch, kwargs.pop("attention_mask", None)
        try:
            with self.hooks(hooks):
                return self.model(tokens, return_type=return_type, attention_mask=mask, **kwargs)
        except _StopForward:
            return None

    def stop_hook_name(self, stop_at_layer: int) -> str:
        """The hook after which a pass with ``stop_at_layer`` ends (``0``: before the first block)."""
        if not 0 <= stop_at_layer <= self.n_layers:
            raise ValueError(f"stop_at_layer={stop_at_layer} is outside 0..{self.n_layers} for {self.name}")
        if stop_at_layer == 0:
            return hook_name("resid.pre", 0)
        return hook_name("resid.post", stop_at_layer - 1)

    @contextlib.contextmanager
    def hooks(self, fwd_hooks: FwdHooks) -> Iterator[None]:
        """Context manager that adds ``(hook_name, fn)`` pairs and always removes them, even on errors.

        Uses the model's own ``hooks`` context, so hooks a user added outside it stay where they are.
        """
        fwd_hooks = list(fwd_hooks)
        for name, _ in fwd_hooks:
            self.check_hook(name)
        with self.model.hooks(fwd_hooks=fwd_hooks):
            yield

    # ----------------------------------------------------------------------------------- embeddings
    @property
    def W_E(self) -> torch.Tensor:
        """Token embedding matrix [d_vocab, d_model]."""
        return self.model.W_E

    @property
    def token_embedding_hook(self) -> str:
        """Hook whose output is the token embeddings alone (before positions, token types and layer norm)."""
        for name in ("embed.hook_out", "hook_embed"):
            if name in self.model.hook_dict:
                return name
        raise ValueError(f"{self.name} exposes no token-embedding hook point (looked for embed.hook_out, hook_embed)")
