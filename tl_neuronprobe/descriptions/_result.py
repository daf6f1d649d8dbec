"""The :class:`Descriptions` result: a tidy table per neuron, the held-out scores, rankings for P@k, save/load/plot.

Saved as a folder: ``descriptions.csv``, ``scores.csv``, ``concepts.csv``, ``concepts.npz`` (the sparse word x
concept matrix), ``association.safetensors`` (IoU and BH q-values, neurons x concepts) and ``meta.json``; with
levels, ``levels.csv`` (every neuron at every level, :meth:`Descriptions.levels_frame`) and ``levels/<level>/``
(each level's tables, association and meta; the concepts are the main folder's).
Not for computing anything (see :func:`~tl_neuronprobe.describe`).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from safetensors.numpy import load_file, save_file

from ._concepts import Concepts
from ._score import precision_recall_at_k

NO_DESCRIPTION = "no description"


@dataclass
class Descriptions:
    """Descriptions of neurons.

    ``table``: one row per (neuron, end) with ``described``, ``description`` (English), ``formula`` (what is
    scored), the fit statistics of the best single concept and the held-out scores. ``scores``: held-out scores
    of the description and of the baselines, one row per (neuron, method). ``concepts``: the vocabulary.
    ``iou`` / ``q``: ``[n_neurons, n_concepts]`` fit-split IoU at each neuron's threshold and BH q-values (top
    end).
    """

    #: the result kind the report labels this by (one of ``evaluation.results.KINDS``)
    kind: ClassVar[str] = "descriptions"

    table: pd.DataFrame
    scores: pd.DataFrame
    concepts: Concepts
    iou: np.ndarray
    q: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    #: descriptions of the same neurons at other activation levels (``Search.levels``), by level name, strongest
    #: first: each a :class:`Descriptions` with its own held-out scores and baselines at that level
    levels: "dict[str, Descriptions]" = field(default_factory=dict)

    def __repr__(self) -> str:
        top = self.table[self.table["end"] == "top"]
        return (f"Descriptions({len(top)} neurons, {int(top['described'].sum())} described, "
                f"{len(self.concepts)} concepts)")

    @property
    def neurons(self) -> list[str]:
        return list(self.table.loc[self.table["end"] == "top", "neuron"])

    def coverage(self, by: str | None = "layer") -> pd.DataFrame:
        """Share of neurons with a significant description and the mean held-out scores of those, per ``by``."""
        t = self.table[self.table["end"] == "top"]
        keys = [by] if by else []
        g = t.groupby(keys) if keys else [((), t)]
        rows = []
        for key, part in g:
            d = part[part["described"]]
            rows.append({**({by: key[0] if isinstance(key, tuple) else key} if by else {}),
                         "neurons": len(part), "described": len(d), "coverage": len(d) / max(len(part), 1),
                         "test_f1": d["test_f1"].mean(), "simulation_corr": d["simulation_corr"].mean(),
                         "detection_bacc": d["detection_bacc"].mean(), "fit_iou": d["formula_iou"].mean()})
        return pd.DataFrame(rows)

    def compare_methods(self, described_only: bool = True) -> pd.DataFrame:
        """Mean held-out scores per method (description vs baselines), over described neurons by default; ``length``
        is the mean description length (concepts in a formula, forms in a lookup table: ``lookup_matched`` has as
        many as the neuron's description has concepts)."""
        s = self.scores
        if described_only:
            s = s[s["neuron"].isin(self.table.loc[self.table["described"] & (self.table["end"] == "top"), "neuron"])]
        cols = [c for c in ("iou", "precision", "recall", "f1", "simulation_corr", "simulation_top_random",
                            "detection_bacc", "context_detection_bacc", "fuzzing_bacc", "length") if c in s.columns]
        return s.groupby("method", sort=False)[cols].mean().reset_index()

    def compare_levels(self) -> pd.DataFrame:
        """:meth:`compare_methods` at every level (strongest first, the main level last), with a ``level`` and a
        ``described`` count column: the levels x methods x scores table, lengths included. Each level's means are
        over the neurons described at that level."""
        rows = []
        for d in [*self.levels.values(), self]:
            top = d.table[d.table["end"] == "top"]
            rows.append(d.compare_methods().assign(level=d.meta.get("level", ""),
                                                   described=f"{int(top['described'].sum())}/{len(top)}"))
        out = pd.concat(rows, ignore_index=True)
        return out[["level", "method", "described", *[c for c in out.columns
                                                      if c not in ("level", "method", "described")]]]

    def levels_frame(self) -> pd.DataFrame:
        """One row per (neuron, level), each neuron's levels together and the strongest first, the main level
        last: ``level``, ``described``, ``description``, ``formula``, ``length`` and the held-out scores of the
        description at that level (``test_f1``, ``simulation_corr``, ``simulation_top_random``,
        ``context_detection_bacc``, ``fuzzing_bacc``), with ``lookup_matched_simulation`` (the length-matched lookup's
        top-and-random simulation at the same level) to compare with. Top end only."""
        parts = []
        for order, d in enumerate([*self.levels.values(), self]):
            t = d.table[d.table["end"] == "top"]
            s = d.scores[d.scores["end"] == "top"] if "end" in d.scores else d.scores
            own = s[s["method"] == "description"].set_index("neuron")
            look = s[s["method"] == "lookup_matched"].set_index("neuron")
            cols = ["simulation_top_random", "context_detection_bacc", "fuzzing_bacc", "length"]
            row = pd.DataFrame({"neuron": t["neuron"].to_numpy(), "level": t["level"].to_numpy()
                                if "level" in t else d.meta.get("level", ""),
                                "described": t["described"].to_numpy(), "description": t["description"].to_numpy(),
                                "formula": t["formula"].to_numpy(), "test_f1": t["test_f1"].to_numpy(),
                                "simulation_corr": t["simulation_corr"].to_numpy()})
            for c in cols:
                row[c] = own[c].reindex(row["neuron"]).to_numpy() if c in own else np.nan
            row["lookup_matched_simulation"] = (look["simulation_top_random"].reindex(row["neuron"]).to_numpy()
                                                if "simulation_top_random" in look else np.nan)
            row["_order"], row["_pos"] = order, np.arange(len(row))
            parts.append(row)
        out = pd.concat(parts, ignore_index=True).sort_values(["_pos", "_order"], kind="stable")
        return out.drop(columns=["_order", "_pos"]).reset_index(drop=True)

    def to_frame(self) -> pd.DataFrame:
        """The per-(neuron, end) table (a copy): ``neuron``, ``layer``, ``end``, ``described``, ``description``,
        ``formula``, fit statistics and held-out ``test_*`` scores."""
        return self.table.copy()

    def plot(self, path: "str | Path | None" = None):
        """Two panels: the share of neurons described per layer, and the mean held-out F1 of the descriptions
        against the baselines. Written to ``path`` when given (and closed); the figure is returned otherwise."""
        from ..core import plotting

        plt = plotting.pyplot()
        fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
        cov = self.coverage("layer")
        left.bar(cov["layer"].astype(str), cov["coverage"], color="tab:blue")
        left.set(xlabel="layer", ylabel="share described", ylim=(0, 1), title="coverage")
        methods = self.compare_methods()
        right.barh(methods["method"], methods["f1"].fillna(0), color="tab:gray")
        right.set(xlabel="held-out F1 (described neurons)", title="description vs baselines")
        right.invert_yaxis()
        if path is None:
            return fig
        plotting.save(fig, path)
        return None

    # --------------------------------------------------------------------------------- rankings
    def ranked_concepts(self, neuron: str, significant_only: bool = True, alpha: float | None = None) -> list[str]:
        """Concepts of one neuron: its description's positive terms, then the others by fit IoU (only
        BH-significant ones by default)."""
        i = self.neurons.index(str(neuron))
        alpha = self.meta.get("alpha", 0.01) if alpha is None else alpha
        order = np.argsort(-self.iou[i], kind="stable")
        if significant_only:
            order = order[self.q[i, order] <= alpha]
        names = self.concepts.names
        ranked = [names[j] for j in order]
        row = self.table[(self.table["neuron"] == str(neuron)) & (self.table["end"] == "top")].iloc[0]
        if row["described"] and isinstance(row["formula"], str) and row["formula"]:
            from ._compose import parse_formula

            terms = [name for op, name in parse_formula(row["formula"]) if op != "AND NOT"]
            ranked = terms + [r for r in ranked if r not in terms]
        return ranked

    def ranked_neurons(self, concept: str) -> list[str]:
        """Neurons by fit IoU with one concept, best first."""
        j = self.concepts.index(concept)
        names = self.neurons
        return [names[i] for i in np.argsort(-self.iou[:, j], kind="stable")]

    def precision_at_k(self, gold: Mapping[str, set], by: str = "neuron", ks: Sequence[int] = (1, 2, 5),
                       n_bootstrap: int = 1000, seed: int = 0, among: Sequence[str] | None = None,
                       synonyms: float | None = 0.9) -> pd.DataFrame:
        """P@k and R@k with bootstrap intervals.

        ``by="neuron"``: ``gold[neuron]`` is a set of concept names, each neuron's ranked concepts are scored;
        concepts whose masks overlap with IoU >= ``synonyms`` count as one descriptor (as the seed clusters
        similar descriptors into one), so "word=small" and "lemma=small" take one rank, not two.
        ``by="concept"``: ``gold[concept]`` is a set of neurons, each concept's ranked neurons (restricted to
        ``among`` if given) are scored.
        """
        if by == "neuron":
            ranked, merged = {}, {}
            for n, g in gold.items():
                ranked[n], merged[n] = self._merge_synonyms(self.ranked_concepts(n)[:50], list(g), synonyms)
            return precision_recall_at_k(ranked, merged, ks, n_bootstrap, seed)
        elif by == "concept":
            keep = None if among is None else {str(a) for a in among}
            ranked = {c: [n for n in self.ranked_neurons(c) if keep is None or n in keep] for c in gold}
        else:
            raise ValueError(f"by must be 'neuron' or 'concept', got {by!r}")
        return precision_recall_at_k(ranked, {k: set(map(str, v)) for k, v in gold.items()}, ks, n_bootstrap, seed)

    def _merge_synonyms(self, ranked: list[str], gold: list[str], threshold: float | None):
        """Ranked descriptor classes (first member's name) and the gold classes, synonyms merged."""
        if threshold is None:
            return ranked, set(gold)
        reps: list[tuple[str, np.ndarray]] = []

        def cls(name: str) -> str:
            m = self.concepts.mask(name)
            for rep, rm in reps:
                if (m & rm).sum() >= threshold * (m | rm).sum():
                    return rep
            reps.append((name, m))
            return name

        order = list(dict.fromkeys(cls(n) for n in ranked))
        return order, {cls(g) for g in gold}

    # ------------------------------------------------------------------------------ persistence
    def save(self, path: "str | Path") -> Path:
        """Write the folder ``path`` (see the module docstring); :meth:`load` reads it back."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.table.to_csv(path / "descriptions.csv", index=False)
        self.scores.to_csv(path / "scores.csv", index=False)
        self.concepts.table.to_csv(path / "concepts.csv", index=False)
        sp.save_npz(path / "concepts.npz", sp.csc_matrix(self.concepts.matrix, dtype=np.uint8))
        save_file({"iou": np.ascontiguousarray(self.iou, dtype=np.float32),
                   "q": np.ascontiguousarray(self.q, dtype=np.float32)}, str(path / "association.safetensors"))
        meta = dict(self.meta, levels_saved=list(self.levels))
        (path / "meta.json").write_text(json.dumps(meta, indent=1, default=str))
        shutil.rmtree(path / "levels", ignore_errors=True)  # no level of an earlier save left behind
        (path / "levels.csv").unlink(missing_ok=True)
        if self.levels:
            self.levels_frame().to_csv(path / "levels.csv", index=False)
            for name, d in self.levels.items():
                d._save_level(path / "levels" / name)
        return path

    def _save_level(self, path: Path) -> None:
        """One level's folder: everything :meth:`save` writes but the concepts (the main folder's)."""
        path.mkdir(parents=True, exist_ok=True)
        self.table.to_csv(path / "descriptions.csv", index=False)
        self.scores.to_csv(path / "scores.csv", index=False)
        save_file({"iou": np.ascontiguousarray(self.iou, dtype=np.float32),
                   "q": np.ascontiguousarray(self.q, dtype=np.float32)}, str(path / "association.safetensors"))
        (path / "meta.json").write_text(json.dumps(self.meta, indent=1, default=str))

    @classmethod
    def load(cls, path: "str | Path") -> "Descriptions":
        """Read a folder written by :meth:`save`."""
        path = Path(path)
        need = ["descriptions.csv", "scores.csv", "concepts.csv", "concepts.npz", "association.safetensors"]
        missing = [n for n in need if not (path / n).exists()]
        if missing:
            raise FileNotFoundError(f"{path} is not a saved Descriptions folder (missing {missing})")
        ctable = pd.read_csv(path / "concepts.csv", keep_default_na=False, dtype={"value": str, "label": str})
        concepts = Concepts(sp.load_npz(path / "concepts.npz").astype(bool), ctable)
        out = cls._read(path, concepts)
        for name in out.meta.get("levels_saved", []):
            if not (path / "levels" / name / "descriptions.csv").exists():
                raise FileNotFoundError(f"{path}: level {name!r} is missing (expected levels/{name}/)")
            out.levels[name] = cls._read(path / "levels" / name, concepts)
        return out

    @classmethod
    def _read(cls, path: Path, concepts: Concepts) -> "Descriptions":
        read = dict(keep_default_na=False, na_values=[""])
        table = pd.read_csv(path / "descriptions.csv", **read)
        table["described"] = table["described"].astype(bool)
        for col in ("formula", "description", "concept", "family", "level", "top_level", "top_description",
                    "top_formula"):
            if col in table:
                table[col] = table[col].fillna("").astype(str)
        arrays = load_file(str(path / "association.safetensors"))
        meta = json.loads((path / "meta.json").read_text()) if (path / "meta.json").exists() else {}
        return cls(table, pd.read_csv(path / "scores.csv", **read), concepts, arrays["iou"], arrays["q"], meta)
