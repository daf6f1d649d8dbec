"""``textualize``: the one entry point, as a pipeline of named steps (settings -> problem -> corpus baseline
-> batched optimization -> exact re-scoring -> results). The optimizers live in ``_gumbel``, ``_dense`` and
``_discrete``; the problem they share in ``_problem``. Under ``torchrun`` the ranks share the corpus scan and the
chunks of neurons (:mod:`tl_neuronprobe.core.distributed`) and every rank returns the single-process result."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import torch
from torch.nn.functional import normalize
from tqdm.auto import tqdm

from ..core import distributed
from ..core.adapter import ModelAdapter
from ..core.neurons import Neuron
from ._corpus import DEFAULT_CORPUS, corpus_sentences, eval_mode, parse, scan
from ._dense import dense
from ._discrete import discrete, resolve_selection, uses_fluency
from ._gumbel import SCHEDULES, gumbel, resolve_schedule
from ._problem import Problem
from ._results import NeuronText, TextualizeResult
from ._steps import Best, best_per_neuron, chunk_generator, generator
from ._vocab import TextualizeError, VocabSpec

METHODS = ("gumbel", "dense", "discrete", "corpus")
#: per-method defaults: optimization steps (iterations for ``discrete``), restarts per neuron, learning rate
DEFAULTS: dict[str, dict[str, Any]] = {
    "gumbel": dict(steps=300, restarts=2, lr=1.0, samples=4),
    "dense": dict(steps=300, restarts=2, lr=0.2),
    "discrete": dict(steps=60, restarts=4, lr=None),
    "corpus": dict(steps=0, restarts=1, lr=None),
}
_RUNNERS = {"gumbel": gumbel, "dense": dense, "discrete": discrete}
_AMP = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class _Baseline:
    """Corpus maximum per neuron ``{neuron: (activation, text, token ids)}``, the scan's top windows (for
    ``init="corpus"``) and the scan's time."""

    best: dict
    windows: "tuple[torch.Tensor, torch.Tensor] | None" = None
    seconds: float = 0.0


