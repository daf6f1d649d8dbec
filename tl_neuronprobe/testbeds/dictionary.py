"""A planted dictionary: SAE latents with known meaning over the planted model, so every stage is checked on latents
against ground truth.

:func:`planted_dictionary` builds a ReLU "SAE" at the planted model's last ``mlp.post`` whose decoder rows are an
orthonormal basis of the neuron space: latent 0 reads the *used* Number neuron, latent 1 the *unused* Number
neuron, latent 2 the trigger neuron (fires on "cabinet"), latent 3 the NOUN neuron, and the other latents are a
seeded random rotation of the remaining neurons (so the other planted neurons, the decoys among them, are smeared
over many latents). Each latent is ``relu((x - b_dec) . u_i + b_enc_i)`` with ``b_dec`` the corpus mean and
``b_enc_i`` lifting the latent's smallest corpus value to 0, so a latent is 0 at the bottom of its range, and
zeroing it moves the activation along ``u_i`` only (the reconstruction error kept). ``dictionary.meta["planted"]``
names the latents (``L1.S0``, ...). :func:`random_dictionary` is the control: the same construction on a random
basis, where no latent is a planted neuron.

:func:`planted_transcoder` is a transcoder of the planted model's last MLP: it reads the MLP's normalized input
(``ln2.hook_normalized``) and writes the MLP's output (``hook_mlp_out``) with the MLP's own weights and a ReLU in
place of GELU, so latent ``i`` is neuron ``i`` (``L1.T5`` the used Number neuron, ``L1.T11`` the unused one: its
decoder row is zero).
"""

from __future__ import annotations

import numpy as np
import torch

from ..core.units import Dictionary
from ..data.corpus import Corpus

__all__ = ["planted_dictionary", "random_dictionary", "planted_transcoder", "PLANTED_LATENTS"]

#: latent index -> (what it reads: the planted neuron's index in the last layer, what it is)
PLANTED_LATENTS = {0: (5, "used Number"), 1: (11, "unused Number"), 2: (57, "trigger 'cabinet'"), 3: (30, "NOUN")}


def _basis(width: int, fixed: list[int], seed: int) -> np.ndarray:
    """Rows: unit vectors ``e_j`` for ``fixed`` first, then a seeded random orthonormal basis of the rest."""
    rng = np.random.default_rng(seed)
    rest = [j for j in range(width) if j not in fixed]
    Q, _ = np.linalg.qr(rng.normal(size=(len(rest), len(rest))))
    U = np.zeros((width, width))
    for i, j in enumerate(fixed):
        U[i, j] = 1.0
    U[len(fixed):, rest] = Q.T
    return U


def _fit(model, corpus: Corpus, U: np.ndarray, layer: int, name: str, meta: dict) -> Dictionary:
    from ..data.extraction import ExtractConfig, extract

    acts = extract(model, corpus, ExtractConfig(layers=(layer,)), progress=False)
    X = acts.X.double().numpy()
    mean = X.mean(0)
    proj = (X - mean) @ U.T
    b_enc = -proj.min(0)
    hook = f"blocks.{layer}.mlp.hook_post"
    t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32)  # noqa: E731
    d = Dictionary(t(U.T), t(b_enc), t(U), t(mean), hook, kind="sae", activation="relu")
    d.meta.update(meta, name=name)
    return d


def planted_dictionary(model, corpus: Corpus | None = None, seed: int = 0) -> Dictionary:
    """The planted dictionary of ``model`` (a :func:`~tl_neuronprobe.testbeds.planted.planted_model`), its biases
    set on ``corpus`` (default: 300 planted sentences). ``meta["planted"]``: latent name -> what it reads."""
    from .planted import planted_corpus

    corpus = planted_corpus(300, seed=seed) if corpus is None else corpus
    layer = max(n.layer for n in model.planted["Number"])
    width = int(model.cfg.d_mlp)
    U = _basis(width, [j for j, _ in PLANTED_LATENTS.values()], seed)
    meta = {"planted": {f"L{layer}.S{i}": what for i, (_, what) in PLANTED_LATENTS.items()},
            "neurons": {f"L{layer}.S{i}": f"L{layer}.N{j}" for i, (j, _) in PLANTED_LATENTS.items()}}
    return _fit(model, corpus, U, layer, "planted", meta)


def random_dictionary(model, corpus: Corpus | None = None, seed: int = 1) -> Dictionary:
    """The control: the planted dictionary's construction on a seeded random orthonormal basis (no latent reads
    one planted neuron alone)."""
    from .planted import planted_corpus

    corpus = planted_corpus(300, seed=0) if corpus is None else corpus
    layer = max(n.layer for n in model.planted["Number"])
    U = _basis(int(model.cfg.d_mlp), [], seed)
    return _fit(model, corpus, U, layer, "random", {"planted": {}})


def planted_transcoder(model, seed: int = 0) -> Dictionary:
    """The planted model's last MLP as a transcoder (see the module docstring); ``seed`` must be the one the
    planted model was built with (its weights are rebuilt from it)."""
    from .planted import planted_weights

    layer = max(n.layer for n in model.planted["Number"])
    w, _, _ = planted_weights(seed=seed)
    f = lambda name: torch.as_tensor(np.asarray(w[f"blocks.{layer}.{name}"]), dtype=torch.float32)  # noqa: E731
    W_in, g, beta = f("mlp.W_in"), f("ln2.w"), f("ln2.b")
    d = Dictionary(g[:, None] * W_in, beta @ W_in + f("mlp.b_in"), f("mlp.W_out"), f("mlp.b_out"),
                   f"blocks.{layer}.ln2.hook_normalized", kind="transcoder", activation="relu",
                   out_hook=f"blocks.{layer}.hook_mlp_out", apply_b_dec_to_input=False)
    d.meta.update(name="planted transcoder")
    return d
