"""The content of one neuron page (contexts, ranks, intervention effects, textualization); not for HTML.

Contexts are word-level, as the activations are: each word carries the neuron's activation on it (the
aggregation of its tokens that the extraction used), so the coloured values equal ``acts.X`` exactly.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ..core.neurons import Neuron
from ._collect import ReportData

__all__ = ["neuron_pages", "page_neurons", "search_entry", "slug", "snippet", "token_style"]

N_CONTEXTS = 8
#: a used ranking's neurons get pages down to this rank (its effects are shown for any rank it saved)
TOP_N = 10
#: activations closer to zero than this share of the neuron's largest |activation| choose no context
NEGLIGIBLE = 1e-3


def slug(neuron: "Neuron | str") -> str:
    """File name stem of a neuron's page: ``L3.N1207``; ``L3.N1207@resid.post`` becomes ``L3.N1207_at_resid.post``."""
    return str(neuron).replace("@", "_at_")


def _parse(name: Any) -> Neuron | None:
    try:
        return Neuron.parse(str(name))
    except ValueError:
        return None


def best_described(descriptions: pd.DataFrame, n: int) -> list[str]:
    """The ``n`` neurons whose description scores best on held-out text (``test_f1``; else table order)."""
    table = descriptions
    if "described" in table:
        table = table[table["described"].astype(bool)]
    if "test_f1" in table:
        table = table.sort_values("test_f1", ascending=False, kind="stable")
    return list(dict.fromkeys(table["neuron"].astype(str)))[:n]


def page_neurons(report_data: ReportData) -> list[Neuron]:
    """Every neuron in any top list (encoded top 10, used top ``TOP_N`` on the activations' model, the
    attribution's top ``TOP_N`` and the first ``TOP_N`` of each per-neuron disagreement list, textualized, and
    the ``TOP_N`` best described by held-out F1: a description of every neuron is shown on every page, but does
    not make a page by itself)."""
    data = report_data
    names: list[Any] = []
    for top in data.top_neurons.values():
        names += list(top["neuron"])
    for res in _own_used(data):
        names += list(res.top_neurons.loc[res.top_neurons["rank"] <= TOP_N, "neuron"])
    for section in data.per_neuron.values():
        names += attribution_order(section.attribution)[:TOP_N]
        if section.comparison is not None:
            names += section.comparison.encoded_not_used()[:TOP_N] + section.comparison.used_not_encoded()[:TOP_N]
    if data.textualize is not None:
        names += list(data.textualize["neuron"])
    if data.descriptions is not None:
        names += list(best_described(data.descriptions, TOP_N))
    names += data.units.extra_pages
    found = {n for n in map(_parse, names) if n is not None}
    if data.acts is not None:
        extracted = set(data.acts.neurons)
        found = {n for n in found if n in extracted} or found
    return sorted(found)


def _own_used(data: ReportData) -> list:
    """Used results on the activations' model whose rankings' top neurons were saved."""
    model = data.model_name.replace("/", "_")
    return [r for r in data.used if r.top_neurons is not None
            and (r.own if r.own is not None else (r.model == model or model.endswith(r.model)))]


def hook_of(neuron: Neuron, dictionaries: "dict | None" = None) -> str:
    """The hook point a unit is read at: a neuron's own; a latent's from its registered dictionary, else from what
    the results recorded (``dictionaries``: ``{"sae@L3": {"hook": ...}}``)."""
    if not neuron.is_latent:
        return neuron.hook_name
    try:
        return neuron.hook_name
    except ValueError:
        info = (dictionaries or {}).get(f"{neuron.site}@L{neuron.layer}", {})
        return str(info.get("hook") or f"{neuron.site} at layer {neuron.layer}")


def snippet(neuron: Neuron, dictionaries: "dict | None" = None) -> str:
    """A TransformerLens snippet that reads this neuron (or latent: through its dictionary) with
    ``run_with_hooks``."""
    hook = hook_of(neuron, dictionaries)
    read = (f"value.flatten(-2)[..., {neuron.index}]" if neuron.site == "attn.z" else f"value[..., {neuron.index}]")
    if neuron.is_latent:
        read = f"sae.encode(value)[..., {neuron.index}]"  # sae = tnp.units.load(<the dictionary's folder>)
    var = slug(neuron).replace(".", "_").replace("@", "_")
    return (f"seen = []\n\n"
            f"def read_{var}(value, hook):  # value: [batch, pos, ...] at {hook}\n"
            f"    seen.append({read}.detach().cpu())\n\n"
            f"model.run_with_hooks(tokens, fwd_hooks=[(\"{hook}\", read_{var})])\n"
            f"activation = seen[0]  # [batch, pos]: {neuron} on every token")


