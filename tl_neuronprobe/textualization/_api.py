"""``textualize``: the one entry point, as a pipeline of named steps (settings -> problem -> corpus baseline
-> batched optimization -> exact re-scoring -> results). The optimizers live in ``_gumbel``, ``_dense`` and
``_discrete``; the problem they share in ``_problem``. Under ``torchrun`` the ranks share the corpus scan and the
chunks of neurons (:mod:`tl_neuronprobe.core.distributed`) and every rank returns the single-process result."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Iterable, Sequence

import torch
from torch.nn.functional import normalize
from tqdm.auto import tqdm

from ..core import distributed
from ..core.adapter import ModelAdapter
from ..core.neurons import Neuron
from ._config import CorpusSearch, Discrete, TextualizeConfig
from ._corpus import corpus_sentences, eval_mode, parse, scan
from ._dense import dense
from ._discrete import discrete, resolve_selection
from ._gumbel import gumbel
from ._problem import Problem
from ._results import NeuronText, TextualizeResult
from ._steps import Best, best_per_neuron, chunk_generator, generator
from ._vocab import TextualizeError

_RUNNERS = {"gumbel": gumbel, "dense": dense, "discrete": discrete}
_AMP = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class _Baseline:
    """Corpus maximum per neuron ``{neuron: (activation, text, token ids)}``, the scan's top windows (for
    ``init="corpus"``) and the scan's time."""

    best: dict
    windows: "tuple[torch.Tensor, torch.Tensor] | None" = None
    seconds: float = 0.0


def textualize(model, neurons: "str | Neuron | Iterable[str | Neuron]", config: TextualizeConfig | None = None, *,
               corpus_max: "dict | None" = None, device: "str | torch.device | None" = None,
               progress: bool = True) -> TextualizeResult:
    """Find, for each neuron, ``config.length`` tokens that make it fire most.

    Parameters
    ----------
    model : HookedTransformer, TransformerBridge or ModelAdapter
        The model (its tokenizer frames and reads out the text).
    neurons : str, Neuron or list of them
        ``"L3.N1207,L5.N88"``, :class:`Neuron` objects, or a list of either.
    config : TextualizeConfig, optional
        The optimizer (``Gumbel()``, ``Dense()``, ``Discrete()``, ``CorpusSearch()``) and the shared settings;
        None: ``TextualizeConfig()`` (Gumbel, 5 tokens, the shipped English treebank as baseline).
    corpus_max : dict, optional
        Precomputed ``{neuron: (activation, text)}`` (or ``{neuron: activation}``) to skip the corpus scan of
        ``config.corpus`` (still scanned for ``CorpusSearch`` and ``Discrete(init="corpus")``).
    device : str or torch.device, optional
        Move the model there first (default: where it is).
    progress : bool
        Show a progress bar.

    Returns
    -------
    TextualizeResult
        One :class:`NeuronText` per neuron (``.table``, ``.plot()``, ``.save()``), with ``config.to_dict()``.

    Examples
    --------
    >>> import tl_neuronprobe as tnp
    >>> from tl_neuronprobe.textualization import Discrete, TextualizeConfig
    >>> model = tnp.models.load("planted")
    >>> config = TextualizeConfig(optimizer=Discrete(max_steps=15), length=2, corpus=None)
    >>> result = tnp.textualize(model, "L1.N57", config, progress=False)
    >>> result[0].tokens[-1]
    'cabinet'
    """
    config = TextualizeConfig() if config is None else config
    if not isinstance(config, TextualizeConfig):
        raise TextualizeError(f"config must be a TextualizeConfig, got {type(config).__name__} (an optimizer goes "
                              "inside it: TextualizeConfig(optimizer=Gumbel(...)))")
    opt = config.optimizer
    adapter = ModelAdapter.wrap(model)
    if device is not None:
        adapter.model.to(device)
    neurons = adapter.check_neurons(parse(neurons))
    problem = Problem(adapter, neurons, config.length, config.position, vocab=config.vocab,
                      amp_dtype=_amp_dtype(config.dtype, adapter.device), soft=not isinstance(opt, CorpusSearch),
                      surrogate=config.surrogate)
    _check_fluency(problem, opt)
    info = dict(model=adapter.name, position=problem.pos, amp=str(problem.amp_dtype), encoder=problem.encoder)
    if isinstance(opt, Discrete):
        info.update(selection=resolve_selection(opt.selection, opt.fluency))
    with eval_mode(adapter):
        base = _baseline(problem, config, corpus_max, progress)
        if isinstance(opt, CorpusSearch):
            return TextualizeResult(_corpus_results(problem, base), config.to_dict(), info)
        results = _optimize(problem, config, base, progress)
    return TextualizeResult(results, config.to_dict(), info)


