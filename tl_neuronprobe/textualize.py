"""Deprecated module path: ``tl_neuronprobe.textualize`` is now :mod:`tl_neuronprobe.textualization`.

The package exports the *function* ``tnp.textualize``; a module of the same name shadowed it. Importing this
path still works for one release (with a ``DeprecationWarning``); the module it installs is callable, so
``tnp.textualize(...)`` keeps working after such an import.
"""

import sys
import types
import warnings

from .textualization import *  # noqa: F401,F403
from .textualization import textualize as _textualize

warnings.warn("the module tl_neuronprobe.textualize is deprecated; import from tl_neuronprobe.textualization "
              "(the function stays tnp.textualize)", DeprecationWarning, stacklevel=2)


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        return _textualize(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
