"""``Dense()`` keeps its vectors: they reproduce their activation when fed back through the model,
their nearest tokens are the planted trigger, and they survive save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tl_neuronprobe as tnp
from tl_neuronprobe.textualization import Dense, Gumbel, TextualizeConfig, TextualizeResult, textualize
from tl_neuronprobe.textualization._results import NEAREST_COLUMNS


def activation_of_vectors(model, neuron, vectors, position):
    """Feed ``vectors`` [n, D] in place of the token embeddings after BOS, read ``neuron`` at ``position``:
    written here with the model's own hooks, independent of textualize."""
    bos = model.tokenizer.bos_token_id
    ids = torch.full((1, 1 + len(vectors)), bos)
    hook = "embed.hook_out" if "embed.hook_out" in model.hook_dict else "hook_embed"
    vec = torch.as_tensor(vectors, dtype=torch.float32)
    out = {}

    def put(act, hook=None):
        act = act.clone()
        act[0, 1:] = vec
        return act

    def grab(act, hook=None):
        out["v"] = act[0, 1 + position % len(vectors), neuron.index].item()
    with torch.no_grad(), model.hooks(fwd_hooks=[(hook, put), (neuron.hook_name, grab)]):
        model(ids)
    return out["v"]


@pytest.fixture(scope="module")
def dense_result():
    model = tnp.testing.planted_model()
    config = TextualizeConfig(optimizer=Dense(max_steps=120), length=3, corpus=None)
    res = textualize(model, ["L1.N57", "L1.N5"], config, progress=False)
    return model, res


def test_vectors_reproduce_their_activation(dense_result):
    model, res = dense_result
    d_model = tnp.ModelAdapter(model).d_model
    for r in res:
        assert r.vectors.shape == (3, d_model)
        assert r.vector_activation == pytest.approx(activation_of_vectors(model, r.neuron, r.vectors, -1), abs=1e-4)
    # control: random vectors of the same norms do not reach the trigger's activation
    r = res["L1.N57"]
    rand = np.random.default_rng(0).standard_normal(r.vectors.shape)
    rand *= np.linalg.norm(r.vectors, axis=1, keepdims=True) / np.linalg.norm(rand, axis=1, keepdims=True)
    assert activation_of_vectors(model, r.neuron, rand, -1) < r.vector_activation - 2.0


def test_nearest_tokens_of_the_trigger_vector(dense_result):
    _, res = dense_result
    near = res.nearest_table()
    assert list(near.columns) == NEAREST_COLUMNS
    mine = near[near.neuron == "L1.N57"]
    last = mine[mine.position == 2].sort_values("rank")
    assert last.token.iloc[0] == "cabinet" and last.cosine.iloc[0] > last.cosine.iloc[1]
    assert np.allclose(mine.norm_share, mine.cosine ** 2)
    assert res["L1.N57"].tokens[-1] == "cabinet" and res["L1.N57"].extra["nearest"][2][0] == "cabinet"
    assert (mine.groupby("position").cosine.apply(lambda c: c.is_monotonic_decreasing)).all()


def test_save_load_round_trip_and_plot(dense_result, tmp_path):
    _, res = dense_result
    res.save(tmp_path / "dense")
    back = TextualizeResult.load(tmp_path / "dense")
    assert back.table.equals(res.table) and back.nearest_table().equals(res.nearest_table())
    for a, b in zip(res, back):
        assert np.array_equal(a.vectors, b.vectors) and a.vector_activation == b.vector_activation
    assert back.config == res.config and back.info == res.info
    assert TextualizeConfig.from_dict(back.config).optimizer == Dense(max_steps=120)
    res.plot_nearest("L1.N57", k=3, path=tmp_path / "nearest.png")
    assert (tmp_path / "nearest.png").stat().st_size > 1000
    res.plot(path=tmp_path / "result.png")
    assert (tmp_path / "result.png").stat().st_size > 1000
    gumbel = textualize(tnp.testing.planted_model(), ["L1.N5"],
                        TextualizeConfig(optimizer=Gumbel(max_steps=2), length=2, corpus=None), progress=False)
    assert gumbel[0].vectors is None and gumbel.nearest_table().empty
    with pytest.raises(ValueError, match="no dense vectors"):
        gumbel.plot_nearest("L1.N5")
    gumbel.save(tmp_path / "g")
    assert not (tmp_path / "g" / "vectors.safetensors").exists()
    assert TextualizeResult.load(tmp_path / "g").table.equals(gumbel.table)