def _check_fluency(problem: Problem, opt) -> None:
    if not (isinstance(opt, Discrete) and opt.uses_fluency):
        return
    if problem.encoder:
        raise TextualizeError(f"{problem.adapter.name} is an encoder: self cross-entropy (fluency) needs a "
                              "decoder's next-token predictions")
    if problem.n == 1 and problem.lo == 0:
        raise TextualizeError(f"fluency needs an optimized token with a left context: {problem.adapter.name} puts "
                              "no token (BOS) before the text, so use length >= 2")


def _from_corpus(config: TextualizeConfig) -> bool:
    """Whether the run starts from the top corpus windows (``Discrete(init="corpus")``)."""
    return isinstance(config.optimizer, Discrete) and config.optimizer.init == "corpus"


def _baseline(problem: Problem, config: TextualizeConfig, corpus_max, progress: bool) -> _Baseline:
    """The corpus maximum per neuron: scanned from ``config.corpus`` (also the result of ``CorpusSearch`` and
    the start of ``Discrete(init="corpus")``) or taken from ``corpus_max``."""
    corpus, search = config.corpus, isinstance(config.optimizer, CorpusSearch)
    if corpus is not None and (corpus_max is None or search or _from_corpus(config)):
        t = time.perf_counter()
        k = config.optimizer.restarts if _from_corpus(config) else 1
        vals, idx, windows, _ = scan(problem, corpus_sentences(corpus), k, config.eval_batch, progress)
        best = {}
        for j, nrn in enumerate(problem.neurons):
            ids = windows[int(idx[j, 0])].tolist()
            best[nrn] = (float(vals[j, 0]), problem.decode(ids)[1], ids)
        return _Baseline(best, (idx, windows), time.perf_counter() - t)
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


def _optimize(problem: Problem, config: TextualizeConfig, base: _Baseline, progress: bool) -> list[NeuronText]:
    """Run the optimizer over chunks of neurons (sorted by layer, so shallow chunks stop early), each chunk from
    its own generator; under several ranks, rank ``r`` runs chunks ``r, r + world, ...`` (deep and shallow
    chunks spread over the ranks) and the results are gathered on every rank."""
    opt, seed, batch_size = config.optimizer, config.seed, config.batch_size
    neurons, restarts = problem.neurons, opt.restarts
    distributed.setup()
    problem.check_reachable(generator(seed, problem.device))
    order = sorted(range(len(neurons)), key=lambda i: (neurons[i].layer, i))
    chunks = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    mine = range(distributed.rank(), len(chunks), distributed.world_size())
    out: dict[int, NeuronText] = {}
    with tqdm(total=opt.max_steps * len(mine), disable=not progress or not distributed.is_main(),
              desc=f"textualize ({opt.name})") as bar:
        for c in mine:
            chunk, gen = chunks[c], chunk_generator(seed, c, problem.device)
            t = time.perf_counter()
            rows = problem.rows(chunk, restarts)
            init = (corpus_init(problem, base.windows, chunk, restarts)
                    if _from_corpus(config) and base.windows is not None else None)
            best = _RUNNERS[opt.name](problem, rows, opt, gen=gen, bar=bar, eval_every=config.eval_every,
                                      eval_batch=config.eval_batch, init=init)
            texts = _readout(problem, opt.name, rows, chunk, best, restarts, config.eval_batch)
            seconds = (time.perf_counter() - t) / len(chunk)
            for i, r in zip(chunk, texts):
                r.corpus_max, r.corpus_text, _ = base.best.get(r.neuron, (math.nan, "", []))
                r.max_steps, r.seconds = opt.max_steps, seconds
                out[i] = r
    if distributed.world_size() > 1:
        out = {i: r for part in distributed.gather(out) for i, r in part.items()}
    return [out[i] for i in range(len(neurons))]


def _readout(problem: Problem, optimizer: str, rows, chunk: Sequence[int], best: Best, restarts: int,
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
        texts.append(NeuronText(problem.neurons[i], optimizer, names, final_tokens[j], text, float(final_act[j]),
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


def _amp_dtype(dtype: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``TextualizeConfig.dtype`` (validated there) on ``device``."""
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else None
    return _AMP[dtype]
