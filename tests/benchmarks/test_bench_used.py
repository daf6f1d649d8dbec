"""A used curve (10 k values x 3 rankings, with random-k) batched against the naive loop of one forward pass per
(intervention, sentence batch), same model, same sentences, same numbers.

The batched evaluation stacks every intervention of a sentence batch as extra rows of one forward pass (after
one clean pass) and, on a HookedTransformer, starts those rows from the clean pass's residual stream at the
intervened layer. The naive loop builds one public intervention per (ranking, k) and runs the batch once for
each. Both run on one thread (tiny model; a shared machine would otherwise oversubscribe) and interleaved,
keeping the best of the rounds, so other processes' load affects both alike.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import torch

import tl_neuronprobe as tnp
from tl_neuronprobe.testbeds.agreement import train_agreement_decoder
from tl_neuronprobe.evaluation.used import evaluate_used

KS = [1, 2, 4, 8, 12, 16, 24, 32, 48, 64]


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_batched_used_curve_vs_naive_loop(benchmark, one_thread):
    model = train_agreement_decoder(seed=0)
    corpus = tnp.Corpus.synthetic(96, seed=11)
    acts = tnp.extract(model, corpus, site="mlp.post", layers=[1], progress=False)
    X, y, _ = acts.dataset("Number")
    score = (X[y == 0].mean(0) - X[y == 1].mean(0)).abs().numpy()
    best = [acts.neurons[i] for i in np.argsort(-score, kind="stable")]
    shuffled = [best[i] for i in np.random.default_rng(0).permutation(len(best))]
    rankings = {"mean_difference": best, "reversed": best[::-1], "shuffled": shuffled}
    kw = dict(method="translate", alpha=8.0, bottom=False, n_random=1, n_bootstrap=200, seed=0, batch_size=32,
              progress=False)

    def run(strategy):
        return evaluate_used(model, corpus, "Number", rankings, KS, strategy=strategy, **kw)

    batched, naive = run("auto"), run("naive")  # warm up, and the equality check
    pd.testing.assert_frame_equal(batched, naive, atol=1e-9, rtol=0)
    times = {"auto": [], "naive": []}
    sweeps = {"auto": [], "naive": []}
    for _ in range(3):
        for s in times:
            t = time.perf_counter()
            table = run(s)
            times[s].append(time.perf_counter() - t)
            sweeps[s].append(table.attrs["sweep_seconds"])
    result = benchmark.pedantic(run, args=("auto",), rounds=1, iterations=1)
    ratio = min(times["naive"]) / min(times["auto"])
    sweep_ratio = min(sweeps["naive"]) / min(sweeps["auto"])
    fwd_ratio = naive.attrs["forward_passes"] / batched.attrs["forward_passes"]
    benchmark.extra_info.update(
        generation=tnp.ModelAdapter(model).generation, strategy=batched.attrs["strategy"],
        interventions=batched.attrs["interventions"], sentences=len(corpus), batches=batched.attrs["batches"],
        batched_forward_passes=batched.attrs["forward_passes"], naive_forward_passes=naive.attrs["forward_passes"],
        batched_seconds=min(times["auto"]), naive_seconds=min(times["naive"]), speedup=ratio,
        batched_sweep_seconds=min(sweeps["auto"]), naive_sweep_seconds=min(sweeps["naive"]),
        sweep_speedup=sweep_ratio, forward_pass_ratio=fwd_ratio)
    print(f"\nused curve ({batched.attrs['interventions']} interventions x {batched.attrs['batches']} batches, "
          f"{tnp.ModelAdapter(model).generation}): {batched.attrs['strategy']} {min(times['auto']):.2f} s "
          f"(sweep {min(sweeps['auto']):.2f} s) in {batched.attrs['forward_passes']} passes; naive "
          f"{min(times['naive']):.2f} s (sweep {min(sweeps['naive']):.2f} s) in {naive.attrs['forward_passes']} "
          f"passes: {ratio:.1f}x faster end to end, {sweep_ratio:.1f}x in the sweep")
    assert result.attrs["forward_passes"] == batched.attrs["forward_passes"]
    assert fwd_ratio > 10
    assert sweep_ratio > 3, f"the batched sweep is only {sweep_ratio:.1f}x faster than the naive loop"
    assert ratio > 1.5, f"batched evaluation only {ratio:.1f}x faster than the naive loop end to end"


def _compare(benchmark, model, corpus, rankings, rounds: int = 2, **kw):
    """Time evaluate_used batched ('auto') and naive, interleaved; check equal tables; record the ratios."""
    kw = dict(dict(method="translate", alpha=4.0, bottom=False, n_random=1, n_bootstrap=100, seed=0,
                   batch_size=32, progress=False), **kw)

    def run(strategy):
        return evaluate_used(model, corpus, "Number", rankings, KS, strategy=strategy, **kw)

    batched, naive = run("auto"), run("naive")
    pd.testing.assert_frame_equal(batched, naive, atol=1e-6, rtol=1e-5)
    times = {"auto": [], "naive": []}
    sweeps = {"auto": [], "naive": []}
    for _ in range(rounds):
        for s in times:
            t = time.perf_counter()
            table = run(s)
            times[s].append(time.perf_counter() - t)
            sweeps[s].append(table.attrs["sweep_seconds"])
    benchmark.pedantic(run, args=("auto",), rounds=1, iterations=1)
    info = dict(generation=tnp.ModelAdapter(model).generation, strategy=batched.attrs["strategy"],
                interventions=batched.attrs["interventions"], batches=batched.attrs["batches"],
                batched_forward_passes=batched.attrs["forward_passes"],
                naive_forward_passes=naive.attrs["forward_passes"],
                batched_seconds=min(times["auto"]), naive_seconds=min(times["naive"]),
                speedup=min(times["naive"]) / min(times["auto"]),
                batched_sweep_seconds=min(sweeps["auto"]), naive_sweep_seconds=min(sweeps["naive"]),
                sweep_speedup=min(sweeps["naive"]) / min(sweeps["auto"]))
    benchmark.extra_info.update(info)
    print(f"\n{info['generation']} {info['strategy']}: {info['batched_seconds']:.2f} s (sweep "
          f"{info['batched_sweep_seconds']:.2f} s, {info['batched_forward_passes']} passes) vs naive "
          f"{info['naive_seconds']:.2f} s (sweep {info['naive_sweep_seconds']:.2f} s, {info['naive_forward_passes']} "
          f"passes): {info['speedup']:.1f}x end to end, {info['sweep_speedup']:.1f}x in the sweep")
    return info


def test_deeper_decoder_cached_residual_start(benchmark, one_thread, generation):
    """4 layers, intervening at layer 3: a HookedTransformer starts the intervened rows at block 3 from the clean
    pass's residual stream; a TransformerBridge reruns every block for every row (its start_at_layer still
    executes the blocks below), so there batching saves the per-pass overhead only."""
    model = tnp.testing.tiny_model(generation=generation, n_layers=4, d_model=96, n_heads=4, d_mlp=384, seed=1)
    corpus = tnp.Corpus.synthetic(48, seed=12)
    neurons = [tnp.Neuron(3, i) for i in range(384)]
    rng = np.random.default_rng(0)
    rankings = {f"r{j}": [neurons[i] for i in rng.permutation(384)] for j in range(3)}
    info = _compare(benchmark, model, corpus, rankings, rounds=1, readout="divergence",
                    divergence=["kl", "hidden_distance"])
    assert info["sweep_speedup"] > (2.0 if info["strategy"] == "cached" else 1.2)
