"""The README's example runs as written (on fewer sentences), with the new calls only."""

import re
from pathlib import Path

import pytest

import tl_neuronprobe as tnp

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has no python example"
    return blocks[0]


def test_the_readme_example_uses_configs_and_no_removed_call():
    code = readme_example()
    for config in ("ExtractConfig(", "EncodedConfig(", "UsedConfig(", "TextualizeConfig("):
        assert config in code
    for removed in ("site=\"mlp.post\", aggregation", "preset=", "method=", "attrs[", "plot_encoded", "n_steps="):
        assert removed not in code


@pytest.mark.minilm
@pytest.mark.slow
def test_the_readme_example_runs(minilm, monkeypatch, tmp_path):
    code = readme_example().replace('"ud-english:300"', '"ud-english:60"').replace("corpus[:64]", "corpus[:24]")
    assert '"ud-english:60"' in code and "corpus[:24]" in code  # the example still has the sizes this test shrinks
    monkeypatch.setattr(tnp.models, "load", lambda *a, **k: minilm)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, str(README), "exec"), scope)
    assert (tmp_path / "report" / "index.html").exists() and (tmp_path / "encoded_upos.png").stat().st_size > 1000
    assert scope["used"].attribute == "upos" and set(scope["used"].to_frame()["edit"]) == {"zero"}
    assert len(scope["texts"].table) == 2
