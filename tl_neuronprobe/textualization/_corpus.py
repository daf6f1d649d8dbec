"""The corpus baseline: every distinct token window of a corpus, framed like optimized text, streamed through
the model with a running top-k per neuron. Not an optimizer: it only reads what real text reaches.

Across ranks (``torchrun``, :mod:`tl_neuronprobe.core.distributed`) each rank scans a contiguous share of the
window batches and the per-rank top-k lists are merged; ties go to the earlier window, so the result is the
single-process one."""

from __future__ import annotations

import contextlib
import math
from typing import Sequence

import torch
from tqdm.auto import tqdm

from ..core import distributed
from ..core.adapter import ModelAdapter
from ..core.neurons import Neuron, parse_neurons
from ..data.corpus import Corpus
from ._problem import Problem
from ._vocab import TextualizeError

#: the default baseline: the real English treebank slice shipped in the package
DEFAULT_CORPUS = "ud-english"
WINDOW_COLUMNS = ["neuron", "rank", "activation", "text", "tokens", "token_ids", "sentence", "start"]


def corpus_sentences(corpus) -> list[str]:
    """Sentences as text from a :class:`Corpus`, a corpus spec (``"ud-english[:N]"``, ``"synthetic:N"``, a
    file) or a list of strings or word lists."""
    if corpus is None:
        raise TextualizeError("no corpus given")
    if isinstance(corpus, str):
        corpus = Corpus.load(corpus)
    if isinstance(corpus, Corpus):
        return [" ".join(s.words) for s in corpus.sentences]
    out = [s if isinstance(s, str) else " ".join(str(w) for w in s) for s in corpus]
    if not out:
        raise TextualizeError("the corpus is empty")
    return out


def distinct_windows(problem: Problem, sentences: Sequence[str]) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """Distinct token windows of length ``problem.n`` (no specials) and where each first occurs."""
    enc = problem.adapter.tokenizer(list(sentences), add_special_tokens=False)["input_ids"]
    seen: dict[tuple[int, ...], tuple[int, int]] = {}
    n = problem.n
    for si, ids in enumerate(enc):
        for start in range(0, len(ids) - n + 1):
            seen.setdefault(tuple(ids[start:start + n]), (si, start))
    if not seen:
        raise TextualizeError(f"no corpus sentence has {n} tokens: use a shorter window or a longer corpus")
    return torch.as_tensor(list(seen), dtype=torch.long), list(seen.values())


def scan(problem: Problem, sentences: Sequence[str], k: int, batch_size: int, progress: bool):
    """Top-``k`` windows per neuron: (values [N, k], window indices [N, k], windows [W, n], where).

    Under several ranks each scans its share of the batches (the same batches as one process, so the same
    activations) and the shares' top-k are merged on every rank."""
    distributed.setup()
    windows, where = distinct_windows(problem, sentences)
    k = max(1, min(int(k), len(windows)))
    N = len(problem.neurons)
    best_v = torch.full((N, 0), -math.inf, device=problem.device)
    best_i = torch.zeros((N, 0), dtype=torch.long, device=problem.device)
    dev_windows = windows.to(problem.device)
    starts = range(0, len(windows), batch_size)
    mine = [starts[i] for i in distributed.share(len(starts))]
    with torch.no_grad(), eval_mode(problem.adapter):
        for start in tqdm(mine, disable=not progress or not distributed.is_main(), desc="corpus windows"):
            chunk = dev_windows[start:start + batch_size]
            acts = problem.all_neuron_forward(chunk).T  # [N, b]
            idx = torch.arange(start, start + chunk.shape[0], device=problem.device).expand(N, -1)
            best_v, best_i = first_k(torch.cat([best_v, acts], dim=1), torch.cat([best_i, idx], dim=1), k)
    best_v, best_i = best_v.cpu(), best_i.cpu()
    if distributed.world_size() > 1:
        parts = distributed.gather((best_v, best_i))
        best_v, best_i = first_k(torch.cat([v for v, _ in parts], 1), torch.cat([i for _, i in parts], 1), k)
    return best_v, best_i, windows, where


