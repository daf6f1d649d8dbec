"""A used curve (10 k values x 3 rankings, with random-k) batched against the naive loop of one forward pass per
(intervention, sentence batch), same model, same sentences, same numbers.

The batched evaluation stacks every intervention of a sentence batch as extra rows of one forward pass (after
one clean pass) and, on a HookedTransformer, starts those rows from the clean pass's residual stream at the
intervened layer. The naive loop builds one public intervention per (ranking, k) and runs the batch once for
each. Both sides run on one thread (tiny models; a shared machine would otherwise oversubscribe), interleaved
over several rounds (the side that goes first alternates), and the best time of each side is compared, so a
burst of load from other processes cannot decide the ratio. The timings are taken by the test itself, so it
asserts the same targets under ``--benchmark-disable``; pytest-benchmark only records them when enabled.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import torch

import tl_neuronprobe as tnp
from tl_neuronprobe import interventions as iv
from tl_neuronprobe.evaluation.used import Baselines, UsedBatching, UsedConfig, evaluate_used
from tl_neuronprobe.testbeds.agreement import train_agreement_decoder
from tl_neuronprobe.data.extraction import ExtractConfig

KS = [1, 2, 4, 8, 12, 16, 24, 32, 48, 64]
SIDES = ("auto", "naive")


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def interleaved_best(run, rounds: int) -> dict[str, dict[str, float]]:
    """Best wall time and best sweep time of each side over ``rounds`` interleaved rounds."""
    times: dict[str, list[float]] = {s: [] for s in SIDES}
    sweeps: dict[str, list[float]] = {s: [] for s in SIDES}
    for r in range(rounds):
        for side in (SIDES if r % 2 == 0 else SIDES[::-1]):
            start = time.perf_counter()
            result = run(side)
            times[side].append(time.perf_counter() - start)
            sweeps[side].append(result.extra["sweep_seconds"])
    return {s: dict(seconds=min(times[s]), sweep_seconds=min(sweeps[s])) for s in SIDES}


def compare_strategies(benchmark, model, corpus, rankings, rounds: int = 3, atol: float = 1e-6,
                       **changes) -> dict:
    """Time evaluate_used batched ('auto') and naive, interleaved; check equal tables; record the ratios."""
    config = UsedConfig(edit=iv.Translate(alpha=4.0), ks=KS, baselines=Baselines(bottom=False, n_random=1),
                        n_bootstrap=100, seed=0).replace(**changes)

    def run(strategy):
        return evaluate_used(model, corpus, "Number", rankings,
                             config.replace(batching=UsedBatching(batch_size=32, strategy=strategy)), progress=False)

    batched, naive = run("auto"), run("naive")  # warm up, and the equality check
    pd.testing.assert_frame_equal(batched.table, naive.table, atol=atol, rtol=0 if atol < 1e-6 else 1e-5)
    best = interleaved_best(run, rounds)
    result = benchmark.pedantic(run, args=("auto",), rounds=1, iterations=1)  # a plain run when disabled
    batched, naive = batched.extra, naive.extra
    assert result.extra["forward_passes"] == batched["forward_passes"]
    info = dict(generation=tnp.ModelAdapter(model).generation, strategy=batched["strategy"],
                interventions=batched["interventions"], batches=batched["batches"], rounds=rounds,
                batched_forward_passes=batched["forward_passes"],
                naive_forward_passes=naive["forward_passes"],
                batched_seconds=best["auto"]["seconds"], naive_seconds=best["naive"]["seconds"],
                speedup=best["naive"]["seconds"] / best["auto"]["seconds"],
                batched_sweep_seconds=best["auto"]["sweep_seconds"], naive_sweep_seconds=best["naive"]["sweep_seconds"],
                sweep_speedup=best["naive"]["sweep_seconds"] / best["auto"]["sweep_seconds"],
                forward_pass_ratio=naive["forward_passes"] / batched["forward_passes"])
    benchmark.extra_info.update(info)
    print(f"\n{info['generation']} {info['strategy']}, {info['interventions']} interventions x {info['batches']} "
          f"batches, best of {rounds}: {info['batched_seconds']:.2f} s (sweep {info['batched_sweep_seconds']:.2f} s, "
          f"{info['batched_forward_passes']} passes) vs naive {info['naive_seconds']:.2f} s (sweep "
          f"{info['naive_sweep_seconds']:.2f} s, {info['naive_forward_passes']} passes): {info['speedup']:.1f}x end "
          f"to end, {info['sweep_speedup']:.1f}x in the sweep")
    return info


def test_batched_used_curve_vs_naive_loop(benchmark, one_thread):
    model = train_agreement_decoder(seed=0)
    corpus = tnp.Corpus.synthetic(96, seed=11)
    acts = tnp.extract(model, corpus, ExtractConfig(site="mlp.post", layers=[1]), progress=False)
    X, y, _ = acts.dataset("Number")
    means = iv.class_means(X, y, 2)
    score = (means[0] - means[1]).abs().numpy()
    best = [acts.neurons[i] for i in np.argsort(-score, kind="stable")]
    shuffled = [best[i] for i in np.random.default_rng(0).permutation(len(best))]
    rankings = {"mean_difference": best, "reversed": best[::-1], "shuffled": shuffled}
    info = compare_strategies(benchmark, model, corpus, rankings, rounds=3, atol=1e-9, edit=iv.Translate(alpha=8.0),
                              n_bootstrap=200)
    assert info["forward_pass_ratio"] > 10
    assert info["sweep_speedup"] > 3, f"the batched sweep is only {info['sweep_speedup']:.1f}x faster than naive"
    assert info["speedup"] > 1.5, f"batched evaluation only {info['speedup']:.1f}x faster than naive end to end"


def test_deeper_decoder_cached_residual_start(benchmark, one_thread, generation):
    """4 layers, intervening at layer 3: a HookedTransformer starts the intervened rows at block 3 from the clean
    pass's residual stream; a TransformerBridge reruns every block for every row (its start_at_layer still
    executes the blocks below), so there batching saves the per-pass overhead only."""
    model = tnp.testing.tiny_model(generation=generation, n_layers=4, d_model=96, n_heads=4, d_mlp=384, seed=1)
    corpus = tnp.Corpus.synthetic(48, seed=12)
    neurons = [tnp.Neuron(3, i) for i in range(384)]
    rng = np.random.default_rng(0)
    rankings = {f"r{j}": [neurons[i] for i in rng.permutation(384)] for j in range(3)}
    info = compare_strategies(benchmark, model, corpus, rankings, rounds=3,
                              readout=iv.Divergence(metrics=["kl", "hidden_distance"]))
    assert info["sweep_speedup"] > (2.0 if info["strategy"] == "cached" else 1.2)
