"""How many neurons encode a word (Baeumel et al. 2023's question): for each word, its top-k neurons of a
layer are maximized jointly in the token-embedding space and the word is recovered or not. Not a ranker
benchmark: neurons are chosen by their response to the word itself against the rest of the vocabulary."""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from einops import rearrange
from torch.nn.functional import normalize
from tqdm.auto import tqdm

from ..core.adapter import ModelAdapter
from ..core.neurons import Neuron
from ._corpus import eval_mode
from ._dense import dense
from ._problem import Problem, Rows
from ._steps import generator
from ._config import WordsNeededConfig
from ._vocab import TextualizeError, VocabSpec, single_token

WORD_COLUMNS = ["layer", "word", "k", "recovered", "nearest", "rank", "cosine", "objective", "neurons"]


class JointProblem(Problem):
    """One token read at one layer and site; row group ``g`` maximizes the weighted sum
    ``weights[g] @ activations`` of the site's neurons (e.g. the mean of a word's top-k neurons)."""

    def __init__(self, adapter: ModelAdapter, layer: int, site: str, weights: torch.Tensor, vocab: VocabSpec,
                 surrogate: bool | None):
        groups = [Neuron(layer, 0, site)] * weights.shape[0]
        super().__init__(adapter, groups, length=1, position=0, vocab=vocab, surrogate=surrogate)
        self.weights = weights.to(self.device)

    def _reader(self, rows: Rows, col_of: torch.Tensor, h: str = "", target: bool = True
                ) -> Callable[[torch.Tensor], torch.Tensor]:
        def read(act: torch.Tensor) -> torch.Tensor:
            flat = self._units(h, rearrange(act[:, self.seq_pos], "b ... -> b (...)"), target).float()
            return (flat * self.weights[rows.index]).sum(dim=-1)
        return read


class WordsNeeded:
    """The result of :func:`words_needed`: ``table`` (one row per layer, word and k; :data:`WORD_COLUMNS`),
    ``curve`` (share of words recovered per layer and k), ``needed`` (the smallest k that recovers each word,
    NaN if none does) and :meth:`plot`; ``config`` is the run's ``WordsNeededConfig.to_dict()``."""

    #: the result kind the report labels this result with
    kind = "words_needed"

    def __init__(self, table: "pandas.DataFrame", config: "dict | None" = None):  # noqa: F821
        self.table = table
        self.config = dict(config or {})

    def to_frame(self) -> "pandas.DataFrame":  # noqa: F821
        """:attr:`table` (one row per layer, word and k)."""
        return self.table

    @property
    def curve(self) -> "pandas.DataFrame":  # noqa: F821
        out = self.table.groupby(["layer", "k"], as_index=False).agg(share=("recovered", "mean"),
                                                                    words=("word", "nunique"))
        return out

    @property
    def needed(self) -> "pandas.DataFrame":  # noqa: F821
        hit = self.table[self.table.recovered]
        first = hit.groupby(["layer", "word"]).k.min().rename("needed")
        words = self.table[["layer", "word"]].drop_duplicates().set_index(["layer", "word"])
        return words.join(first).reset_index()

    def plot(self, path=None):
        """Share of words recovered against k, one line per layer (log k axis)."""
        from ..core.plotting import pyplot, save

        plt = pyplot()
        fig, ax = plt.subplots(figsize=(5.5, 3.6))
        for layer, part in self.curve.groupby("layer"):
            ax.plot(part.k, part.share, marker="o", label=f"layer {layer}")
        ax.set_xscale("log")
        ax.set_xlabel("k (top neurons maximized jointly)")
        ax.set_ylabel("share of words recovered")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=8)
        if path is not None:
            save(fig, path)
        return fig


def words_needed(model, words: Sequence[str], layers: "int | Iterable[int]", config: WordsNeededConfig | None = None,
                 *, device: "str | torch.device | None" = None, progress: bool = False) -> WordsNeeded:
    """How many neurons encode a word: for each word and each k of ``config.ks``, maximize the word's top-k
    neurons jointly and record whether the word comes back.

    The k neurons of each layer (and ``config.site``) that respond most to the word (activation on the word
    alone, framed like text, standardized against ``config.reference`` random tokens of the vocabulary) have
    their mean maximized with free vectors in the token-embedding space (``config.optimizer``, a
    :class:`Dense`); the word is recovered when it is the nearest token (cosine) of the optimized vector.

    Parameters
    ----------
    model : HookedTransformer, TransformerBridge or ModelAdapter
    words : list of str
        Single-token words.
    layers : int or list of int
        Layers to test (one curve per layer).
    config : WordsNeededConfig, optional
        None: ``WordsNeededConfig()``.
    device : str or torch.device, optional
        Move the model there first.
    progress : bool
        Show a progress bar.

    Returns
    -------
    WordsNeeded
        ``table`` (one row per layer, word and k), ``curve``, ``needed`` and ``plot()``.

    Examples
    --------
    >>> import tl_neuronprobe as tnp
    >>> from tl_neuronprobe.textualization import Dense, WordsNeededConfig, words_needed
    >>> config = WordsNeededConfig(ks=[1, 2], optimizer=Dense(max_steps=5, restarts=1), reference=50)
    >>> result = words_needed(tnp.models.load("planted"), ["cabinet"], layers=[1], config=config)
    >>> sorted(result.table.k)
    [1, 2]
    """
    import pandas as pd

    config = WordsNeededConfig() if config is None else config
    adapter = ModelAdapter.wrap(model)
    if device is not None:
        adapter.model.to(device)
    word_ids = _word_ids(adapter, words)
    layers = [int(layers)] if isinstance(layers, (int, np.integer)) else [int(x) for x in layers]
    frames = []
    with eval_mode(adapter):
        for L in adapter.check_layers(config.site, layers):
            order = _word_neurons(adapter, L, word_ids, config)
            frames.append(_recover(adapter, L, list(words), word_ids, order, config, progress))
    return WordsNeeded(pd.concat(frames, ignore_index=True)[WORD_COLUMNS], config.to_dict())


