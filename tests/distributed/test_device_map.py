"""Models placed by a device map: MiniLM loaded through accelerate's ``device_map`` (every module named, on the
CPU; or half its layers offloaded to disk, so hooks read layers whose weights live elsewhere) extracts exactly
what the plain load does."""

import pytest
import torch

import tl_neuronprobe as tnp
from tl_neuronprobe.core.adapter import ModelAdapter
from tl_neuronprobe.data.extraction import ExtractConfig

pytestmark = pytest.mark.minilm


def minilm_map(later: str = "cpu") -> dict:
    """Embeddings and layers 0-2 on the CPU, layers 3-5 on ``later``, the head on the CPU."""
    return {"bert.embeddings": "cpu", **{f"bert.encoder.layer.{i}": "cpu" if i < 3 else later for i in range(6)},
            "cls": "cpu"}


@pytest.fixture(scope="module")
def corpus():
    return tnp.Corpus.load("ud-english:30")


@pytest.mark.parametrize("later", ["cpu", "disk"])
def test_device_map_extracts_what_the_plain_load_does(minilm, corpus, later, tmp_path):
    placed = tnp.models.load("minilm", device_map=minilm_map(later), offload_folder=tmp_path / "offload")
    if later == "disk":  # a real split: accelerate dispatches, layers 3-5 hold no weights until they run
        assert placed.original_model.hf_device_map["bert.encoder.layer.5"] == "disk"
        assert placed.original_model.bert.encoder.layer[5].intermediate.dense.weight.device.type == "meta"
    assert ModelAdapter(placed).input_device == torch.device("cpu")
    for config in (ExtractConfig(), ExtractConfig(site=["mlp.post", "resid.post"], layers=[1, 4], aggregation="mean")):
        got = tnp.extract(placed, corpus, config, progress=False)
        want = tnp.extract(minilm, corpus, config, progress=False)
        assert got.X.device.type == "cpu" and torch.equal(got.X, want.X)


def test_placement_errors_name_the_conflict():
    with pytest.raises(ValueError, match="mutually exclusive"):
        tnp.models.load("minilm", device="cpu", device_map="auto")
    with pytest.raises(ValueError, match="built-in"):
        tnp.models.load("tiny", device_map="auto")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="n_devices=2"):
            tnp.models.load("minilm", n_devices=2)
