"""Sites (where in a block we read) and neurons (one coordinate of one site at one layer).

A *site* is a short, model-independent name for a family of TransformerLens hook points, one per layer:
``mlp.post`` is ``blocks.{l}.mlp.hook_post``. A :class:`Neuron` is ``(layer, index, site)``; it prints as
``L3.N1207`` (site ``mlp.post``) or ``L3.N1207@resid.post`` and parses from those or from a hook name with an
index, ``blocks.3.mlp.hook_post:1207``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

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
_SHORT = re.compile(r"^L(\d+)\.N(\d+)(?:@([\w.]+))?$")
_HOOK = re.compile(r"^(blocks\.\d+\.[\w.]+):(\d+)$")


_BLOCK = re.compile(r"blocks\.(\d+)\.")


def check_site(site: str) -> str:
    """Return ``site`` if it is known, else raise a ValueError that lists the known sites."""
    if site not in SITES:
        raise ValueError(f"unknown site {site!r}; known sites: {', '.join(SITES)}")
    return site


def hook_name(site: str, layer: int) -> str:
    """TransformerLens hook name of ``site`` at ``layer``."""
    return SITES[check_site(site)].format(layer=int(layer))


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
        tail = "" if self.site == DEFAULT_SITE else f"@{self.site}"
        return f"L{self.layer}.N{self.index}{tail}"

    @classmethod
    def parse(cls, text: "str | Neuron", site: str | None = None) -> "Neuron":
        """Parse ``L3.N1207``, ``L3.N1207@resid.post`` or ``blocks.3.mlp.hook_post:1207``."""
        if isinstance(text, Neuron):
            return text
        text = text.strip()
        m = _SHORT.match(text)
        if m:
            return cls(int(m.group(1)), int(m.group(2)), m.group(3) or site or DEFAULT_SITE)
        m = _HOOK.match(text)
        if m:
            s, layer = site_of_hook(m.group(1))
            return cls(layer, int(m.group(2)), s)
        raise ValueError(
            f"cannot parse neuron {text!r}; expected 'L3.N1207', 'L3.N1207@resid.post' "
            f"or 'blocks.3.mlp.hook_post:1207'"
        )


def parse_neurons(spec: "str | Iterable[str | Neuron]", site: str | None = None) -> list[Neuron]:
    """Parse a comma-separated string or an iterable of neuron specs."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    return [Neuron.parse(s, site=site) for s in items if not (isinstance(s, str) and not s.strip())]