def first_k(values: torch.Tensor, index: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row the ``k`` largest ``values`` with their ``index``, ordered by value then smaller index first.

    Ties go to the smaller index, so top-k lists of any split of the columns, merged again, give the top-k of
    all of them (``topk`` alone picks among tied values arbitrarily)."""
    k = min(int(k), values.shape[1])
    if k == 0:
        return values, index
    top = values.topk(k, dim=1)
    v, i = top.values, index.gather(1, top.indices)
    tied = (values >= v[:, -1:]).sum(1) > k  # the k-th value is tied beyond the cut: choose by index
    if bool(tied.any()):
        rows = tied.nonzero().squeeze(1)
        v[rows], i[rows] = _by_value_then_index(values[rows], index[rows], k)
    return _by_value_then_index(v, i, k)


def _by_value_then_index(values: torch.Tensor, index: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    by_index = index.argsort(dim=1)
    values, index = values.gather(1, by_index), index.gather(1, by_index)
    order = values.sort(dim=1, descending=True, stable=True).indices[:, :k]
    return values.gather(1, order), index.gather(1, order)


def corpus_top_windows(model, corpus, neurons, *, length: int = 5, n_windows: int = 5, position: int | None = None,
                       batch_size: int = 512, device: "str | torch.device | None" = None,
                       progress: bool = False) -> "pandas.DataFrame":  # noqa: F821
    """The ``n_windows`` distinct corpus token windows of ``length`` tokens that drive each neuron most.

    Each window runs on its own, framed like :func:`textualize`'s inputs (BOS / ``[CLS] ... [SEP]``), and the
    neuron is read at ``position`` of the window (default: last token for decoders, the middle for encoders).
    Windows are streamed ``batch_size`` at a time with a running top list per neuron (ties: the earlier window).
    Under ``torchrun`` the ranks scan shares of the batches and every rank returns the single-process table.

    Parameters
    ----------
    model : HookedTransformer, TransformerBridge or ModelAdapter
    corpus : Corpus, corpus spec (``"ud-english[:N]"``, ``"synthetic:N"``, a file) or list of sentences
    neurons : str, Neuron or list of them
    length, n_windows, position, batch_size : int
        Window length in tokens, windows kept per neuron, reading position, windows per forward pass.
    device : str or torch.device, optional
        Move the model there first.
    progress : bool
        Show a progress bar.

    Returns
    -------
    pandas.DataFrame
        Columns neuron, rank, activation, text, tokens, token_ids, sentence, start.

    Examples
    --------
    >>> import tl_neuronprobe as tnp
    >>> model = tnp.models.load("planted")
    >>> windows = tnp.corpus_top_windows(model, "synthetic:40", "L1.N57", length=2, n_windows=3)
    >>> list(windows["rank"])
    [0, 1, 2]
    """
    import pandas as pd

    adapter = ModelAdapter.wrap(model)
    if device is not None:
        adapter.model.to(device)
    neurons = adapter.check_neurons(parse(neurons))
    problem = Problem(adapter, neurons, length, position, soft=False)
    top_vals, top_idx, windows, where = scan(problem, corpus_sentences(corpus), n_windows, batch_size, progress)
    rows = []
    for j, neuron in enumerate(neurons):
        for rank in range(top_vals.shape[1]):
            w = int(top_idx[j, rank])
            ids = windows[w].tolist()
            names, text = problem.decode(ids)
            rows.append(dict(neuron=str(neuron), rank=rank, activation=float(top_vals[j, rank]), text=text,
                             tokens=tuple(names), token_ids=tuple(ids), sentence=where[w][0], start=where[w][1]))
    return pd.DataFrame(rows, columns=WINDOW_COLUMNS)


@contextlib.contextmanager
def eval_mode(adapter: ModelAdapter):
    """The model in eval mode for the block, restored afterwards."""
    model = adapter.model
    was = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was)


def parse(neurons) -> list[Neuron]:
    """Neurons from a spec string, a :class:`Neuron` or a list; an error when none are given."""
    if isinstance(neurons, (str, Neuron)):
        neurons = [neurons] if isinstance(neurons, Neuron) else parse_neurons(neurons)
    out = parse_neurons(list(neurons))
    if not out:
        raise TextualizeError("no neurons given")
    return out
