"""Command line: argument parsing only; every command calls one function of :mod:`tl_neuronprobe.workflows`."""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