def _word_ids(adapter: ModelAdapter, words: Sequence[str]) -> list[int]:
    ids = [single_token(adapter.tokenizer, str(w)) for w in words]
    bad = [w for w, i in zip(words, ids) if i is None]
    if bad or not ids:
        raise TextualizeError(f"words_needed needs single-token words; not single tokens of {adapter.name}: "
                              f"{bad[:10]}" if bad else "no words given")
    return [int(i) for i in ids]


@torch.no_grad()
def _word_neurons(adapter: ModelAdapter, layer: int, word_ids: list[int], config: WordsNeededConfig) -> torch.Tensor:
    """Neurons of the layer ordered by their standardized response to each word [W, width]."""
    site, reference, vocab, seed = config.site, config.reference, config.vocab, config.seed
    width = adapter.site_width(site)
    problem = Problem(adapter, [Neuron(layer, j, site) for j in range(width)], 1, 0, vocab=vocab, soft=False)
    g = torch.Generator().manual_seed(int(seed))
    ref = problem.allowed.cpu()[torch.randperm(problem.n_allowed, generator=g)[:reference]]
    acts = [problem.all_neuron_forward(chunk[:, None].to(problem.device))
            for chunk in torch.cat([torch.as_tensor(word_ids), ref]).split(512)]
    acts = torch.cat(acts)
    mine, rest = acts[:len(word_ids)], acts[len(word_ids):]
    z = (mine - rest.mean(dim=0)) / (rest.std(dim=0) + 1e-6)
    return z.argsort(dim=1, descending=True).cpu()


def _recover(adapter: ModelAdapter, layer: int, words: list[str], word_ids: list[int], order: torch.Tensor,
             config: WordsNeededConfig, progress: bool) -> "pandas.DataFrame":  # noqa: F821
    """Jointly maximize each word's top-k neurons for every k; one row per word and k."""
    import pandas as pd

    ks, opt, seed = config.ks, config.optimizer, config.seed
    restarts = opt.restarts

    ks = sorted({min(int(k), order.shape[1]) for k in ks})
    groups = [(w, k) for w in range(len(words)) for k in ks]
    weights = torch.zeros(len(groups), order.shape[1])
    for g, (w, k) in enumerate(groups):
        weights[g, order[w, :k]] = 1.0 / k
    problem = JointProblem(adapter, layer, config.site, weights, config.vocab, config.surrogate)
    missing = [words[i] for i, t in enumerate(word_ids) if t not in set(problem.allowed.tolist())]
    if missing:
        raise TextualizeError(f"words outside the allowed vocabulary cannot be recovered: {missing[:10]}")
    rows = problem.rows(range(len(groups)), restarts)
    with tqdm(total=opt.max_steps, disable=not progress, desc=f"words_needed (layer {layer})") as bar:
        best = dense(problem, rows, opt, gen=generator(seed, problem.device), bar=bar, eval_every=config.eval_every,
                     eval_batch=config.eval_batch)
    with torch.no_grad():
        objective, _ = problem.forward(rows, embeds=best.vectors.to(problem.E.dtype))
        pick = rearrange(objective, "(g r) -> g r", r=restarts).argmax(dim=1) + torch.arange(
            len(groups), device=objective.device) * restarts
        cos = normalize(best.vectors[pick, 0], dim=-1) @ normalize(problem.E.float(), dim=-1).T  # [G, V']
    position = {int(t): i for i, t in enumerate(problem.allowed.tolist())}
    out = []
    for g, (w, k) in enumerate(groups):
        mine = cos[g, position[word_ids[w]]]
        rank = int((cos[g] > mine).sum())
        out.append(dict(layer=layer, word=words[w], k=k, recovered=rank == 0,
                        nearest=problem.names[int(problem.allowed[cos[g].argmax()])], rank=rank,
                        cosine=float(mine), objective=float(objective[pick[g]]),
                        neurons=tuple(int(j) for j in order[w, :k])))
    return pd.DataFrame(out)
