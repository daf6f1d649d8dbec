"""``ExtractConfig`` and the ``extract`` job: validated on construction, JSON round trip, re-run from summary.json."""

import json

import pytest
import torch

import tl_neuronprobe as tnp
from tl_neuronprobe.core.config import Config, read_summary
from tl_neuronprobe.data.extraction import ExtractConfig
from tl_neuronprobe.workflows import extract_job, rerun


def test_config_stores_dtype_by_name_and_round_trips():
    config = ExtractConfig(site=["mlp.post", "resid.post"], layers=[0, 1], dtype=torch.float16)
    assert config.dtype == "float16" and config.site == ("mlp.post", "resid.post") and config.layers == (0, 1)
    assert Config.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert ExtractConfig(dtype="bfloat16") == ExtractConfig(dtype=torch.bfloat16)


@pytest.mark.parametrize("bad, match", [(dict(aggregation="max"), "aggregation"), (dict(dtype="int8"), "dtype"),
                                        (dict(long_sentences="cut"), "long_sentences"),
                                        (dict(batch_size=0), "batch_size"), (dict(sentences_per_block=0), "sentences")])
def test_config_names_the_bad_field(bad, match):
    with pytest.raises(ValueError, match=match):
        ExtractConfig(**bad)


def test_extract_takes_a_config_and_nothing_else(planted, planted_corpus):
    with pytest.raises(TypeError, match="ExtractConfig"):
        tnp.extract(planted, planted_corpus[:5], {"layers": [1]}, progress=False)
    with pytest.raises(TypeError):
        tnp.extract(planted, planted_corpus[:5], layers=[1], progress=False)  # the old keywords are gone


def test_extract_job_writes_a_summary_that_reruns(tmp_path):
    config = ExtractConfig(layers=(1,), aggregation="mean", sentences_per_block=7)
    acts = extract_job("planted", "synthetic:20", tmp_path / "acts", config, seed=3, progress=False)
    stage, inputs, again = read_summary(tmp_path / "acts" / "summary.json")
    assert stage == "extract" and again == config
    assert inputs == dict(model="planted", corpus="synthetic:20", out_dir=str(tmp_path / "acts"), seed=3,
                          device_map=None, n_devices=None, dictionaries=[])
    second = rerun(tmp_path / "acts" / "summary.json", tmp_path / "again", progress=False)
    assert torch.equal(second.X, acts.X) and second.neurons == acts.neurons
