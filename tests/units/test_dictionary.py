"""Dictionaries of directions (issue 24, part 1-2): unit names, the encoder and decoder arithmetic by hand, the
registry, SAELens's on-disk layout both ways, and the TopK trainer."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import tl_neuronprobe as tnp
from tl_neuronprobe.core import units
from tl_neuronprobe.core.neurons import Neuron


def _dict(activation="relu", n=6, d=4, seed=0, **kw):
    g = torch.Generator().manual_seed(seed)
    W_enc, W_dec = torch.randn(d, n, generator=g), torch.randn(n, d, generator=g)
    extra = dict(threshold=torch.full((n,), 0.3)) if activation == "jumprelu" else {}
    extra.update(k=2) if activation == "topk" else None
    return units.Dictionary(W_enc, torch.randn(n, generator=g) * 0.1, W_dec, torch.randn(d, generator=g) * 0.1,
                            "blocks.1.mlp.hook_post", activation=activation, **{**extra, **kw})


def test_unit_names_print_and_parse():
    for text, site in (("L3.S1207", "sae"), ("L3.T12", "transcoder"), ("L0.D0", "directions"),
                       ("L3.S5@sae.resid", "sae.resid"), ("L3.N7", "mlp.post"), ("L3.N7@resid.post", "resid.post")):
        n = Neuron.parse(text)
        assert n.site == site and str(n) == text and n.is_latent == (site not in tnp.SITES)
    with pytest.raises(ValueError, match="does not hold S units"):
        Neuron.parse("L3.S5@mlp.post")
    with pytest.raises(ValueError, match="dictionary site; its units are named 'L3.S5'"):
        Neuron.parse("L3.N5@sae")
    with pytest.raises(ValueError, match="dictionary sites sae, transcoder, directions"):
        Neuron(1, 2, "saes")


def test_encoder_arithmetic_by_hand():
    x = torch.tensor([[1.0, -2.0, 0.5, 3.0]])
    for activation in ("relu", "jumprelu", "topk", "identity"):
        d = _dict(activation)
        pre = (x - d.b_dec) @ d.W_enc + d.b_enc
        want = {"relu": torch.relu(pre), "identity": pre,
                "jumprelu": torch.relu(pre) * (pre > 0.3)}.get(activation)
        if activation == "topk":
            keep = torch.argsort(pre, descending=True)[0, :2]
            want = torch.zeros_like(pre)
            want[0, keep] = torch.relu(pre[0, keep])
        assert torch.allclose(d.encode(x), want, atol=1e-6), activation
        assert torch.allclose(d.decode(d.encode(x)), d.encode(x) @ d.W_dec + d.b_dec)
    d = _dict()
    out = torch.zeros(1, 1, 4)
    moved = d.shift(out, torch.tensor([1, 3]), torch.tensor([[[2.0, -1.0]]]))
    assert torch.allclose(moved[0, 0], 2 * d.W_dec[1] - d.W_dec[3])
    assert d.encode(torch.zeros(2, 3, 4)).shape == (2, 3, 6)


def test_dictionary_checks_its_input():
    with pytest.raises(ValueError, match="shapes do not fit"):
        units.Dictionary(torch.zeros(4, 6), torch.zeros(5), torch.zeros(6, 4), torch.zeros(4), "blocks.0.mlp.hook_post")
    with pytest.raises(ValueError, match="W_enc contains NaN"):
        units.Dictionary(torch.full((4, 6), float("nan")), torch.zeros(6), torch.zeros(6, 4), torch.zeros(4),
                         "blocks.0.mlp.hook_post")
    with pytest.raises(ValueError, match="needs threshold"):
        _dict("jumprelu", threshold=None)
    with pytest.raises(ValueError, match="needs 1 <= k <= 6"):
        _dict("topk", k=9)
    with pytest.raises(ValueError, match="not inside a block"):
        units.Dictionary(torch.zeros(4, 6), torch.zeros(6), torch.zeros(6, 4), torch.zeros(4), "hook_embed")
    with pytest.raises(ValueError, match="does not fit kind"):
        _dict(site="transcoder")
    with pytest.raises(ValueError, match="reads width 4"):
        _dict().encode(torch.zeros(2, 5))


def test_registry_names_what_is_missing_and_using_restores():
    d = _dict()
    with pytest.raises(ValueError, match="no dictionary is registered for site 'sae' at layer 1"):
        units.registered("sae", 1)
    with units.using(d):
        assert units.registered("sae", 1) is d and units.registered_layers("sae") == [1]
        assert Neuron.parse("L1.S3").hook_name == "blocks.1.mlp.hook_post"
    assert units.registered_layers("sae") == []


@pytest.mark.parametrize("activation", ["relu", "jumprelu", "topk"])
def test_saelens_layout_round_trip(activation, tmp_path):
    d = _dict(activation)
    units.save(d, tmp_path / "sae", model_name="planted")
    cfg = json.loads((tmp_path / "sae" / "cfg.json").read_text())
    assert cfg["metadata"]["hook_name"] == d.hook and cfg["d_sae"] == 6 and cfg["architecture"] in (
        "standard", "jumprelu", "topk")
    back = units.load(tmp_path / "sae")
    x = torch.randn(7, 4)
    assert torch.equal(back.encode(x), d.encode(x)) and back.activation == activation and back.k == d.k


def test_load_reads_older_layouts_and_refuses_what_it_cannot_honour(tmp_path):
    from safetensors.torch import save_file

    d = _dict()
    folder = tmp_path / "old"
    folder.mkdir()
    save_file({k: getattr(d, k).contiguous() for k in ("W_enc", "b_enc", "W_dec", "b_dec")},
              str(folder / "sae_weights.safetensors"))
    cfg = {"d_in": 4, "d_sae": 6, "hook_name": d.hook, "activation_fn_str": "relu", "apply_b_dec_to_input": True}
    (folder / "cfg.json").write_text(json.dumps(cfg))  # SAELens < 6: the hook at the top level
    assert torch.equal(units.load(folder).encode(torch.ones(1, 4)), d.encode(torch.ones(1, 4)))
    (folder / "cfg.json").write_text(json.dumps({**cfg, "normalize_activations": "expected_average_only_in"}))
    with pytest.raises(ValueError, match="normalize_activations='expected_average_only_in' is not supported"):
        units.load(folder)
    (folder / "cfg.json").write_text(json.dumps({**cfg, "d_sae": 7}))
    with pytest.raises(ValueError, match="d_sae=7 but the weights have 6"):
        units.load(folder)
    (folder / "cfg.json").write_text(json.dumps({**cfg, "architecture": "gated"}))
    with pytest.raises(ValueError, match="architecture 'gated'"):
        units.load(folder)
    with pytest.raises(FileNotFoundError, match="expected cfg.json and sae_weights.safetensors"):
        units.load(tmp_path / "nothing")


def test_train_sae_reconstructs_and_is_seeded():
    rng = np.random.default_rng(0)
    atoms = rng.normal(size=(12, 16))
    codes = rng.random((3000, 12)) * (rng.random((3000, 12)) < 0.2)  # sparse non-negative codes
    X = codes @ atoms + 0.01 * rng.normal(size=(3000, 16))
    d = units.train_sae(X, 24, "blocks.0.mlp.hook_post", k=4, max_steps=400, batch_size=256, lr=3e-3, seed=0)
    assert d.meta["fvu"] < 0.15 and d.meta["l0"] <= 4
    control = units.train_sae(rng.permutation(X.ravel()).reshape(X.shape), 24, "blocks.0.mlp.hook_post", k=4,
                              max_steps=400, batch_size=256, lr=3e-3, seed=0)  # no structure left to find
    assert control.meta["fvu"] > 2 * d.meta["fvu"]
    again = units.train_sae(X, 24, "blocks.0.mlp.hook_post", k=4, max_steps=400, batch_size=256, lr=3e-3, seed=0)
    assert torch.equal(again.W_dec, d.W_dec)
    with pytest.raises(ValueError, match="NaN"):
        units.train_sae(np.full((4, 3), np.nan), 4, "blocks.0.mlp.hook_post", k=1, max_steps=1)


def test_from_directions_reads_projections():
    D = np.array([[3.0, 0, 0, 4.0], [0, 1.0, 0, 0]])
    d = units.from_directions(D, "blocks.0.hook_resid_post")
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    assert torch.allclose(d.encode(x), torch.tensor([[(3 + 16) / 5, 2.0]]))
    assert str(Neuron(0, 1, "directions")) == "L0.D1"
    with pytest.raises(ValueError, match=r"directions \[1\] are zero"):
        units.from_directions(np.array([[1.0, 0], [0, 0]]), "blocks.0.hook_resid_post")
