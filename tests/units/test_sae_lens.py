"""A real ``sae_lens.SAE`` round-trips (issue 24, part 2): SAELens pins TransformerLens < 4, so CI runs this in its
TL 3 environment (``pip install -e ".[test,sae]"``); elsewhere it skips, saying so."""

from __future__ import annotations

import pytest
import torch

import tl_neuronprobe as tnp
from tl_neuronprobe.core import units

sae_lens = pytest.importorskip("sae_lens", reason="SAELens is the 'sae' extra (TransformerLens < 4 only)")


def _sae(architecture: str, d_in: int, d_sae: int, hook: str):
    classes = {"standard": (sae_lens.StandardSAE, sae_lens.StandardSAEConfig, {}),
               "jumprelu": (sae_lens.JumpReLUSAE, sae_lens.JumpReLUSAEConfig, {}),
               "topk": (sae_lens.TopKSAE, sae_lens.TopKSAEConfig, {"k": 4})}
    cls, cfg_cls, kw = classes[architecture]
    cfg = cfg_cls(d_in=d_in, d_sae=d_sae, **kw)
    cfg.metadata.hook_name = hook
    sae = cls(cfg)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return sae


@pytest.mark.parametrize("architecture", ["standard", "jumprelu", "topk"])
def test_a_live_sae_and_its_saved_folder_round_trip(architecture, tmp_path):
    sae = _sae(architecture, 16, 32, "blocks.1.mlp.hook_post")
    x = torch.randn(9, 16)
    d = units.from_sae_lens(sae)
    assert torch.allclose(d.encode(x), sae.encode(x), atol=1e-5)
    units.save(d, tmp_path / "ours")  # our folder, read by SAELens
    theirs = sae_lens.SAE.load_from_disk(str(tmp_path / "ours"))
    assert type(theirs) is type(sae) and torch.allclose(theirs.encode(x), sae.encode(x), atol=1e-5)
    sae.save_model(str(tmp_path / "native"))  # SAELens's folder, read by us
    assert torch.allclose(units.load(tmp_path / "native").encode(x), sae.encode(x), atol=1e-5)


def test_a_sae_lens_sae_through_extraction_on_the_planted_model():
    model = tnp.testing.planted_model()
    sae = _sae("standard", 64, 96, "blocks.1.mlp.hook_post")
    corpus = tnp.testing.planted_corpus(20, seed=0)
    neurons = tnp.extract(model, corpus, tnp.ExtractConfig(layers=(1,)), progress=False)
    with units.using(units.from_sae_lens(sae)):
        latents = tnp.extract(model, corpus, tnp.ExtractConfig(site="sae", layers=(1,)), progress=False)
    assert latents.n_neurons == 96 and torch.allclose(latents.X, sae.encode(neurons.X).detach(), atol=1e-4)
