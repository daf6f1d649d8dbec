"""Textualization: inputs optimized to drive neurons, and the corpus windows they are compared with."""

from ._textualize import *  # noqa: F401,F403
