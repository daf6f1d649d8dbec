"""The subpackage and the function of the same name stay apart (the deprecation shims are gone: issue 22)."""

import importlib

import tl_neuronprobe as tnp


def test_textualization_is_a_package_and_textualize_a_function():
    mod = importlib.import_module("tl_neuronprobe.textualization")
    assert mod.textualize is tnp.textualize
    assert callable(tnp.textualize) and not isinstance(tnp.textualize, type(mod))
