"""The published Gumbel schedules (Poerner et al. 2018) exactly, and the evolutionary population's selection
across members per fluency weight (Thompson et al. 2024)."""

from __future__ import annotations

import math

import pytest
import torch

from tl_neuronprobe.textualization import Dense, Discrete, Gumbel, TextualizeConfig, TextualizeError, textualize
from tl_neuronprobe.textualization._gumbel import SCHEDULES
from tl_neuronprobe.textualization._discrete import _select


def test_poerner_schedule_per_step_decay_and_floor():
    sched = SCHEDULES["poerner"]["schedule"]
    t = Gumbel(schedule="poerner", max_steps=4).temperatures()
    assert t == pytest.approx([2.0, 2.0 * 0.99995, 2.0 * 0.99995 ** 2, 2.0 * 0.99995 ** 3], rel=1e-12)
    floor_step = math.ceil(math.log(0.1 / 2.0) / math.log(0.99995))  # 59,912
    assert sched.temperature(floor_step - 1) > 0.1 and sched.temperature(floor_step) == 0.1
    assert sched.temperature(200_000) == 0.1
    assert {k: SCHEDULES["poerner"][k] for k in ("samples", "lr", "steps")} == dict(samples=64, lr=1e-3,
                                                                                    steps=200_000)


def test_poerner_bert_schedule_warm_up_then_decay():
    t = Gumbel.from_schedule("poerner-bert").temperatures()
    assert t[:201] == [2.0] * 201  # 200 warm-up steps at 2.0, then x 0.9995 per step
    assert t[201] == pytest.approx(2.0 * 0.9995) and t[2999] == pytest.approx(2.0 * 0.9995 ** 2799)
    assert {k: SCHEDULES["poerner-bert"][k] for k in ("samples", "lr", "steps")} == dict(samples=64, lr=0.1,
                                                                                         steps=3000)
    # the default anneals geometrically from 2.0 to 0.1 over the run
    assert Gumbel(max_steps=5).temperatures() == pytest.approx([2.0 * 0.05 ** (i / 4) for i in range(5)])
    assert Gumbel.from_schedule("poerner") == Gumbel(schedule="poerner", samples=64, lr=1e-3, max_steps=200_000)


@pytest.mark.parametrize("schedule", ["poerner", "poerner-bert"])
def test_published_schedules_find_the_planted_trigger(planted, schedule):
    (neuron, word), = planted.planted.trigger.items()
    optimizer = Gumbel.from_schedule(schedule, max_steps=40, restarts=1)
    res = textualize(planted, [neuron], TextualizeConfig(optimizer=optimizer, length=2, corpus=None), progress=False)
    recorded = res.config["optimizer"]
    assert recorded["samples"] == 64 and recorded["lr"] == SCHEDULES[schedule]["lr"]
    assert recorded["schedule"] == schedule and recorded["max_steps"] == 40
    assert res[0].tokens[-1] == word and res[0].activation > 3.5
    with pytest.raises(TextualizeError, match="unknown schedule 'poerner-gpt'"):
        Gumbel(schedule="poerner-gpt", max_steps=2)
    with pytest.raises(TextualizeError, match="unknown schedule 'poerner-gpt'"):
        Gumbel.from_schedule("poerner-gpt")
    with pytest.raises(TypeError):
        Dense(schedule=schedule)  # a schedule is Gumbel's own knob


def test_population_selection_picks_across_members_per_weight():
    """One neuron, two members with fluency weights 0 and 10; member 0's children are weak and member 1's
    include a strong, fluent child. Selection per member keeps member 0 among its own children; selection
    across the population gives member 0 (weight 0) the strongest child and member 1 the most fluent."""
    kids = torch.arange(8).reshape(2, 4, 1)  # [members, children, n]: child id = token
    act = torch.tensor([1.0, 1.1, 0.9, 1.0, 5.0, 2.0, 0.5, 3.0])
    ce = torch.tensor([5.0, 5.0, 5.0, 5.0, 3.0, 0.1, 4.0, 0.2])
    lam = torch.tensor([0.0, 10.0])
    own, own_obj = _select(kids, act, ce, lam, True, restarts=2, population=False)
    pooled, pooled_obj = _select(kids, act, ce, lam, True, restarts=2, population=True)
    assert own[:, 0].tolist() == [1, 5] and pooled[:, 0].tolist() == [4, 5]
    assert pooled_obj[0] == pytest.approx(5.0) and own_obj[0] == pytest.approx(1.1)
    assert pooled_obj[1] == pytest.approx(2.0 - 10 * 0.1)
    # two neurons side by side never share children
    both, _ = _select(torch.cat([kids, kids + 8]), act.repeat(2), ce.repeat(2), lam.repeat(2), True, 2, True)
    assert both[:2, 0].tolist() == [4, 5] and both[2:, 0].tolist() == [12, 13]


@pytest.mark.parametrize("selection", ["member", "population"])
def test_both_selection_rules_find_the_trigger_with_fluency(planted, selection):
    (neuron, word), = planted.planted.trigger.items()
    optimizer = Discrete(fluency=(0.1, 10.0), selection=selection, max_steps=25, restarts=4)
    r = textualize(planted, [neuron], TextualizeConfig(optimizer=optimizer, length=3, corpus=None, seed=0),
                   progress=False)
    assert r.info["selection"] == selection and r[0].tokens[-1] == word
    with pytest.raises(TextualizeError, match="selection must be one of"):
        Discrete(selection="best")
