"""Sites (where in a block we read) and neurons (one coordinate of one site at one layer).

A *site* is a short, model-independent name for a family of TransformerLens hook points, one per layer:
``mlp.post`` is ``blocks.{l}.mlp.hook_post``. A :class:`Neuron` is ``(layer, index, site)``; it prints as
``L3.N1207`` (site ``mlp.post``) or ``L3.N1207@resid.post`` and parses from those or from a hook name with an
index, ``blocks.3.mlp.hook_post:1207``. Units of a dictionary (:mod:`.units`: SAE and transcoder latents,
directions) are neurons of a dictionary site: ``L3.S1207`` (site ``sae``), ``L3.T12`` (``transcoder``), ``L3.D0``
(``directions``), ``L3.S5@sae.resid`` (a named one); their hook is the registered dictionary's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from . import units as _units

#: site -> hook-name template. ``attn.z`` is flattened from [head, d_head] to head * d_head.
SITES: dict[str, str] = {
    "mlp.post": "blocks.{layer}.mlp.hook_post",
    "mlp.pre": "blocks.{layer}.mlp.hook_pre",
    "resid.pre": "blocks.{layer}.hook_resid_pre",
    "resid.mid": "blocks.{layer}.hook_resid_mid",
    "resid.post": "blocks.{layer}.hook_resid_post",
    "attn.z": "blocks.{layer}.attn.hook_z",
}
DEFAULT_SITE = "mlp.post"

_HOOK_TO_SITE = {
    re.compile(re.escape(tpl).replace(re.escape("{layer}"), r"(\d+)")): site for site, tpl in SITES.items()
}
_SHORT = re.compile(r"^L(\d+)\.([NSTD])(\d+)(?:@([\w.]+))?$")
_HOOK = re.compile(r"^(blocks\.\d+\.[\w.]+):(\d+)$")


_BLOCK = re.compile(r"blocks\.(\d+)\.")


def check_site(site: str) -> str:
    """Return ``site`` if it is known (a model site, or a dictionary site: ``sae``, ``transcoder``,
    ``directions``, optionally ``.name``), else raise a ValueError that lists the known sites."""
    if site not in SITES and not _units.is_unit_site(site):
        raise ValueError(f"unknown site {site!r}; known sites: {', '.join(SITES)}, and dictionary sites "
                         f"{', '.join(_units.KINDS)} (see tl_neuronprobe.units)")
    return site


def hook_name(site: str, layer: int) -> str:
    """TransformerLens hook name of ``site`` at ``layer`` (a dictionary site: the hook its registered dictionary
    reads)."""
    if _units.is_unit_site(check_site(site)):
        return _units.registered(site, layer).hook
    return SITES[site].format(layer=int(layer))


def site_of_hook(name: str) -> tuple[str, int]:
    """Inverse of :func:`hook_name`: ``'blocks.3.mlp.hook_post'`` -> ``('mlp.post', 3)``."""
    for pattern, site in _HOOK_TO_SITE.items():
        m = pattern.fullmatch(name)
        if m:
            return site, int(m.group(1))
    raise ValueError(
        f"hook {name!r} is not one of the supported sites; supported hook patterns: "
        + ", ".join(SITES.values())
    )


def layer_of_hook(name: str) -> int:
    """The block a hook name sits in: ``'blocks.3.attn.hook_z'`` -> 3; -1 for hooks before the first block."""
    m = _BLOCK.match(name)
    return int(m.group(1)) if m else -1


@dataclass(frozen=True, order=True)
class Neuron:
    """One neuron: coordinate ``index`` of ``site`` at ``layer``."""

    layer: int
    index: int
    site: str = DEFAULT_SITE

    def __post_init__(self) -> None:
        check_site(self.site)
        if self.layer < 0 or self.index < 0:
            raise ValueError(f"layer and index must be non-negative, got layer={self.layer}, index={self.index}")

    @property
    def hook_name(self) -> str:
        return hook_name(self.site, self.layer)

    def __copy__(self) -> "Neuron":
        return self

    def __deepcopy__(self, memo) -> "Neuron":  # immutable: pandas deep-copies table.attrs on every operation
        return self

    def __str__(self) -> str:
        letter = _units.unit_letter(self.site)
        default = _units.site_of_letter(letter) or DEFAULT_SITE
        tail = "" if self.site == default else f"@{self.site}"
        return f"L{self.layer}.{letter}{self.index}{tail}"

    @property
    def is_latent(self) -> bool:
        """Whether this is a dictionary's unit (an SAE or transcoder latent, a direction) and not a neuron."""
        return _units.is_unit_site(self.site)

    @classmethod
    def parse(cls, text: "str | Neuron", site: str | None = None) -> "Neuron":
        """Parse ``L3.N1207``, ``L3.N1207@resid.post``, ``blocks.3.mlp.hook_post:1207``, or a dictionary's unit
        ``L3.S1207`` / ``L3.T12`` / ``L3.D0`` / ``L3.S5@sae.resid``."""
        if isinstance(text, Neuron):
            return text
        text = text.strip()
        m = _SHORT.match(text)
        if m:
            letter, named = m.group(2), m.group(4)
            if letter == "N":
                chosen = named or site or DEFAULT_SITE
                if _units.is_unit_site(chosen):
                    raise ValueError(f"{text!r}: {chosen!r} is a dictionary site; its units are named "
                                     f"'L{m.group(1)}.{_units.unit_letter(chosen)}{m.group(3)}'")
                return cls(int(m.group(1)), int(m.group(3)), chosen)
            chosen = named or (site if site is not None and _units.unit_letter(site) == letter else None)
            chosen = chosen or _units.site_of_letter(letter)
            if _units.unit_letter(chosen) != letter:
                raise ValueError(f"{text!r}: site {chosen!r} does not hold {letter} units")
            return cls(int(m.group(1)), int(m.group(3)), chosen)
        m = _HOOK.match(text)
        if m:
            s, layer = site_of_hook(m.group(1))
            return cls(layer, int(m.group(2)), s)
        raise ValueError(
            f"cannot parse neuron {text!r}; expected 'L3.N1207', 'L3.N1207@resid.post', "
            f"'blocks.3.mlp.hook_post:1207', or a dictionary unit 'L3.S1207' / 'L3.T12' / 'L3.D0'"
        )


def parse_neurons(spec: "str | Iterable[str | Neuron]", site: str | None = None) -> list[Neuron]:
    """Parse a comma-separated string or an iterable of neuron specs."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    return [Neuron.parse(s, site=site) for s in items if not (isinstance(s, str) and not s.strip())]
