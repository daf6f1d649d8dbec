"""Interventions: activation-patching edits on neuron subsets and the readouts that measure their effect."""

import warnings as _warnings

from ._edits import *  # noqa: F401,F403
from ._edits import __all__  # noqa: F401


def __getattr__(name: str):
    if name == "set":  # the old name shadowed the builtin inside the module; kept for one release
        _warnings.warn("tnp.interventions.set is deprecated; use tnp.interventions.set_values",
                       DeprecationWarning, stacklevel=2)
        return set_values  # noqa: F405
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