def token_style(value: float, scale: tuple[float, float]) -> str:
    """Inline CSS: red for positive, blue for negative, opacity by ``|value|`` over the neuron's largest positive
    or negative activation (``scale``), so small negative GELU values still show."""
    top = scale[0] if value >= 0 else scale[1]
    a = min(1.0, abs(value) / top) if top > 0 else 0.0
    rgb = "220,38,38" if value >= 0 else "37,99,235"
    ink = "#fff" if a > 0.6 else "#111"
    return f"background:rgba({rgb},{a:.3f});color:{ink}"


def _fmt(v: Any) -> str:
    return f"{float(v):.6g}"


class _Sentences:
    """Row ranges of each sentence of the activations."""

    def __init__(self, sentence_ids: np.ndarray):
        order = np.argsort(sentence_ids, kind="stable")
        ids, starts = np.unique(sentence_ids[order], return_index=True)
        bounds = np.append(starts, len(order))
        self.rows = {int(s): order[bounds[i]:bounds[i + 1]] for i, s in enumerate(ids)}


def _contexts(acts, values: np.ndarray, sents: _Sentences, sign: int, scale: tuple[float, float]) -> list[dict]:
    """The ``N_CONTEXTS`` sentences (distinct) holding the most positive (``sign=1``) or negative words."""
    out, seen = [], set()
    order = np.argsort(-sign * values, kind="stable")
    for row in order:
        if len(out) == N_CONTEXTS or sign * values[row] <= NEGLIGIBLE * max(scale):
            break
        sid = int(acts.sentence_ids[row])
        if sid in seen:
            continue
        seen.add(sid)
        tokens = [dict(word=acts.words[r], value=_fmt(values[r]), style=token_style(float(values[r]), scale),
                       focus=bool(r == row)) for r in sents.rows[sid]]
        out.append(dict(sentence=sid, word=acts.words[row], value=_fmt(values[row]), tokens=tokens))
    return out


def _stats(values: np.ndarray) -> dict[str, str]:
    return dict(mean=f"{values.mean():.4g}", std=f"{values.std():.4g}", min=f"{values.min():.4g}",
                max=f"{values.max():.4g}", share_positive=f"{(values > 0).mean():.3f}", words=str(len(values)))


def _ranks(data: ReportData, name: str) -> list[dict]:
    rows = []
    for attr, top in data.top_neurons.items():
        full = data.orders.get(attr, {})
        for ranker, group in top.groupby("ranking", sort=False):
            order = full.get(ranker) or list(group.sort_values("rank")["neuron"].astype(str))
            rank = order.index(name) + 1 if name in order else None
            hit = group[group["neuron"].astype(str) == name]
            score = hit["score"].iloc[0] if "score" in hit.columns and len(hit) else math.nan
            rows.append(dict(attribute=attr, ranker=str(ranker), rank=rank, of=len(order),
                             score="" if pd.isna(score) else f"{score:.4g}",
                             prev=order[rank - 2] if rank and rank > 1 else None,
                             next=order[rank] if rank and rank < len(order) else None))
    rows += _attribution_ranks(data, name)
    return sorted(rows, key=lambda r: r["rank"] is None)  # the lists that hold the neuron first


def attribution_order(attribution: Any) -> list[str]:
    """An attribution's neurons, most used first (none: an empty list)."""
    if attribution is None:
        return []
    return list(attribution.table.sort_values("rank", kind="stable")["neuron"].astype(str))


def _attribution_ranks(data: ReportData, name: str) -> list[dict]:
    """Per attributed attribute: the neuron's rank in the used ranking of every neuron, its estimated effect
    (and the exact one where it was verified), as rows of the ranks table (ranker ``attribution (used)``)."""
    rows = []
    for attr, section in data.per_neuron.items():
        order = attribution_order(section.attribution)
        if not order:
            continue
        t = section.attribution.table
        hit = t[t["neuron"].astype(str) == name]
        rank = order.index(name) + 1 if name in order else None
        score = ""
        if len(hit):
            score = f"{float(hit['score'].iloc[0]):.4g}"
            exact = hit["exact"].iloc[0] if "exact" in hit.columns else math.nan
            if not pd.isna(exact):
                score += f" (exact {float(exact):.4g})"
        rows.append(dict(attribute=attr, ranker="attribution (used)", rank=rank, of=len(order), score=score,
                         prev=order[rank - 2] if rank and rank > 1 else None,
                         next=order[rank] if rank and rank < len(order) else None))
    return rows


