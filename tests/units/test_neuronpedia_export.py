"""The Neuronpedia export (issue 24, part 5), validated against a schema written from Neuronpedia's public field
list (the record names and each field's JSON type), for neurons and the planted dictionary's latents."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import torch

import tl_neuronprobe as tnp
from tl_neuronprobe.core import units
from tl_neuronprobe.descriptions import DescribeConfig, Search
from tl_neuronprobe.testbeds.dictionary import planted_dictionary

S, N, F, B, L, D = str, (int, float), float, bool, list, dict
OPT = type(None)
#: record -> field -> JSON types allowed (Neuronpedia's import records; None where the field is optional)
SCHEMA = {
    "feature": {"modelId": S, "layer": S, "index": S, "creatorId": (S, OPT), "createdAt": S, "maxActApprox": (N, OPT),
                "hasVector": B, "vector": L, "vectorLabel": (S, OPT), "vectorDefaultSteerStrength": (N, OPT),
                "hookName": (S, OPT), "topkCosSimIndices": L, "topkCosSimValues": L,
                "neuron_alignment_indices": L, "neuron_alignment_values": L, "neuron_alignment_l1": L,
                "correlated_neurons_indices": L, "correlated_neurons_pearson": L, "correlated_neurons_l1": L,
                "correlated_features_indices": L, "correlated_features_pearson": L, "correlated_features_l1": L,
                "neg_str": L, "neg_values": L, "pos_str": L, "pos_values": L, "frac_nonzero": N,
                "freq_hist_data_bar_heights": L, "freq_hist_data_bar_values": L, "logits_hist_data_bar_heights": L,
                "logits_hist_data_bar_values": L, "decoder_weights_dist": L},
    "activation": {"id": S, "tokens": L, "index": S, "layer": S, "modelId": S, "maxValue": N,
                   "maxValueTokenIndex": int, "minValue": N, "values": L, "creatorId": S, "dataSource": (S, OPT),
                   "dataIndex": (S, OPT), "dfaValues": L, "dfaTargetIndex": (int, OPT), "dfaMaxValue": (N, OPT),
                   "createdAt": S, "lossValues": L, "logitContributions": (S, OPT), "binMin": (N, OPT),
                   "binMax": (N, OPT), "binContains": (N, OPT), "qualifyingTokenIndex": (int, OPT)},
    "explanation": {"id": S, "modelId": S, "layer": S, "index": S, "description": S, "authorId": S,
                    "embedding": (L, OPT), "triggeredById": (S, OPT), "typeName": (S, OPT),
                    "explanationModelName": (S, OPT), "notes": (S, OPT), "createdAt": S},
    "source": {"id": S, "modelId": S, "setName": S, "creatorId": S, "hasDashboards": B, "inferenceEnabled": B,
               "inferenceHosts": L, "saelensConfig": (S, OPT), "saelensRelease": (S, OPT), "saelensSaeId": (S, OPT),
               "hfRepoId": (S, OPT), "hfFolderId": (S, OPT), "visibility": S, "defaultOfModelId": (S, OPT),
               "hasUmap": B, "hasUmapLogSparsity": B, "hasUmapClusters": B, "num_prompts": (int, OPT),
               "num_tokens_in_prompt": (int, OPT), "dataset": (S, OPT), "notes": (S, OPT), "createdAt": S},
}


def _check(record: dict, kind: str) -> None:
    schema = SCHEMA[kind]
    assert set(record) == set(schema), (kind, set(record) ^ set(schema))
    for key, types in schema.items():
        assert isinstance(record[key], types), (kind, key, record[key])


def _lines(path):
    return [json.loads(line) for line in gzip.decompress(path.read_bytes()).decode().splitlines()]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = tnp.testing.planted_model()
    corpus = tnp.testing.planted_corpus(200, seed=3)
    d = planted_dictionary(model)
    out = tmp_path_factory.mktemp("np")
    with units.using(d):
        acts = tnp.extract(model, corpus, tnp.ExtractConfig(site=("mlp.post", "sae"), layers=(1,)), progress=False)
        desc = tnp.describe(acts, corpus, config=DescribeConfig(sources=("annotations", "surface"),
                                                                search=Search(max_length=1, levels=())))
        root = tnp.export.neuronpedia(acts, out, desc, model_id="planted", batch_size=40, n_top=5)
    return root


def test_layout_and_every_record_fits_the_schema(exported):
    assert sorted(p.name for p in exported.iterdir()) == ["1-tnp-mlp-post", "1-tnp-sae"]
    for source in exported.iterdir():
        for name in ("release", "model", "sourceset", "source"):
            assert len((source / f"{name}.jsonl").read_text().splitlines()) == 1
        _check(json.loads((source / "source.jsonl").read_text()), "source")
        feats = [r for p in sorted((source / "features").glob("batch-*.jsonl.gz")) for r in _lines(p)]
        assert len(feats) == 64 and len(list((source / "features").glob("*.gz"))) == 2  # 40 + 24 per batch
        for kind in ("features", "activations", "explanations"):
            for p in (source / kind).glob("batch-*.jsonl.gz"):
                for r in _lines(p):
                    _check(r, kind[:-1])


def test_latent_records_carry_what_the_planted_latents_are(exported):
    src = exported / "1-tnp-sae"
    feats = {r["index"]: r for p in (src / "features").glob("*.gz") for r in _lines(p)}
    assert feats["2"]["neuron_alignment_indices"][0] == 57  # the trigger latent is the trigger neuron's direction
    assert feats["0"]["neuron_alignment_indices"][0] == 5 and feats["0"]["hookName"] == "blocks.1.mlp.hook_post"
    acts = [r for p in (src / "activations").glob("*.gz") for r in _lines(p) if r["index"] == "2"]
    top = [r for r in acts if r["binMin"] is None]
    strong = [r for r in top if r["maxValue"] > 0.5 * max(t["maxValue"] for t in top)]
    assert len(top) == 5 and strong and all(r["tokens"][r["maxValueTokenIndex"]] == "cabinet" for r in strong)
    assert all("cabinet" not in r["tokens"] for r in top if r not in strong)  # the rest: sentences without it
    assert any(r["binMin"] is not None for r in acts)  # quantile-bin samples beside the top
    expl = {r["index"]: r for p in (src / "explanations").glob("*.gz") for r in _lines(p)}
    assert "cabinet" in expl["2"]["description"] and "test_f1" in json.loads(expl["2"]["notes"])


def test_logit_fields_are_each_units_direct_effect_through_the_unembedding(tmp_path):
    """The used Number neuron (and the latent reading it) raise singular forms and lower plural ones, with the
    values of ``W_out[5] @ W_U`` computed from the planted weights; the unused neuron's latent (a zero write) and an
    encoder leave the fields empty."""
    from tl_neuronprobe.testbeds.planted import planted_weights

    model = tnp.testing.planted_model()
    corpus = tnp.testing.planted_corpus(200, seed=3)
    with units.using(planted_dictionary(model)):
        acts = tnp.extract(model, corpus[:60], tnp.ExtractConfig(site=("mlp.post", "sae"), layers=(1,)),
                           progress=False)
        root = tnp.export.neuronpedia(acts, tmp_path, model=model, model_id="planted", n_top=3)
    feats = {(src.name, r["index"]): r for src in root.iterdir() for p in (src / "features").glob("*.gz")
             for r in _lines(p)}
    n5, s0, s1 = feats["1-tnp-mlp-post", "5"], feats["1-tnp-sae", "0"], feats["1-tnp-sae", "1"]
    w, _, _ = planted_weights(seed=0)
    truth = torch.as_tensor(np.asarray(w["blocks.1.mlp.W_out"]))[5] @ torch.as_tensor(np.asarray(w["unembed.W_U"]))
    top = torch.topk(truth, 10)
    ids = model.tokenizer.convert_tokens_to_ids(n5["pos_str"])  # ties in the planted weights: compare values
    assert np.allclose(n5["pos_values"], top.values.numpy(), rtol=1e-4)
    assert np.allclose(truth[ids].numpy(), n5["pos_values"], rtol=1e-4)
    assert s0["pos_str"] == n5["pos_str"] and s0["neg_str"] == n5["neg_str"]
    number = {}
    for word, value in zip(corpus.words, corpus.attribute("Number")):
        if value is not None:
            number[word] = value
    share = lambda words, value: np.mean([number.get(t) == value for t in words if t in number])  # noqa: E731
    assert share(n5["pos_str"], "Sing") >= 0.8 and share(n5["neg_str"], "Plur") >= 0.8
    assert sum(n5["logits_hist_data_bar_heights"]) == model.cfg.d_vocab
    assert s1["pos_str"] == [] and s1["logits_hist_data_bar_heights"] == []  # the unused neuron writes nothing
    for r in feats.values():
        _check(r, "feature")
    if "bridge" in tnp.testing.available_generations():  # encoders need TransformerBridge
        encoder = tnp.testing.tiny_model(generation="bridge", architecture="bert", n_layers=1)
        enc_acts = tnp.extract(encoder, corpus[:10], tnp.ExtractConfig(layers=(0,)), progress=False)
        enc_root = tnp.export.neuronpedia(enc_acts, tmp_path / "enc", model=encoder, model_id="enc")
        enc = [r for p in (enc_root / "0-tnp-mlp-post" / "features").glob("*.gz") for r in _lines(p)]
        assert all(r["pos_str"] == [] for r in enc)


def test_export_checks_its_input(tmp_path):
    with pytest.raises(TypeError, match="exports Activations"):
        tnp.export.neuronpedia([1, 2], tmp_path)
    acts = tnp.Activations.from_array([[1.0], [float("nan")]], tnp.Corpus.from_records([{"words": ["a", "b"]}]))
    with pytest.raises(ValueError, match="NaN or inf"):
        tnp.export.neuronpedia(acts, tmp_path)