def textualize(
    model, neurons: "str | Neuron | Iterable[str | Neuron]", method: str = "gumbel", length: int = 5,
    position: int | None = None, seed: int = 0, *, steps: int | None = None, restarts: int | None = None,
    batch_size: int = 64, lr: float | None = None, vocab: VocabSpec = None,
    corpus: "Corpus | Sequence[str] | str | None" = DEFAULT_CORPUS, corpus_max: "dict | None" = None,  # noqa: F821
    fluency: "float | tuple[float, float]" = 0.0, selection: str = "auto", samples: int | None = None,
    schedule: str = "anneal", temperature: tuple[float, float] = (2.0, 0.1), penalty: float = 1.0,
    candidates: int = 32, topk: int = 64, restart_every: int = 30, init: str = "random",
    surrogate: bool | None = None, eval_every: int = 10, eval_batch: int = 512,
    device: "str | torch.device | None" = None, dtype: "str | torch.dtype | None" = "auto", progress: bool = True,
) -> TextualizeResult:
    """Find, for each neuron, ``length`` tokens that make it fire most (read at ``position`` of them).

    Args:
        model: a ``HookedTransformer``, ``TransformerBridge`` or :class:`ModelAdapter`.
        neurons: ``"L3.N1207,L5.N88"``, :class:`Neuron` objects, or a list of either.
        method: ``gumbel``, ``dense``, ``discrete`` or ``corpus`` (see docs/textualization.md).
        length: number of optimized tokens (the model's special tokens are added around them).
        position: which optimized token the neuron is read at; default last (decoders) or middle (encoders).
        seed: seeds every random draw; the same call gives the same result.
        steps, restarts, lr: optimization steps (iterations for ``discrete``), rows per neuron (population for
            ``discrete``), learning rate; ``None`` takes the method's :data:`DEFAULTS` (or the schedule's).
        batch_size: neurons optimized together (rows = neurons x restarts), each chunk from its own generator;
            under ``torchrun`` the ranks share the chunks (docs/scaling.md).
        vocab: allowed tokens: ids, token strings, a predicate on the token string, or a boolean mask.
        corpus: corpus for the baseline (a :class:`Corpus`, sentences, ``"ud-english[:N]"``, ``"synthetic:N"``,
            a file; None: none); default the shipped real English treebank slice. Its best distinct window of
            ``length`` tokens per neuron, framed the same way, gives ``corpus_max`` and ``ratio``.
        corpus_max: precomputed ``{neuron: (activation, text)}`` to skip the corpus scan.
        fluency: ``discrete``: weight of the self cross-entropy in the objective (decoders only); a pair
            ``(low, high)`` gives the population log-spaced weights (evolutionary prompt optimization).
        selection: ``discrete``: ``"member"`` (each member among its own children), ``"population"`` (per
            fluency weight, among the children of the whole population; Thompson et al.), ``"auto"``
            (population for a fluency range, member otherwise).
        samples, schedule, temperature: ``gumbel``: Gumbel samples per step; ``"anneal"`` (geometric from
            ``temperature[0]`` to ``temperature[1]`` over the run) or a published schedule, ``"poerner"`` or
            ``"poerner-bert"``, which also sets samples, lr and steps unless they are given.
        penalty: ``dense``: weight of the off-manifold penalty (1 - nearest cosine + squared relative norm gap).
        candidates, topk, restart_every, init: ``discrete``: children per member per iteration, tokens per
            position proposed by the gradient, iterations without improvement before a member restarts, and
            ``"random"`` or ``"corpus"`` (start from the top corpus windows) initial tokens.
        surrogate: optimize an ``mlp.post`` neuron's pre-activation (same maximizers where it fires, and a
            gradient where GELU/ReLU are flat); None: wherever the MLP allows it. Results are always scored on
            the neuron itself.
        eval_every, eval_batch: relaxed methods read out and score their discrete tokens every
            ``eval_every`` steps; candidates are scored ``eval_batch`` sequences per forward pass.
        device: move the model there first (default: where it is).
        dtype: autocast dtype for the optimization (``"auto"``: bfloat16 on CUDA, none on CPU); the reported
            activations are always recomputed in the model's own precision.
        progress: show a progress bar.
    """
    if method not in METHODS:
        raise TextualizeError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    adapter = ModelAdapter.wrap(model)
    if device is not None:
        adapter.model.to(device)
    neurons = adapter.check_neurons(parse(neurons))
    opts = _settings(method, steps, restarts, lr, samples, schedule, temperature, batch_size, candidates,
                     eval_every, init, fluency, selection)
    problem = Problem(adapter, neurons, length, position, vocab=vocab, amp_dtype=_amp_dtype(dtype, adapter.device),
                      soft=method != "corpus", surrogate=surrogate)
    _check_fluency(problem, method, fluency)
    config = dict(method=method, length=problem.n, position=problem.pos, seed=seed, steps=opts["steps"],
                  restarts=opts["restarts"], lr=opts["lr"], batch_size=batch_size, model=adapter.name,
                  amp=str(problem.amp_dtype), encoder=problem.encoder,
                  corpus=corpus if isinstance(corpus, str) or corpus is None else type(corpus).__name__)
    if method == "gumbel":
        config.update(schedule=schedule, samples=opts["samples"])
    if method == "discrete":
        config.update(fluency=fluency, selection=resolve_selection(selection, fluency))
    with eval_mode(adapter):
        base = _baseline(problem, method, corpus, corpus_max, init, opts["restarts"], eval_batch, progress)
        if method == "corpus":
            return TextualizeResult(_corpus_results(problem, base), config)
        kwargs = dict(samples=opts["samples"], schedule=opts["schedule"], penalty=penalty, candidates=candidates,
                      topk=topk, restart_every=restart_every, eval_every=eval_every, eval_batch=eval_batch,
                      fluency=fluency, restarts=opts["restarts"], selection=selection)
        results = _optimize(problem, method, base, seed, opts, batch_size, init, kwargs, progress)
    return TextualizeResult(results, config)


def _settings(method, steps, restarts, lr, samples, schedule, temperature, batch_size, candidates, eval_every,
              init, fluency, selection) -> dict[str, Any]:
    """Steps, restarts, lr, samples and the temperature schedule, from the arguments, the published schedule
    and the method's defaults (in that order); errors name the bad option."""
    preset = dict(DEFAULTS[method])
    if schedule != "anneal" and method != "gumbel":
        raise TextualizeError(f"schedule={schedule!r} applies to method='gumbel' only")
    if method == "gumbel" and schedule != "anneal":
        resolve_schedule(schedule, temperature, 1)  # unknown names fail here
        preset.update({k: v for k, v in SCHEDULES[schedule].items() if k != "schedule"})
    opts = dict(steps=preset["steps"] if steps is None else int(steps),
                restarts=preset["restarts"] if restarts is None else int(restarts),
                lr=preset["lr"] if lr is None else float(lr),
                samples=preset.get("samples", 4) if samples is None else int(samples))
    if opts["steps"] < 0 or (method != "corpus" and opts["steps"] < 1):
        raise TextualizeError(f"steps must be >= 1, got {opts['steps']}")
    if min(opts["restarts"], batch_size, opts["samples"], candidates, eval_every) < 1:
        raise TextualizeError("restarts, batch_size, samples, candidates and eval_every must be >= 1")
    if init not in ("random", "corpus"):
        raise TextualizeError(f"init must be 'random' or 'corpus', got {init!r}")
    resolve_selection(selection, fluency)
    opts["schedule"] = resolve_schedule(schedule, temperature, opts["steps"]) if method == "gumbel" else None
    return opts


