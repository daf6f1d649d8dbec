"""Units beyond neurons: dictionaries of directions read at a hook point and written back through a decoder.

A :class:`Dictionary` is *where* (a TransformerLens hook point) plus *how to read* (an encoder
``f(x) = act(W_enc (x - b_dec) + b_enc)`` with ReLU, JumpReLU or TopK for a sparse autoencoder; a transcoder
reads at its input hook; a set of probe or steering directions is a plain projection) plus *how to write back*
(editing latent ``i`` by ``dz`` moves the hook's value by ``dz * W_dec[i]``, the reconstruction error kept).
Its units are named like neurons, by layer and index, with a letter for the kind: ``L3.S1207`` (an SAE latent),
``L3.T12`` (a transcoder latent), ``L3.D0`` (a direction), beside ``L3.N1207`` (an MLP neuron).

A dictionary is *registered* (:func:`register`, or the :func:`using` context manager) under its site (``"sae"``,
``"transcoder"``, ``"directions"``, or a name of its own such as ``"sae.resid"``) and layer; from then on every
stage reads and edits its units through the names, as it does neurons: ``ExtractConfig(site="sae", layers=3)``
reads the latents, ``Zero().bind(model, ["L3.S1207"])`` ablates one through the decoder.

Loading and saving use SAELens's on-disk layout (``cfg.json`` + ``sae_weights.safetensors``); a live
``sae_lens.SAE`` converts with :func:`from_sae_lens`. Training a small SAE: :func:`train_sae`.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

__all__ = ["Dictionary", "KINDS", "register", "unregister", "using", "registered", "registered_layers",
           "is_unit_site", "unit_letter", "site_of_letter", "load", "save", "from_sae_lens", "from_directions",
           "train_sae"]

#: kind of dictionary -> the letter its units print with (``L3.S1207``)
KINDS: dict[str, str] = {"sae": "S", "transcoder": "T", "directions": "D"}
ACTIVATIONS = ("relu", "jumprelu", "topk", "identity")
WEIGHTS_FILE, CONFIG_FILE = "sae_weights.safetensors", "cfg.json"
_SITE = re.compile(r"^(sae|transcoder|directions)(\.[\w.]+)?$")
_BLOCK = re.compile(r"blocks\.(\d+)\.")


def is_unit_site(site: str) -> bool:
    """Whether ``site`` names a dictionary's units (``"sae"``, ``"transcoder"``, ``"directions"``, or one of them
    followed by ``.name``) rather than a hook site of the model."""
    return bool(_SITE.match(str(site)))


def unit_letter(site: str) -> str:
    """The letter a site's units print with: ``N`` for model sites, ``S`` / ``T`` / ``D`` for dictionaries."""
    m = _SITE.match(str(site))
    return KINDS[m.group(1)] if m else "N"


def site_of_letter(letter: str) -> str | None:
    """The default site of a unit letter (``"S"`` -> ``"sae"``); None for ``N`` (a neuron: its site is a model
    site, ``mlp.post`` unless named)."""
    for kind, let in KINDS.items():
        if let == letter:
            return kind
    return None


