"""Command line: argument parsing only; every command calls one library function."""

from .main import build_parser, main  # noqa: F401
