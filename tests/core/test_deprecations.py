"""Old names keep working for one release, with a DeprecationWarning that names the new one."""

import importlib
import subprocess
import sys

import pytest

import tl_neuronprobe as tnp


def test_textualize_module_path_warns_and_the_function_survives():
    code = ("import warnings, tl_neuronprobe as tnp\n"
            "f = tnp.textualize\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    from tl_neuronprobe.textualize import corpus_top_windows\n"
            "assert any(issubclass(x.category, DeprecationWarning) and 'textualization' in str(x.message) for x in w)\n"
            "assert callable(tnp.textualize)\n"
            "from tl_neuronprobe.textualization import corpus_top_windows as c2\n"
            "assert corpus_top_windows is c2\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_interventions_set_is_set_values_with_a_warning():
    with pytest.warns(DeprecationWarning, match="set_values"):
        assert tnp.interventions.set is tnp.interventions.set_values
    with pytest.raises(AttributeError):
        tnp.interventions.no_such_edit  # noqa: B018


def test_textualization_is_a_package_and_textualize_a_function():
    mod = importlib.import_module("tl_neuronprobe.textualization")
    assert mod.textualize is tnp.textualize
    assert callable(tnp.textualize) and not isinstance(tnp.textualize, type(mod))