def _check_fluency(problem: Problem, method: str, fluency) -> None:
    if uses_fluency(fluency) and method != "discrete":
        raise TextualizeError("fluency weights apply to method='discrete' only")
    if uses_fluency(fluency) and problem.encoder:
        raise TextualizeError(f"{problem.adapter.name} is an encoder: self cross-entropy (fluency) needs a "
                              "decoder's next-token predictions")
    if uses_fluency(fluency) and problem.n == 1 and problem.lo == 0:
        raise TextualizeError(f"fluency needs an optimized token with a left context: {problem.adapter.name} puts "
                              "no token (BOS) before the text, so use length >= 2")


def _baseline(problem: Problem, method: str, corpus, corpus_max, init: str, restarts: int, eval_batch: int,
              progress: bool) -> _Baseline:
    """The corpus maximum per neuron: scanned from ``corpus`` (also the result of ``method="corpus"`` and
    the start of ``init="corpus"``) or taken from ``corpus_max``."""
    if corpus is not None and (corpus_max is None or method == "corpus" or init == "corpus"):
        t = time.perf_counter()
        vals, idx, windows, _ = scan(problem, corpus_sentences(corpus), restarts if init == "corpus" else 1,
                                     eval_batch, progress)
        best = {}
        for j, nrn in enumerate(problem.neurons):
            ids = windows[int(idx[j, 0])].tolist()
            best[nrn] = (float(vals[j, 0]), problem.decode(ids)[1], ids)
        return _Baseline(best, (idx, windows), time.perf_counter() - t)
    if method == "corpus":
        raise TextualizeError("method='corpus' needs a corpus")
    best = {}
    for key, value in (corpus_max or {}).items():
        act, text = (value, "") if isinstance(value, (int, float)) else (value[0], value[1])
        best[Neuron.parse(key)] = (float(act), str(text), [])
    return _Baseline(best)


def _corpus_results(problem: Problem, base: _Baseline) -> list[NeuronText]:
    results = []
    for nrn in problem.neurons:
        act, text, ids = base.best[nrn]
        results.append(NeuronText(nrn, "corpus", problem.decode(ids)[0], ids, text, act, act, text, 0,
                                  base.seconds / len(problem.neurons), fluency_of(problem, [ids])[0]))
    return results


def _optimize(problem: Problem, method: str, base: _Baseline, seed: int, opts: dict, batch_size: int, init: str,
              kwargs: dict, progress: bool) -> list[NeuronText]:
    """Run the method over chunks of neurons (sorted by layer, so shallow chunks stop early), each chunk from
    its own generator; under several ranks, rank ``r`` runs chunks ``r, r + world, ...`` (deep and shallow
    chunks spread over the ranks) and the results are gathered on every rank."""
    neurons, restarts = problem.neurons, opts["restarts"]
    distributed.setup()
    problem.check_reachable(generator(seed, problem.device))
    order = sorted(range(len(neurons)), key=lambda i: (neurons[i].layer, i))
    chunks = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    mine = range(distributed.rank(), len(chunks), distributed.world_size())
    out: dict[int, NeuronText] = {}
    with tqdm(total=opts["steps"] * len(mine), disable=not progress or not distributed.is_main(),
              desc=f"textualize ({method})") as bar:
        for c in mine:
            chunk, gen = chunks[c], chunk_generator(seed, c, problem.device)
            t = time.perf_counter()
            rows = problem.rows(chunk, restarts)
            if method == "discrete" and init == "corpus" and base.windows is not None:
                kwargs["init"] = corpus_init(problem, base.windows, chunk, restarts)
            best = _RUNNERS[method](problem, rows, steps=opts["steps"], lr=opts["lr"], gen=gen, bar=bar, **kwargs)
            texts = _readout(problem, method, rows, chunk, best, restarts, kwargs["eval_batch"])
            seconds = (time.perf_counter() - t) / len(chunk)
            for i, r in zip(chunk, texts):
                r.corpus_max, r.corpus_text, _ = base.best.get(r.neuron, (math.nan, "", []))
                r.steps, r.seconds = opts["steps"], seconds
                out[i] = r
    if distributed.world_size() > 1:
        out = {i: r for part in distributed.gather(out) for i, r in part.items()}
    return [out[i] for i in range(len(neurons))]