@dataclass(eq=False)
class Dictionary:
    """A dictionary of directions at one hook point: its encoder, its decoder and where it reads and writes.

    Parameters
    ----------
    W_enc, b_enc : Tensor
        Encoder ``[d_in, n_units]`` and bias ``[n_units]``.
    W_dec, b_dec : Tensor
        Decoder ``[n_units, d_out]`` and bias ``[d_out]`` (for an SAE ``d_out == d_in``).
    hook : str
        The TransformerLens hook point read, e.g. ``"blocks.3.mlp.hook_post"``.
    kind : {"sae", "transcoder", "directions"}
        What the units are; sets their letter (``S``, ``T``, ``D``) and the default site.
    activation : {"relu", "jumprelu", "topk", "identity"}
        The encoder's nonlinearity (``identity``: a plain projection, for directions).
    threshold : Tensor, optional
        JumpReLU's per-unit threshold ``[n_units]``.
    k : int, optional
        TopK's number of active units per token.
    out_hook : str, optional
        Where the decoder writes (a transcoder reads its MLP's input and writes its output); default ``hook``.
    apply_b_dec_to_input : bool
        Subtract ``b_dec`` from the input before encoding (SAELens's default for SAEs).
    site : str, optional
        The site its units are registered and named under (default: ``kind``; ``"sae.resid"`` for a second SAE
        at the same layers prints ``L3.S12@sae.resid``).

    ``meta`` (not a constructor argument) holds where it came from: ``name``, ``path``, ``model_name``, and for a
    trained one its training figures.
    """

    W_enc: torch.Tensor
    b_enc: torch.Tensor
    W_dec: torch.Tensor
    b_dec: torch.Tensor
    hook: str
    kind: str = "sae"
    activation: str = "relu"
    threshold: "torch.Tensor | None" = None
    k: "int | None" = None
    out_hook: "str | None" = None
    apply_b_dec_to_input: bool = True
    site: str = ""
    meta: dict = field(default_factory=dict, init=False)

    @property
    def name(self) -> str:
        return str(self.meta.get("name") or "")

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {sorted(KINDS)}, got {self.kind!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        self.site = self.site or self.kind
        if not is_unit_site(self.site) or unit_letter(self.site) != KINDS[self.kind]:
            raise ValueError(f"site {self.site!r} does not fit kind {self.kind!r}: use {self.kind!r} or "
                             f"'{self.kind}.<name>'")
        for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
            t = torch.as_tensor(getattr(self, name))
            if not bool(torch.isfinite(t).all()):
                raise ValueError(f"dictionary {self.name or self.hook}: {name} contains NaN or inf")
            setattr(self, name, t)
        d_in, n = self.W_enc.shape
        if tuple(self.b_enc.shape) != (n,) or self.W_dec.shape[0] != n or tuple(self.b_dec.shape) != (
                self.W_dec.shape[1],):
            raise ValueError(f"dictionary {self.name or self.hook}: shapes do not fit: W_enc {tuple(self.W_enc.shape)}, "
                             f"b_enc {tuple(self.b_enc.shape)}, W_dec {tuple(self.W_dec.shape)}, "
                             f"b_dec {tuple(self.b_dec.shape)}")
        if self.apply_b_dec_to_input and self.W_dec.shape[1] != d_in:
            raise ValueError("apply_b_dec_to_input needs d_out == d_in (a transcoder sets it False)")
        if self.activation == "jumprelu":
            if self.threshold is None or tuple(torch.as_tensor(self.threshold).shape) != (n,):
                raise ValueError(f"a JumpReLU dictionary needs threshold of shape [{n}]")
            self.threshold = torch.as_tensor(self.threshold)
        if self.activation == "topk" and not (self.k and 0 < int(self.k) <= n):
            raise ValueError(f"a TopK dictionary needs 1 <= k <= {n}, got k={self.k}")
        if not _BLOCK.match(self.hook) or (self.out_hook is not None and not _BLOCK.match(self.out_hook)):
            raise ValueError(f"hook {self.hook!r} (out_hook {self.out_hook!r}) is not inside a block "
                             "('blocks.<layer>. ...')")
        if self.out_hook is not None and self.out_hook != self.hook and self.kind != "transcoder":
            raise ValueError("only a transcoder writes to another hook than it reads")

    # ------------------------------------------------------------------------------------------- shape
    @property
    def n_units(self) -> int:
        return int(self.W_enc.shape[1])

    @property
    def d_in(self) -> int:
        return int(self.W_enc.shape[0])

    @property
    def layer(self) -> int:
        """The block the dictionary reads in."""
        return int(_BLOCK.match(self.hook).group(1))

    @property
    def write_hook(self) -> str:
        """The hook point its decoder writes (``out_hook``, else ``hook``)."""
        return self.out_hook or self.hook

    def to(self, device: "str | torch.device | None" = None, dtype: "torch.dtype | None" = None) -> "Dictionary":
        """Move the tensors (in place) and return self."""
        for name in ("W_enc", "b_enc", "W_dec", "b_dec", "threshold"):
            t = getattr(self, name)
            if t is not None:
                setattr(self, name, t.to(device=device, dtype=dtype))
        return self

    def _on(self, x: torch.Tensor) -> "Dictionary":
        if self.W_enc.device != x.device or (x.is_floating_point() and self.W_enc.dtype != x.dtype):
            self.to(x.device, x.dtype if x.is_floating_point() else None)
        return self

    # ------------------------------------------------------------------------------------ read / write
    def flat(self, x: torch.Tensor) -> torch.Tensor:
        """A hook's activation with its trailing dimensions flattened to ``d_in`` (``attn.z``: heads x d_head)."""
        if x.shape[-1] == self.d_in:
            return x
        if x.ndim >= 3 and int(np.prod(x.shape[2:])) == self.d_in:
            return x.reshape(*x.shape[:2], self.d_in)
        raise ValueError(f"dictionary at {self.hook} reads width {self.d_in}, got an activation of shape "
                         f"{tuple(x.shape)}")

    def pre(self, x: torch.Tensor) -> torch.Tensor:
        """The pre-activations ``W_enc (x - b_dec) + b_enc``, ``[..., n_units]``."""
        self._on(x)
        x = self.flat(x)
        if self.apply_b_dec_to_input:
            x = x - self.b_dec
        return x @ self.W_enc + self.b_enc

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The units' activations for a hook's activation ``x`` (``[..., d_in]`` or ``[b, p, ...]``)."""
        pre = self.pre(x)
        if self.activation == "identity":
            return pre
        if self.activation == "jumprelu":
            return torch.relu(pre) * (pre > self.threshold)
        if self.activation == "topk":
            values, idx = torch.topk(pre, int(self.k), dim=-1)
            return torch.zeros_like(pre).scatter(-1, idx, torch.relu(values))
        return torch.relu(pre)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The reconstruction ``z W_dec + b_dec``."""
        self._on(z)
        return z @ self.W_dec + self.b_dec

    def shift(self, act: torch.Tensor, cols: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """``act`` (an activation at :attr:`write_hook`) moved by ``delta [..., len(cols)] @ W_dec[cols]``: the
        units ``cols`` changed by ``delta``, everything the dictionary does not explain (its error) kept."""
        self._on(act)
        move = delta.to(act.dtype) @ self.W_dec[cols.to(act.device)]
        return act + move.reshape(act.shape)

    def __repr__(self) -> str:
        extra = f", k={self.k}" if self.activation == "topk" else ""
        return (f"Dictionary({self.kind} {self.name or ''} at {self.hook}: {self.d_in} -> {self.n_units} units, "
                f"{self.activation}{extra}, site {self.site!r})").replace("  ", " ")


# --------------------------------------------------------------------------------------------- registry
_REGISTRY: dict[tuple[str, int], Dictionary] = {}


def register(*dictionaries: Dictionary) -> None:
    """Make each dictionary's units known by name (site and layer); a dictionary already registered at the same
    site and layer is replaced."""
    for d in dictionaries:
        if not isinstance(d, Dictionary):
            raise TypeError(f"register() takes Dictionary objects, got {type(d).__name__}")
        _REGISTRY[(d.site, d.layer)] = d


def unregister(*dictionaries: Dictionary) -> None:
    """Forget these dictionaries (those registered at their site and layer)."""
    for d in dictionaries:
        if _REGISTRY.get((d.site, d.layer)) is d:
            del _REGISTRY[(d.site, d.layer)]


@contextlib.contextmanager
def using(*dictionaries: Dictionary) -> Iterator[None]:
    """Register the dictionaries for the ``with`` block; what was registered before comes back afterwards."""
    before = dict(_REGISTRY)
    register(*dictionaries)
    try:
        yield
    finally:
        _REGISTRY.clear()
        _REGISTRY.update(before)


def registered(site: str, layer: int) -> Dictionary:
    """The dictionary registered at ``site`` and ``layer``; a ``KeyError`` saying how to register one otherwise."""
    try:
        return _REGISTRY[(site, int(layer))]
    except KeyError:
        have = sorted(f"{s}@L{lay}" for s, lay in _REGISTRY)
        raise ValueError(f"no dictionary is registered for site {site!r} at layer {layer} (registered: "
                       f"{have or 'none'}); load one with tnp.units.load(path) and pass it to "
                       "tnp.units.register(...) or `with tnp.units.using(...)`") from None


def registered_layers(site: str) -> list[int]:
    """The layers with a dictionary registered at ``site``, ascending."""
    return sorted(layer for s, layer in _REGISTRY if s == site)


# --------------------------------------------------------------------------------------------- builders
def from_directions(directions: Any, hook: str, site: str = "directions", name: str = "") -> Dictionary:
    """Probe or steering directions ``[n, d]`` at ``hook`` as a dictionary: each unit reads the projection onto
    its (unit-norm) direction, and editing a unit by ``dz`` moves the activation by ``dz`` along it."""
    D = torch.as_tensor(np.asarray(directions, dtype=np.float32) if not isinstance(directions, torch.Tensor)
                        else directions).float()
    if D.ndim != 2:
        raise ValueError(f"directions must be [n_directions, d], got shape {tuple(D.shape)}")
    norms = D.norm(dim=1, keepdim=True)
    if bool((norms == 0).any()):
        raise ValueError(f"directions {torch.nonzero(norms.flatten() == 0).flatten().tolist()} are zero")
    D = D / norms
    d = Dictionary(D.T.contiguous(), torch.zeros(len(D)), D.contiguous(), torch.zeros(D.shape[1]), hook,
                   kind="directions", activation="identity", apply_b_dec_to_input=False, site=site)
    d.meta["name"] = name
    return d


def _architecture(cfg: dict) -> tuple[str, "int | None"]:
    arch = str(cfg.get("architecture", "standard")).lower()
    fn = str(cfg.get("activation_fn_str", cfg.get("activation_fn", "relu")) or "relu").lower()
    kwargs = cfg.get("activation_fn_kwargs") or {}
    k = cfg.get("k", kwargs.get("k"))
    if cfg.get("rescale_acts_by_decoder_norm"):
        raise ValueError("rescale_acts_by_decoder_norm=True is not supported (the latents would be rescaled by "
                         "their decoder norms)")
    if arch in ("topk", "batchtopk") or fn == "topk":
        if k is None:
            raise ValueError("a TopK dictionary's cfg.json gives no k (expected 'k' or activation_fn_kwargs.k)")
        return "topk", int(k)
    if arch == "jumprelu":
        return "jumprelu", None
    if arch in ("standard", "relu", "transcoder", "skip_transcoder") and fn == "relu":
        return "relu", None
    raise ValueError(f"architecture {arch!r} with activation {fn!r} is not supported (standard/ReLU, JumpReLU, "
                     "TopK)")


def load(path: "str | Path", hook: str | None = None, site: str | None = None,
         device: "str | torch.device | None" = None) -> Dictionary:
    """A dictionary from SAELens's on-disk layout: a folder with ``cfg.json`` and ``sae_weights.safetensors``.

    ``cfg.json`` gives ``d_in``, ``d_sae``, the architecture (``standard``, ``jumprelu``, ``topk`` with ``k``),
    ``apply_b_dec_to_input`` and the hook (``hook_name``, or ``metadata.hook_name`` as SAELens 6 writes it;
    ``hook`` overrides it). A transcoder's cfg has ``d_out`` and ``hook_name_out``. Activation normalization
    other than none is refused (it would change what a latent means).
    """
    from safetensors.torch import load_file

    path = Path(path)
    folder = path.parent if path.is_file() else path
    if not (folder / CONFIG_FILE).exists() or not (folder / WEIGHTS_FILE).exists():
        raise FileNotFoundError(f"{folder} is not a dictionary folder: expected {CONFIG_FILE} and {WEIGHTS_FILE} "
                                "(SAELens's layout)")
    try:
        cfg = json.loads((folder / CONFIG_FILE).read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{folder / CONFIG_FILE}: not JSON ({e})") from None
    meta = cfg.get("metadata") or {}
    norm = cfg.get("normalize_activations", "none") or "none"
    if str(norm).lower() not in ("none", "null"):
        raise ValueError(f"{folder / CONFIG_FILE}: normalize_activations={norm!r} is not supported (latents would "
                         "be read from rescaled activations)")
    hook = hook or cfg.get("hook_name") or meta.get("hook_name")
    if not hook:
        raise ValueError(f"{folder / CONFIG_FILE} names no hook (hook_name or metadata.hook_name); pass hook=")
    w = load_file(str(folder / WEIGHTS_FILE), device="cpu")
    missing = [k for k in ("W_enc", "b_enc", "W_dec", "b_dec") if k not in w]
    if missing:
        raise ValueError(f"{folder / WEIGHTS_FILE} lacks {missing}; has {sorted(w)}")
    activation, k = _architecture(cfg)
    threshold = w.get("threshold")
    if activation == "jumprelu" and threshold is None and "log_threshold" in w:
        threshold = w["log_threshold"].exp()
    out_hook = cfg.get("hook_name_out") or meta.get("hook_name_out")
    kind = cfg.get("tnp_kind") or ("transcoder" if out_hook or "d_out" in cfg else "sae")
    for key, want in (("d_in", w["W_enc"].shape[0]), ("d_sae", w["W_enc"].shape[1])):
        if key in cfg and int(cfg[key]) != int(want):
            raise ValueError(f"{folder / CONFIG_FILE}: {key}={cfg[key]} but the weights have {int(want)}")
    d = Dictionary(w["W_enc"].float(), w["b_enc"].float(), w["W_dec"].float(), w["b_dec"].float(), hook,
                   kind=kind, activation=activation, threshold=None if threshold is None else threshold.float(), k=k,
                   out_hook=out_hook, apply_b_dec_to_input=bool(cfg.get("apply_b_dec_to_input", kind == "sae")),
                   site=site or cfg.get("tnp_site") or "")
    d.meta.update(name=str(cfg.get("tnp_name") or folder.name), path=str(folder),
                  model_name=cfg.get("model_name") or meta.get("model_name"))
    return d.to(device) if device is not None else d


def save(d: Dictionary, path: "str | Path", model_name: str | None = None) -> Path:
    """Write ``d`` in SAELens's on-disk layout (``cfg.json`` + ``sae_weights.safetensors``); :func:`load` reads it
    back, and so does ``sae_lens.SAE.load_from_disk`` for ReLU, JumpReLU and TopK SAEs."""
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {n: getattr(d, n).detach().float().cpu().contiguous() for n in ("W_enc", "b_enc", "W_dec", "b_dec")}
    if d.threshold is not None:
        tensors["threshold"] = d.threshold.detach().float().cpu().contiguous()
    save_file(tensors, str(path / WEIGHTS_FILE))
    arch = {"relu": "standard", "jumprelu": "jumprelu", "topk": "topk", "identity": "standard"}[d.activation]
    metadata = {"hook_name": d.hook, "model_name": model_name or d.meta.get("model_name") or "",
                **({"hook_name_out": d.out_hook} if d.out_hook else {})}
    cfg = {"architecture": arch, "d_in": d.d_in, "d_sae": d.n_units, "dtype": "float32", "device": "cpu",
           "apply_b_dec_to_input": bool(d.apply_b_dec_to_input), "normalize_activations": "none",
           "reshape_activations": "none", "metadata": metadata, "hook_name": d.hook,
           "tnp_kind": d.kind, "tnp_site": d.site, "tnp_name": d.name}
    if d.activation == "topk":
        cfg["k"] = int(d.k)
    if d.out_hook:
        cfg.update(d_out=int(d.W_dec.shape[1]), hook_name_out=d.out_hook)
    (path / CONFIG_FILE).write_text(json.dumps(cfg, indent=1))
    return path


def from_sae_lens(sae: Any, site: str | None = None) -> Dictionary:
    """A live ``sae_lens.SAE`` (ReLU, JumpReLU or TopK) as a :class:`Dictionary`: its weights (copied), its hook
    and architecture from ``sae.cfg``."""
    cfg = sae.cfg
    as_dict = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(vars(cfg))
    meta = getattr(cfg, "metadata", None)
    hook = (getattr(meta, "hook_name", None) if meta is not None else None) or as_dict.get("hook_name")
    if not hook:
        raise ValueError("the SAE's cfg names no hook (cfg.metadata.hook_name or cfg.hook_name)")
    arch = sae.cfg.architecture() if callable(getattr(sae.cfg, "architecture", None)) else as_dict.get(
        "architecture", "standard")
    activation, k = _architecture({**as_dict, "architecture": arch})
    threshold = getattr(sae, "threshold", None)
    grab = lambda t: t.detach().float().cpu().clone()  # noqa: E731
    d = Dictionary(grab(sae.W_enc), grab(sae.b_enc), grab(sae.W_dec), grab(sae.b_dec), hook, kind="sae",
                   activation=activation, threshold=None if threshold is None else grab(threshold), k=k,
                   apply_b_dec_to_input=bool(as_dict.get("apply_b_dec_to_input", True)), site=site or "")
    d.meta.update(name="sae_lens", model_name=getattr(meta, "model_name", None))
    return d


# --------------------------------------------------------------------------------------------- training
def train_sae(X: Any, n_units: int, hook: str, k: int = 32, max_steps: int = 2000, batch_size: int = 1024,
              lr: float = 1e-3, seed: int = 0, site: str = "", device: "str | torch.device | None" = None,
              progress: bool = False) -> Dictionary:
    """A TopK sparse autoencoder (Gao et al. 2024) trained on rows ``X [n, d]`` of activations read at ``hook``.

    TopK fixes the number of active latents per row (``k``), so there is no L1 coefficient to tune. Decoder rows
    start as random unit vectors with the encoder their transpose, ``b_dec`` starts at the data mean, the loss is
    the squared reconstruction error, decoder rows are renormalized to unit length after every Adam step, and
    latents that fired on none of the last ``max_steps // 10`` batches get the auxiliary loss of Gao et al. (their
    pre-activations reconstruct the residual error). Seeded: the same ``X`` and seed give the same dictionary.
    Returns it with ``meta["fvu"]`` (fraction of variance unexplained on ``X``) and ``meta["dead"]`` (latents
    never active on ``X``).
    """
    from tqdm.auto import tqdm

    X = torch.as_tensor(np.asarray(X, dtype=np.float32) if not isinstance(X, torch.Tensor) else X).float()
    if X.ndim != 2 or len(X) < 2:
        raise ValueError(f"train_sae needs rows [n >= 2, d], got shape {tuple(X.shape)}")
    if not bool(torch.isfinite(X).all()):
        raise ValueError("train_sae: the activations contain NaN or inf")
    if not 0 < k <= n_units:
        raise ValueError(f"k must be in 1..n_units={n_units}, got {k}")
    device = torch.device(device) if device is not None else X.device
    gen = torch.Generator().manual_seed(seed)
    n, d = X.shape
    W_dec = torch.randn(n_units, d, generator=gen)
    W_dec = W_dec / W_dec.norm(dim=1, keepdim=True)
    params = {"W_enc": W_dec.T.clone(), "b_enc": torch.zeros(n_units), "W_dec": W_dec,
              "b_dec": X.mean(0).clone()}
    params = {key: v.to(device).requires_grad_(True) for key, v in params.items()}
    opt = torch.optim.Adam(params.values(), lr=lr)
    scale = X.var(0).sum().clamp(min=1e-12)
    last_fired = torch.zeros(n_units, dtype=torch.long, device=device)
    dead_after, k_aux = max(max_steps // 10, 1), min(2 * k, n_units)
    for step in tqdm(range(max_steps), disable=not progress, desc="train SAE"):
        rows = torch.randint(0, n, (min(batch_size, n),), generator=gen)
        x = X[rows].to(device)
        pre = (x - params["b_dec"]) @ params["W_enc"] + params["b_enc"]
        values, idx = torch.topk(pre, k, dim=-1)
        z = torch.zeros_like(pre).scatter(-1, idx, torch.relu(values))
        recon = z @ params["W_dec"] + params["b_dec"]
        err = x - recon
        loss = err.pow(2).sum(-1).mean() / scale
        with torch.no_grad():
            last_fired[torch.unique(idx[values > 0])] = step
            dead = (step - last_fired) >= dead_after
        if step >= dead_after and bool(dead.any()):  # one host sync per step: training is not the hot path
            dead_pre = pre.masked_fill(~dead, -torch.inf)
            v, i = torch.topk(dead_pre, min(k_aux, int(dead.sum())), dim=-1)
            z_aux = torch.zeros_like(pre).scatter(-1, i, torch.relu(torch.nan_to_num(v, neginf=0.0)))
            loss = loss + (err.detach() - z_aux @ params["W_dec"]).pow(2).sum(-1).mean() / scale / 32
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            params["W_dec"] /= params["W_dec"].norm(dim=1, keepdim=True).clamp(min=1e-8)
    out = {key: v.detach().cpu() for key, v in params.items()}
    d_ = Dictionary(out["W_enc"], out["b_enc"], out["W_dec"], out["b_dec"], hook, kind="sae", activation="topk",
                    k=k, site=site)
    with torch.no_grad():
        z = torch.cat([d_.encode(X[i:i + 4096]) for i in range(0, n, 4096)])
        resid = torch.cat([X[i:i + 4096] - d_.decode(z[i:i + 4096]) for i in range(0, n, 4096)])
    d_.meta.update(fvu=float(resid.pow(2).sum() / (X - X.mean(0)).pow(2).sum()),
                   dead=int(((z > 0).sum(0) == 0).sum()), l0=float((z > 0).sum(1).float().mean()),
                   max_steps=max_steps, seed=seed, n_rows=n, name="trained")
    return d_
