"""Extraction throughput against a bare forward pass of the same model through the same layers, same batches.

The baseline is what a user would otherwise run: the underlying Hugging Face model's own forward (MiniLM's
BertModel, no MLM head) over exactly the batches our extraction runs. Ours adds word alignment, hook capture,
sub-token reduction and the copy into the word matrix. Timings are interleaved and the best of several rounds
is kept, so load from other processes affects both sides alike.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import torch

import tl_neuronprobe as tnp
from tl_neuronprobe.core.hooks import run_capture
from tl_neuronprobe.data.extraction import _batches, _plan
from timing import interleaved_bests


#: The goal (issue 10): 0.9x the tokens per second of a bare forward. NOT met on this session's code: a quiet
#: 2-core machine measured 0.79-0.85x against the bare Hugging Face forward and 0.83-0.96x against the same hook
#: points read through TransformerLens (the bridge's hooked path alone costs about 0.9x). The goal is printed;
#: what is asserted are the regression floors below (the measured values less 0.05), named as floors.
GOAL = 0.9
FLOOR_VS_HOOKED = 0.78
FLOOR_VS_BARE_HF = 0.74
ROUNDS = 5


@pytest.mark.minilm
def test_extraction_vs_bare_forward_minilm(benchmark, minilm):
    """Extraction against a bare forward and against the hooked forward, interleaved; asserts the regression
    floors (the 0.9x goal is reported, not met: see GOAL)."""
    corpus = tnp.Corpus.synthetic(800, seed=0)
    adapter = tnp.ModelAdapter(minilm)
    units, _ = _plan(adapter, corpus, "error")
    batches = [adapter.collate([u.tokens for u in b]) for b in _batches(units, 64, 8192)]
    n_tokens = sum(b.n_tokens for b in batches)
    bert = minilm.original_model.bert
    acts = []

    def bare():
        with torch.inference_mode():
            for b in batches:
                bert(input_ids=b.input_ids, attention_mask=b.attention_mask)

    names = [f"blocks.{layer}.mlp.hook_post" for layer in range(adapter.n_layers)]

    def hooked():  # the same hook points read through TransformerLens, nothing done with them
        with torch.inference_mode():
            for b in batches:
                run_capture(adapter, b, names)

    def ours():
        acts[:] = [tnp.extract(minilm, corpus, progress=False)]

    bare(), hooked(), ours()  # warm up
    # pedantic runs the measurement once, with or without --benchmark-disable (stats are not used)
    bests, noise = benchmark.pedantic(interleaved_bests, args=({"bare": bare, "hooked": hooked, "ours": ours},
                                                               ROUNDS), rounds=1, iterations=1)
    ratio = bests["bare"] / bests["ours"]
    own = bests["hooked"] / bests["ours"]
    benchmark.extra_info.update(tokens=n_tokens, bare_tokens_per_s=n_tokens / bests["bare"],
                                ours_tokens_per_s=n_tokens / bests["ours"], throughput_ratio=ratio, noise=noise)
    print(f"\nextraction {n_tokens / bests['ours']:.0f} tok/s, bare forward {n_tokens / bests['bare']:.0f} tok/s, "
          f"ratio {ratio:.3f}x, noise {noise:.3f} (best of {ROUNDS} interleaved rounds)")
    assert acts[0].X.shape == (corpus.n_words, 6 * 1536)
    print(f"against the hooked TransformerLens forward: {own:.3f}x (the goal is {GOAL}x of a bare forward)")
    assert own >= FLOOR_VS_HOOKED - noise, (f"extraction reaches {own:.3f}x the hooked forward's throughput; the "
                                            f"floor is {FLOOR_VS_HOOKED}x within the measured noise {noise:.3f}")
    assert ratio >= FLOOR_VS_BARE_HF - noise, (f"extraction reaches {ratio:.3f}x the bare forward's throughput; "
                                               f"the floor is {FLOOR_VS_BARE_HF}x within the noise {noise:.3f}")


PEAK_SCRIPT = """
import sys, torch, tl_neuronprobe as tnp

def status(key):  # kB; VmHWM belongs to this address space (ru_maxrss would carry the parent's peak over exec)
    return int(open("/proc/self/status").read().split(key + ":")[1].split()[0])

torch.set_num_threads(1)
model = tnp.testing.tiny_model(d_model=64, d_mlp=2048, n_layers=4, n_heads=4, seed=0)
corpus = tnp.Corpus.synthetic(int(sys.argv[2]), seed=0)
out = sys.argv[1] if sys.argv[1] != "-" else None
base = status("VmRSS")
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
acts = tnp.extract(model, corpus, out_dir=out, sentences_per_block=64, progress=False)
peak = status("VmHWM")
print(acts.X.numel() * acts.X.element_size() / 2**20, (peak - base) / 1024)
"""


def test_streaming_keeps_peak_ram_bounded(benchmark, tmp_path):
    """Streamed extraction of a ~570 MB matrix grows RAM by a fixed ~100 MB; in memory grows by all of it.

    (Measured here: streamed growth 94, 110, 114 MB for matrices of 56, 284, 572 MB.)
    """
    def run(out: str, n_sentences: int) -> tuple[float, float]:
        res = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, out, str(n_sentences)], capture_output=True,
                             text=True, check=True)
        size, grow = (float(x) for x in res.stdout.split())
        return size, grow

    size_streamed, grow_streamed = benchmark.pedantic(lambda: run(str(tmp_path / "acts"), 3000), rounds=1,
                                                      iterations=1)
    size_memory, grow_memory = run("-", 1500)
    benchmark.extra_info.update(streamed_matrix_mb=size_streamed, streamed_growth_mb=grow_streamed,
                                in_memory_matrix_mb=size_memory, in_memory_growth_mb=grow_memory)
    print(f"\nstreamed: matrix {size_streamed:.0f} MB, RAM growth {grow_streamed:.0f} MB; "
          f"in memory: matrix {size_memory:.0f} MB, RAM growth {grow_memory:.0f} MB")
    assert grow_memory > 0.9 * size_memory
    assert grow_streamed < 0.5 * size_streamed, "streamed extraction held a large share of the matrix in RAM"
    assert tnp.Activations.load(tmp_path / "acts").X.shape[1] == 4 * 2048
