"""Argument helpers shared by every command: the common flags (defined once) and comma-separated values."""

from __future__ import annotations

import argparse


def common_flags() -> argparse.ArgumentParser:
    """A parent parser with ``--device``, ``--seed`` and ``--no-progress``, for every command that runs a model."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    common.add_argument("--seed", type=int, default=0, help="fixes every random choice")
    common.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return common


def comma_list(text: str | None) -> list[str] | None:
    """``"a, b,"`` -> ``["a", "b"]``; None or empty -> None."""
    items = [x.strip() for x in text.split(",") if x.strip()] if text else []
    return items or None


def comma_ints(text: str | None) -> list[int] | None:
    """``"1,2,5"`` -> ``[1, 2, 5]`` (a ``ValueError`` naming the text otherwise); None or empty -> None."""
    try:
        return [int(x) for x in comma_list(text) or []] or None
    except ValueError:
        raise ValueError(f"expected comma-separated integers, got {text!r}") from None
