"""Extraction throughput against a bare forward pass of the same model through the same layers, same batches,
on real English (the shipped UD English EWT slice).

The baseline is what a user would otherwise run: the underlying Hugging Face model's own forward (MiniLM's
BertModel, no MLM head) over exactly the batches our extraction runs. Ours adds word alignment, hook capture,
sub-token reduction and the copy into the word matrix. Timings are interleaved and the best of several rounds
is kept, so load from other processes affects both sides alike.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import tl_neuronprobe as tnp
from tl_neuronprobe.core.hooks import run_capture
from tl_neuronprobe.core.validation import few_threads
from tl_neuronprobe.data.extraction import _batches, _plan
from timing import bests_and_noise, interleaved_times, ratio_spread, widened


#: The goal (issue 10): 0.9x the tokens per second of a bare forward, asserted by ``test_extraction_reaches_the_goal``
#: (real text: the first 400 sentences of the shipped EWT slice, MiniLM, one torch thread, quiet 2-core machine, best
#: of 5 interleaved rounds). History: 0.844-0.863x in session 5; 0.869-0.895x in session 6 (reads end the pass once
#: every read hook has fired), with extraction's own rounds spread by 20-30% (the word matrix's huge pages zeroed at
#: their first write). Session 7: plain pages, and each batch's NaN check and copy into the word matrix run on a
#: writer thread while the next batch's forward pass runs, when torch leaves a core free: 0.989x, 0.961x, 0.986x
#: in three runs (1.00-1.01x the hooked forward; per-round spread 0.5-1%). At two torch threads on the 2 cores (no
#: core free, so no writer thread) docs/foundation.md has the figures. The goal runs under the `goal` marker
#: (``python -m pytest -m goal``): it needs a quiet machine with a spare core. The floors below (the lowest values
#: measured before session 7 less 0.05) guard regressions in the default suite, widened by the noise measured in
#: the same run but never past halfway to the regression each names: a second forward pass per batch (or every
#: hook's rows copied twice over) would measure 0.5x or less.
GOAL = 0.9
FLOOR_VS_HOOKED = 0.86
FLOOR_VS_BARE_HF = 0.79
REGRESSION = 0.5
ROUNDS = 5
SENTENCES = 400


@pytest.fixture(scope="module")
def throughput(minilm):
    """Best seconds of a bare forward, the hooked forward and ours over real text, interleaved rounds."""
    corpus = tnp.Corpus.load(f"ud-english:{SENTENCES}")
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

    with few_threads(0, n_threads=1):  # one thread each: two threads on a 2-core machine double the noise
        bare(), hooked(), ours()  # warm up
        times = interleaved_times({"bare": bare, "hooked": hooked, "ours": ours}, ROUNDS)
    assert acts[0].X.shape == (corpus.n_words, 6 * 1536)
    return (*bests_and_noise(times), n_tokens, ratio_spread(times["bare"], times["ours"]))


@pytest.mark.minilm
def test_extraction_vs_bare_forward_minilm(benchmark, throughput):
    """Extraction against a bare forward and against the hooked forward, interleaved; asserts the regression
    floors (the 0.9x goal is asserted by the test below)."""
    bests, noise, n_tokens, _ = throughput
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    ratio = bests["bare"] / bests["ours"]
    own = bests["hooked"] / bests["ours"]
    benchmark.extra_info.update(tokens=n_tokens, bare_tokens_per_s=n_tokens / bests["bare"],
                                ours_tokens_per_s=n_tokens / bests["ours"], throughput_ratio=ratio, noise=noise)
    print(f"\nextraction {n_tokens / bests['ours']:.0f} tok/s, bare forward {n_tokens / bests['bare']:.0f} tok/s, "
          f"ratio {ratio:.3f}x, against the hooked forward {own:.3f}x, noise {noise:.3f} (best of {ROUNDS} "
          f"interleaved rounds; the goal is {GOAL}x)")
    floor_hooked, floor_bare = (widened(f, REGRESSION, noise) for f in (FLOOR_VS_HOOKED, FLOOR_VS_BARE_HF))
    assert own >= floor_hooked, (f"extraction reaches {own:.3f}x the hooked forward's throughput; the floor is "
                                 f"{FLOOR_VS_HOOKED}x, {floor_hooked:.3f}x within the measured noise {noise:.3f}")
    assert ratio >= floor_bare, (f"extraction reaches {ratio:.3f}x the bare forward's throughput; the floor is "
                                 f"{FLOOR_VS_BARE_HF}x, {floor_bare:.3f}x within the measured noise {noise:.3f}")


@pytest.mark.goal
@pytest.mark.minilm
def test_extraction_reaches_the_goal(benchmark, throughput, goal):
    """The goal itself: the best rounds' ratio at least 0.9x a bare forward's tokens per second, no tolerance
    (measured 0.96-0.99x on a quiet machine, per-round spread under 0.02; 0.89x under load: see GOAL)."""
    bests, _, _, spread = throughput
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    ratio = bests["bare"] / bests["ours"]
    print(f"\nextraction at {ratio:.3f}x a bare forward (per-round spread {spread:.3f}); the goal is {GOAL}x")
    goal.check("extraction / bare forward, tokens/s", ratio, GOAL, unit="x")
    goal.assert_met()


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
acts = tnp.extract(model, corpus, tnp.data.extraction.ExtractConfig(sentences_per_block=64), out_dir=out, progress=False)
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