def _per_neuron(data: ReportData, name: str) -> list[dict]:
    """Per attribute with a per-neuron comparison that holds the neuron: its group and both ranks."""
    rows = []
    for attr, section in data.per_neuron.items():
        if section.comparison is None:
            continue
        t = section.comparison.table
        hit = t[t["neuron"].astype(str) == name]
        if len(hit):
            r = hit.iloc[0]
            rows.append(dict(attribute=attr, group=str(r["group"]), ranking=section.comparison.extra.get("ranking", ""),
                             encoded_rank=int(r["encoded_rank"]), used_rank=int(r["used_rank"]), of=len(t)))
    return rows


def _effects(data: ReportData, name: str) -> list[dict]:
    """Per used ranking that holds the neuron: the effect of intervening on the smallest top-k that holds it."""
    rows = []
    for res in _own_used(data):
        if res.used is None:
            continue
        for ranking, group in res.top_neurons.groupby("ranking", sort=False):
            hit = group[group["neuron"].astype(str) == name]
            if hit.empty:
                continue
            rank = int(hit["rank"].iloc[0])
            t = res.used[res.used["ranking"].astype(str) == str(ranking)]
            ks = sorted(k for k in set(t["k"]) if k >= rank)
            if not ks:
                continue
            t = t[t["k"] == ks[0]]
            for metric, m in t.groupby("metric", sort=False):
                top = m[m["selection"] == "top"]
                rnd = m[m["selection"] == "random"]["value"]
                if top.empty:
                    continue
                rows.append(dict(model=res.model, attribute=res.attribute, ranking=str(ranking), rank=rank,
                                 k=int(ks[0]), metric=str(metric), top=f"{top['value'].iloc[0]:.4g}",
                                 ci=f"[{top['ci_low'].iloc[0]:.3g}, {top['ci_high'].iloc[0]:.3g}]"
                                 if "ci_low" in top.columns else "",
                                 random=f"{rnd.mean():.4g}" if len(rnd) else ""))
    return rows


def _rows_for(table: pd.DataFrame | None, name: str) -> list[dict]:
    if table is None:
        return []
    hit = table[table["neuron"].astype(str) == name]
    return [{k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items() if k != "neuron"}
            for r in hit.to_dict("records")]


def neuron_pages(report_data: ReportData, neurons: list[Neuron]) -> tuple[list[dict], dict[str, np.ndarray]]:
    """One dict per neuron page, and each neuron's activations over the corpus (for histograms)."""
    data = report_data
    values: dict[str, np.ndarray] = {}
    if data.acts is not None and neurons:
        extracted = set(data.acts.neurons)
        have = [n for n in neurons if n in extracted]
        if have:
            cols = data.acts.columns(have)
            block = data.acts.X[:, cols].float().numpy()
            values = {str(n): block[:, i] for i, n in enumerate(have)}
    sents = _Sentences(data.acts.sentence_ids) if data.acts is not None else None
    pages = []
    for n in neurons:
        name = str(n)
        known = data.units.dictionaries
        page: dict[str, Any] = dict(name=name, slug=slug(n), hook=hook_of(n, known), layer=n.layer,
                                    index=n.index, site=n.site, snippet=snippet(n, known),
                                    ranks=_ranks(data, name),
                                    effects=_effects(data, name), per_neuron=_per_neuron(data, name),
                                    textualize=_rows_for(data.textualize, name),
                                    descriptions=_rows_for(data.descriptions, name), positive=[], negative=[],
                                    stats=None, scale=None)
        if name in values:
            v = values[name]
            scale = (max(float(v.max()), 0.0), max(-float(v.min()), 0.0))
            page.update(stats=_stats(v), scale=[_fmt(scale[0]), _fmt(-scale[1])],
                        positive=_contexts(data.acts, v, sents, 1, scale),
                        negative=_contexts(data.acts, v, sents, -1, scale))
        pages.append(page)
    return pages, values


def search_entry(page: dict) -> dict:
    """What the client-side search matches for a neuron: its names and the words around it."""
    words = [c["word"] for c in page["positive"]]
    words += [str(r.get("text", "")) for r in page["textualize"]]
    words += [str(r.get("description", "")) for r in page["descriptions"]]
    return dict(n=page["name"], u=f"neurons/{page['slug']}.html", h=page["hook"],
                w=" ".join(dict.fromkeys(w for w in words if w)))
