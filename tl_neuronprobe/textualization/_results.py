"""What textualization returns: one :class:`NeuronText` per neuron, the tidy tables over them, the dense
vectors of ``Dense()`` with their nearest tokens, plots, and saving/loading. No optimization happens here."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ..core.neurons import Neuron

COLUMNS = ["neuron", "optimizer", "text", "tokens", "activation", "corpus_max", "ratio", "max_steps", "seconds",
           "fluency", "similarity", "corpus_text"]
#: columns of :meth:`TextualizeResult.nearest_table` (``Dense()``)
NEAREST_COLUMNS = ["neuron", "position", "rank", "token", "token_id", "cosine", "norm_share"]


@dataclass
class NeuronText:
    """The input found for one neuron by one optimizer (``gumbel``, ``dense``, ``discrete`` or ``corpus``).

    ``activation`` is the neuron's activation on the discrete ``token_ids`` (framed like real text, in the
    model's precision); ``ratio`` divides it by ``corpus_max`` (the best corpus window of the same length).
    ``fluency`` is the model's mean self cross-entropy of the tokens (decoders; NaN for encoders);
    ``max_steps`` is the steps (iterations) the optimizer ran; ``similarity`` (``dense``) is the mean cosine similarity between the optimized vectors and their tokens.
    ``dense`` only: ``vectors`` [length, d_model] are the optimized input vectors in the token-embedding space,
    ``vector_activation`` the neuron's activation when they are fed in place of token embeddings, and
    ``nearest`` their nearest tokens (rows of :data:`NEAREST_COLUMNS` without the neuron).
    """

    neuron: Neuron
    optimizer: str
    tokens: list[str]
    token_ids: list[int]
    text: str
    activation: float
    corpus_max: float = math.nan
    corpus_text: str = ""
    max_steps: int = 0
    seconds: float = math.nan
    fluency: float = math.nan
    similarity: float = math.nan
    extra: dict[str, Any] = field(default_factory=dict)
    vectors: "np.ndarray | None" = None
    vector_activation: float = math.nan
    nearest: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        """``activation / corpus_max``; NaN when the corpus maximum is not positive (no meaningful scale)."""
        if math.isnan(self.corpus_max) or self.corpus_max <= 0:
            return math.nan
        return self.activation / self.corpus_max

    @property
    def beats_corpus(self) -> bool:
        return not math.isnan(self.corpus_max) and self.activation >= self.corpus_max

    def row(self) -> dict[str, Any]:
        return dict(neuron=str(self.neuron), optimizer=self.optimizer, text=self.text, tokens=tuple(self.tokens),
                    activation=self.activation, corpus_max=self.corpus_max, ratio=self.ratio, max_steps=self.max_steps,
                    seconds=self.seconds, fluency=self.fluency, similarity=self.similarity,
                    corpus_text=self.corpus_text)


class TextualizeResult:
    """Results of one :func:`textualize` call: one :class:`NeuronText` per neuron, in the order asked.

    ``config`` is the run's ``TextualizeConfig.to_dict()`` (``TextualizeConfig.from_dict(result.config)`` runs it
    again); ``info`` what the run found out (model name, reading position, autocast dtype, encoder or not).
    """

    #: the result kind the report labels this result with
    kind = "textualize"

    def __init__(self, results: Sequence[NeuronText], config: dict[str, Any] | None = None,
                 info: dict[str, Any] | None = None):
        self.results = list(results)
        self.config = dict(config or {})
        self.info = dict(info or {})

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self) -> Iterator[NeuronText]:
        return iter(self.results)

    def __getitem__(self, key: "int | str | Neuron") -> NeuronText:
        if isinstance(key, int):
            return self.results[key]
        neuron = Neuron.parse(key)
        for r in self.results:
            if r.neuron == neuron:
                return r
        raise KeyError(f"neuron {neuron} is not in this result ({', '.join(str(r.neuron) for r in self.results)})")

    @property
    def table(self) -> "pandas.DataFrame":  # noqa: F821
        """One row per neuron: neuron, optimizer, text, tokens, activation, corpus_max, ratio, max_steps,
        seconds, fluency, similarity, corpus_text."""
        import pandas as pd

        return pd.DataFrame([r.row() for r in self.results], columns=COLUMNS)

    def to_frame(self) -> "pandas.DataFrame":  # noqa: F821
        """:attr:`table` (one row per neuron)."""
        return self.table

    @property
    def optimizer(self) -> str:
        """The optimizer's name (``gumbel``, ``dense``, ``discrete`` or ``corpus``)."""
        return self.results[0].optimizer if self.results else "?"

    def nearest_table(self) -> "pandas.DataFrame":  # noqa: F821
        """``dense``: one row per neuron, position and rank of a nearest token to the optimized vector, with
        its cosine and the share of the vector's squared norm its direction explains (cosine squared)."""
        import pandas as pd

        rows = [dict(neuron=str(r.neuron), **near) for r in self.results for near in r.nearest]
        return pd.DataFrame(rows, columns=NEAREST_COLUMNS)

    @property
    def win_rate(self) -> float:
        """Share of neurons whose discrete result reaches their corpus maximum (NaN without a corpus)."""
        scored = [r for r in self.results if not math.isnan(r.corpus_max)]
        return sum(r.beats_corpus for r in scored) / len(scored) if scored else math.nan

    @property
    def seconds(self) -> float:
        return float(sum(r.seconds for r in self.results))

    def plot_nearest(self, neuron: "int | str | Neuron", k: int = 5, path=None):
        """``dense``: the ``k`` nearest tokens of each position's vector, shaded by cosine; saved to ``path``
        if given. Returns the figure."""
        from ..core.plotting import pyplot, save

        r = self[neuron]
        if not r.nearest:
            raise ValueError(f"{r.neuron}: no dense vectors to plot (optimizer {r.optimizer!r}; use Dense())")
        n = len(r.tokens)
        k = min(k, 1 + max(near["rank"] for near in r.nearest))
        cos = np.full((k, n), np.nan)
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(1.6 + 1.5 * n, 0.8 + 0.45 * k))
        for near in r.nearest:
            if near["rank"] < k:
                cos[near["rank"], near["position"]] = near["cosine"]
                ax.text(near["position"], near["rank"], f"{near['token']}\n{near['cosine']:.2f}", ha="center",
                        va="center", fontsize=8)
        ax.imshow(cos, cmap="Blues", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(n), [f"pos {p}" for p in range(n)])
        ax.set_yticks(range(k), [f"#{i + 1}" for i in range(k)])
        ax.set_title(f"{r.neuron}: nearest tokens of the dense vectors (activation {r.vector_activation:.2f})")
        if path is not None:
            save(fig, path)
        return fig

    def plot(self, path=None):
        """Each neuron's activation on its found text beside its corpus maximum (horizontal bars); saved to
        ``path`` if given. Returns the figure. For ``Dense()`` vectors see :meth:`plot_nearest`."""
        from ..core.plotting import pyplot, save

        plt = pyplot()
        names = [str(r.neuron) for r in self.results]
        fig, ax = plt.subplots(figsize=(6.0, 0.9 + 0.35 * max(len(names), 1)))
        at = np.arange(len(names))
        ax.barh(at + 0.2, [r.activation for r in self.results], height=0.4, label=f"found ({self.optimizer})")
        corpus = [0.0 if math.isnan(r.corpus_max) else r.corpus_max for r in self.results]
        if any(not math.isnan(r.corpus_max) for r in self.results):
            ax.barh(at - 0.2, corpus, height=0.4, label="corpus max")
        ax.set_yticks(at, [f"{n}: {r.text}"[:40] for n, r in zip(names, self.results)], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("activation")
        ax.set_title(f"textualization: win rate vs corpus max {self.win_rate:.2f}")
        ax.legend(fontsize=8)
        if path is not None:
            save(fig, path)
        return fig

    def save(self, path) -> Path:
        """Write ``results.json`` (config and every field but the vectors) and, for ``dense``,
        ``vectors.safetensors`` (one [length, d_model] tensor per neuron) into the folder ``path``."""
        from safetensors.numpy import save_file

        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        records = []
        for r in self.results:
            rec = {k: v for k, v in asdict(r).items() if k != "vectors"}
            rec["neuron"] = str(r.neuron)
            records.append(rec)
        (folder / "results.json").write_text(json.dumps(dict(config=self.config, info=self.info, results=records),
                                                        indent=1, default=str))
        vectors = {str(r.neuron): np.ascontiguousarray(r.vectors, dtype=np.float32) for r in self.results
                   if r.vectors is not None}
        if vectors:
            save_file(vectors, str(folder / "vectors.safetensors"))
        return folder

    @classmethod
    def load(cls, path) -> "TextualizeResult":
        """Read a folder written by :meth:`save`."""
        from safetensors.numpy import load_file

        folder = Path(path)
        data = json.loads((folder / "results.json").read_text())
        vec_file = folder / "vectors.safetensors"
        vectors = load_file(str(vec_file)) if vec_file.exists() else {}
        results = []
        for rec in data["results"]:
            rec["neuron"] = Neuron.parse(rec["neuron"])
            results.append(NeuronText(**rec, vectors=vectors.get(str(rec["neuron"]))))
        return cls(results, data["config"], data.get("info"))

    def __repr__(self) -> str:
        return f"TextualizeResult({self.optimizer}, {len(self)} neurons, win rate {self.win_rate:.2f})"