def _readout(problem: Problem, method: str, rows, chunk: Sequence[int], best: Best, restarts: int,
             eval_batch: int) -> list[NeuronText]:
    """The best restart per neuron, its discrete tokens re-scored exactly in the model's precision."""
    tokens = problem.allowed[best.tokens]
    _, act, _ = problem.score(rows, tokens, batch=eval_batch, amp=False, target=True)
    pick = best_per_neuron(act, len(chunk), restarts)
    final_tokens, final_act = tokens[pick].cpu().tolist(), act[pick].cpu().tolist()
    sims = best.similarity[pick].cpu().tolist() if best.similarity is not None else [math.nan] * len(chunk)
    fluencies = fluency_of(problem, final_tokens)
    texts = []
    for j, i in enumerate(chunk):
        names, text = problem.decode(final_tokens[j])
        texts.append(NeuronText(problem.neurons[i], method, names, final_tokens[j], text, float(final_act[j]),
                                fluency=fluencies[j], similarity=sims[j]))
    if best.vectors is not None:
        _dense_readout(problem, problem.rows(chunk), best.vectors[pick], texts)  # the picked rows' neurons
    return texts


@torch.no_grad()
def _dense_readout(problem: Problem, rows, vectors: torch.Tensor, texts: list[NeuronText],
                   k: int = 5) -> None:
    """Keep each neuron's optimized vectors, their activation (model precision) and their nearest tokens with
    cosine and the share of squared norm each token's direction explains."""
    act, _ = problem.forward(rows, embeds=vectors.to(problem.E.dtype), target=True)
    En = normalize(problem.E.float(), dim=-1)
    cos, idx = (normalize(vectors, dim=-1) @ En.T).topk(min(k, En.shape[0]), dim=-1)  # [N, n, k]
    token_ids = problem.allowed[idx]
    for j, r in enumerate(texts):
        r.vectors = vectors[j].cpu().numpy()
        r.vector_activation = float(act[j])
        r.nearest = [dict(position=p, rank=q, token=problem.names[int(token_ids[j, p, q])],
                          token_id=int(token_ids[j, p, q]), cosine=float(cos[j, p, q]),
                          norm_share=float(cos[j, p, q]) ** 2)
                     for p in range(cos.shape[1]) for q in range(cos.shape[2])]
        r.extra["nearest"] = [[near["token"] for near in r.nearest if near["position"] == p][:3]
                              for p in range(cos.shape[1])]


def corpus_init(problem: Problem, corpus_windows, chunk: Sequence[int], restarts: int) -> torch.Tensor:
    """Start tokens from each neuron's top corpus windows (allowed-index space; disallowed tokens random)."""
    idx, windows = corpus_windows
    lookup = torch.full((problem.adapter.d_vocab,), -1, dtype=torch.long)
    lookup[problem.allowed.cpu()] = torch.arange(problem.n_allowed)
    rows = [lookup[windows[int(idx[i, min(r, idx.shape[1] - 1)])]] for i in chunk for r in range(restarts)]
    init = torch.stack(rows)
    return torch.where(init < 0, torch.zeros_like(init), init).to(problem.device)


def fluency_of(problem: Problem, token_lists: Sequence[Sequence[int]]) -> list[float]:
    """Self cross-entropy of finished token sequences (decoders; NaN for encoders or empty)."""
    if problem.encoder or not token_lists or not token_lists[0]:
        return [math.nan] * len(token_lists)
    tokens = torch.as_tensor(token_lists, dtype=torch.long, device=problem.device)
    with torch.no_grad():
        logits = problem.adapter.forward(problem.ids(tokens), return_type="logits")
        return problem.self_ce(logits, tokens).cpu().tolist()


def _amp_dtype(dtype, device: torch.device) -> torch.dtype | None:
    if dtype is None or dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else None
    if isinstance(dtype, str):
        if dtype not in _AMP:
            raise TextualizeError(f"dtype must be one of {list(_AMP)} or 'auto', got {dtype!r}")
        return _AMP[dtype]
    if dtype == torch.float32:
        return None
    if dtype not in (torch.bfloat16, torch.float16):
        raise TextualizeError(f"dtype must be float32, bfloat16 or float16, got {dtype}")
    return dtype
