"""Export for Neuronpedia: neurons and latents, their top activations, histograms and descriptions, in the layout
Neuronpedia imports.

``neuronpedia(acts, out_dir, descriptions=..., model_id=..., source_set=...)`` writes, per layer and source set
(``<model_id>/<layer>-<source_set>/``), the records Neuronpedia's import reads, as JSON lines: ``release.jsonl``,
``model.jsonl``, ``sourceset.jsonl`` and ``source.jsonl`` (one record each), then gzipped batches
``features/batch-<i>.jsonl.gz`` (one Feature record per unit: ``maxActApprox``, ``frac_nonzero``, the activation
histogram, for a latent its alignment with the neurons), ``activations/batch-<i>.jsonl.gz`` (Activation records:
each unit's top sentences with their tokens and values, and sentences drawn from quantile bins of its range) and,
with descriptions, ``explanations/batch-<i>.jsonl.gz`` (Explanation records; the held-out scores in ``notes`` as
JSON). The field names are those of Neuronpedia's public import records (``FEATURE_FIELDS``,
``ACTIVATION_FIELDS``, ...); tokens are the corpus's words (activations here are per word).

Neurons and latents alike: a neuron's source set is named after its site (``tnp-mlp-post``), a latent's after its
dictionary's (``tnp-sae``), unless ``source_set`` is given.

With ``model`` (a decoder), each unit's direct effect on the logits fills the logit fields: the residual-stream
direction it writes (a neuron at ``mlp.post``: its row of ``W_out``; a latent: its decoder row, through ``W_out``
when the dictionary writes ``mlp.hook_post``) times ``W_U``, the final LayerNorm's scale left out, as Neuronpedia's
own dashboards compute it: ``pos_str`` / ``pos_values`` (the tokens it raises most), ``neg_str`` / ``neg_values`` and
the histogram of the effect over the vocabulary (``logits_hist_data_*``). Left empty for an encoder (its MLM head
transforms the residual stream before its decoder) and for a unit whose write is not linear (``mlp.pre``).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .core.adapter import ModelAdapter
from .core.neurons import Neuron
from .core.units import is_unit_site, registered
from .data.activations import Activations

__all__ = ["neuronpedia", "FEATURE_FIELDS", "ACTIVATION_FIELDS", "EXPLANATION_FIELDS", "SOURCE_FIELDS",
           "SOURCE_SET_FIELDS", "RELEASE_FIELDS", "MODEL_FIELDS"]

#: the fields of Neuronpedia's import records (from its public field lists), in order
FEATURE_FIELDS = ("modelId", "layer", "index", "creatorId", "createdAt", "maxActApprox", "hasVector", "vector",
                  "vectorLabel", "vectorDefaultSteerStrength", "hookName", "topkCosSimIndices", "topkCosSimValues",
                  "neuron_alignment_indices", "neuron_alignment_values", "neuron_alignment_l1",
                  "correlated_neurons_indices", "correlated_neurons_pearson", "correlated_neurons_l1",
                  "correlated_features_indices", "correlated_features_pearson", "correlated_features_l1", "neg_str",
                  "neg_values", "pos_str", "pos_values", "frac_nonzero", "freq_hist_data_bar_heights",
                  "freq_hist_data_bar_values", "logits_hist_data_bar_heights", "logits_hist_data_bar_values",
                  "decoder_weights_dist")
ACTIVATION_FIELDS = ("id", "tokens", "index", "layer", "modelId", "maxValue", "maxValueTokenIndex", "minValue",
                     "values", "creatorId", "dataSource", "dataIndex", "dfaValues", "dfaTargetIndex", "dfaMaxValue",
                     "createdAt", "lossValues", "logitContributions", "binMin", "binMax", "binContains",
                     "qualifyingTokenIndex")
EXPLANATION_FIELDS = ("id", "modelId", "layer", "index", "description", "authorId", "embedding", "triggeredById",
                      "typeName", "explanationModelName", "notes", "createdAt")
SOURCE_FIELDS = ("id", "modelId", "setName", "creatorId", "hasDashboards", "inferenceEnabled", "inferenceHosts",
                 "saelensConfig", "saelensRelease", "saelensSaeId", "hfRepoId", "hfFolderId", "visibility",
                 "defaultOfModelId", "hasUmap", "hasUmapLogSparsity", "hasUmapClusters", "num_prompts",
                 "num_tokens_in_prompt", "dataset", "notes", "createdAt")
SOURCE_SET_FIELDS = ("modelId", "name", "creatorId", "hasDashboards", "visibility", "description", "type",
                     "creatorName", "urls", "creatorEmail", "releaseName", "defaultOfModelId", "defaultRange",
                     "defaultShowBreaks", "showDfa", "showCorrelated", "showHeadAttribution", "showUmap",
                     "createdAt")
RELEASE_FIELDS = ("name", "description", "creatorName", "creatorId", "visibility", "isNewUi", "featured",
                  "descriptionShort", "urls", "creatorEmail", "creatorNameShort", "defaultSourceSetName",
                  "defaultSourceId", "defaultUmapSourceIds", "createdAt")
MODEL_FIELDS = ("id", "instruct", "creatorId", "displayNameShort", "displayName", "tlensId", "dimension",
                "visibility", "defaultSourceSetName", "defaultSourceId", "inferenceEnabled", "layers",
                "neuronsPerLayer", "createdAt", "owner", "updatedAt", "website")


def _record(fields: Sequence[str], **values: Any) -> dict:
    unknown = set(values) - set(fields)
    if unknown:  # a bug here, not a user error
        raise AssertionError(f"fields {sorted(unknown)} are not Neuronpedia's")
    return {f: values.get(f) for f in fields}


def _default_set(neuron: Neuron) -> str:
    return "tnp-" + neuron.site.replace(".", "-")


def _id(*parts: Any) -> str:
    """A stable id (25 characters, like Neuronpedia's cuids) from the record's identity."""
    return "c" + hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:24]


def _write(path: Path, records: list[dict], gz: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r, allow_nan=False) + "\n" for r in records)
    if gz:
        path.write_bytes(gzip.compress(text.encode(), compresslevel=5, mtime=0))
    else:
        path.write_text(text)


def _finite(values: np.ndarray) -> list[float]:
    return [float(v) for v in np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)]


def _alignment(neuron: Neuron, k: int = 10) -> tuple[list[int], list[float], list[float]]:
    """A latent's decoder row against the neurons of its hook point: the ``k`` largest by magnitude, their
    weights and their share of the row's L1 norm (empty for a neuron, or when no dictionary is registered)."""
    if not neuron.is_latent or not _has(neuron):
        return [], [], []
    row = registered(neuron.site, neuron.layer).W_dec[neuron.index].detach().float().cpu()
    top = torch.argsort(row.abs(), descending=True)[:k]
    l1 = float(row.abs().sum()) or 1.0
    return top.tolist(), _finite(row[top].numpy()), _finite((row[top].abs() / l1).numpy())


def neuronpedia(acts: Activations, out_dir: "str | Path", descriptions: Any = None, *, model: Any = None,
                model_id: str = "model", source_set: str | None = None, n_top: int = 20, n_bins: int = 5,
                batch_size: int = 128) -> Path:
    """Write ``acts``' units (neurons or latents) in Neuronpedia's import layout under ``out_dir``.

    Parameters
    ----------
    acts : Activations
        Word activations of the units to export (from ``tnp.extract``; latents too).
    out_dir : str or Path
        Where ``<model_id>/<layer>-<source_set>/`` folders are written (replaced if present).
    descriptions : Descriptions, optional
        Each described unit's description becomes an Explanation, its held-out scores in ``notes``.
    model : HookedTransformer, TransformerBridge or ModelAdapter, optional
        The model the activations came from: fills each unit's logit fields (its direct effect through ``W_U``:
        top and bottom tokens, histogram) for a decoder.
    model_id : str
        Neuronpedia's model id (e.g. the TransformerLens name, ``"gpt2-small"``).
    source_set : str, optional
        The source set's name; default: from the units' site (``tnp-mlp-post``, ``tnp-sae``).
    n_top : int
        Top-activating sentences per unit.
    n_bins : int
        Quantile bins of each unit's positive range, one sentence drawn from each (seeded by the unit).
    batch_size : int
        Units per batch file.

    Returns
    -------
    Path
        ``out_dir / model_id``.
    """
    if not isinstance(acts, Activations):
        raise TypeError(f"neuronpedia() exports Activations, got {type(acts).__name__}")
    if n_top < 1 or batch_size < 1 or n_bins < 0:
        raise ValueError(f"n_top and batch_size must be at least 1 and n_bins at least 0, got {n_top}, "
                         f"{batch_size}, {n_bins}")
    X = acts.X.float()
    if not bool(torch.isfinite(X).all()):
        raise ValueError("the activations contain NaN or inf")
    created = datetime.now(timezone.utc).isoformat()
    root = Path(out_dir) / model_id
    sid = torch.as_tensor(np.asarray(acts.sentence_ids), dtype=torch.long)
    n_sent = int(sid.max()) + 1 if len(sid) else 0
    starts = np.searchsorted(sid.numpy(), np.arange(n_sent + 1))
    words = list(acts.words)
    explained = _explanations(descriptions)
    groups: dict[tuple[int, str], list[int]] = {}
    for j, n in enumerate(acts.neurons):
        groups.setdefault((n.layer, source_set or _default_set(n)), []).append(j)
    adapter = None if model is None else ModelAdapter.wrap(model)
    for (layer, set_name), cols in groups.items():
        source_id = f"{layer}-{set_name}"
        folder = root / source_id
        for sub in ("features", "activations", "explanations"):
            for old in (folder / sub).glob("batch-*.jsonl.gz"):
                old.unlink()
        first = acts.neurons[cols[0]]
        kind = ("latents of a " + registered(first.site, first.layer).kind) if first.is_latent and _has(first) \
            else f"neurons at {first.site}"
        _headers(folder, model_id, set_name, source_id, kind, len(cols), max(acts.layers) + 1, n_sent,
                 str(acts.meta.get("corpus", "") or ""), created)
        for b, lo in enumerate(range(0, len(cols), batch_size)):
            part = cols[lo:lo + batch_size]
            feats, contexts, expl = _batch(acts, X, part, sid, n_sent, starts, words, model_id, source_id,
                                           explained, n_top, n_bins, created)
            for feat, logit in zip(feats, _logit_fields(adapter, [acts.neurons[j] for j in part])):
                feat.update(logit)
            _write(folder / "features" / f"batch-{b}.jsonl.gz", feats, gz=True)
            _write(folder / "activations" / f"batch-{b}.jsonl.gz", contexts, gz=True)
            if expl:
                _write(folder / "explanations" / f"batch-{b}.jsonl.gz", expl, gz=True)
    return root


def _headers(folder: Path, model_id: str, set_name: str, source_id: str, kind: str, n_units: int, n_layers: int,
             n_sent: int, dataset: str, created: str) -> None:
    """The one-record files of a source: release, model, source set and source."""
    _write(folder / "release.jsonl", [_record(RELEASE_FIELDS, name=set_name, description=f"tl_neuronprobe "
                                              f"export: {kind}", creatorName="tl_neuronprobe", creatorId="",
                                              visibility="PUBLIC", isNewUi=False, featured=False, urls=[],
                                              defaultUmapSourceIds=[], createdAt=created)], gz=False)
    _write(folder / "model.jsonl", [_record(MODEL_FIELDS, id=model_id, instruct=False, creatorId="",
                                            displayNameShort=model_id, displayName=model_id, visibility="PUBLIC",
                                            inferenceEnabled=False, layers=n_layers,
                                            neuronsPerLayer=n_units, createdAt=created, owner="",
                                            updatedAt=created)], gz=False)
    _write(folder / "sourceset.jsonl", [_record(SOURCE_SET_FIELDS, modelId=model_id, name=set_name, creatorId="",
                                                hasDashboards=True, visibility="PUBLIC", description=kind,
                                                type="", creatorName="tl_neuronprobe", urls=[], defaultRange=1,
                                                defaultShowBreaks=True, showDfa=False, showCorrelated=False,
                                                showHeadAttribution=False, showUmap=False,
                                                createdAt=created)], gz=False)
    _write(folder / "source.jsonl", [_record(SOURCE_FIELDS, id=source_id, modelId=model_id, setName=set_name,
                                             creatorId="", hasDashboards=True, inferenceEnabled=False,
                                             inferenceHosts=[], visibility="PUBLIC", hasUmap=False,
                                             hasUmapLogSparsity=False, hasUmapClusters=False,
                                             num_prompts=n_sent, num_tokens_in_prompt=None,
                                             dataset=dataset,
                                             notes="tokens are corpus words (word-level activations)",
                                             createdAt=created)], gz=False)


def _has(neuron: Neuron) -> bool:
    try:
        registered(neuron.site, neuron.layer)
        return True
    except ValueError:
        return False


def _writes(adapter: ModelAdapter, neurons: Sequence[Neuron]) -> "list[torch.Tensor | None]":
    """The residual-stream direction each unit writes (``[d_model]``), None where it has none (a write that is not
    linear, or a latent of a dictionary no longer registered)."""
    matrices: dict[str, "torch.Tensor | None"] = {}

    def writes(hook: str) -> "torch.Tensor | None":
        if hook not in matrices:
            matrices[hook] = adapter.residual_writes(hook)
        return matrices[hook]

    rows: "list[torch.Tensor | None]" = []
    for n in neurons:
        if n.is_latent:
            d = registered(n.site, n.layer) if _has(n) else None
            R = None if d is None else writes(d.write_hook)
            rows.append(None if R is None else (d.W_dec[n.index].detach().to(R) @ R).float())
        else:
            R = writes(n.hook_name)
            rows.append(None if R is None else R[n.index].float())
    return rows


def _logit_fields(adapter: "ModelAdapter | None", neurons: Sequence[Neuron], k: int = 10, bins: int = 20) -> list[dict]:
    """Each unit's Feature logit fields: the ``k`` tokens its direction raises and lowers most through ``W_U`` with
    their values, and the histogram of its effect over the vocabulary (empty where there is none to compute)."""
    empty = dict(pos_str=[], pos_values=[], neg_str=[], neg_values=[], logits_hist_data_bar_heights=[],
                 logits_hist_data_bar_values=[])
    W_U = None if adapter is None else adapter.unembedding()
    rows = [None] * len(neurons) if W_U is None else _writes(adapter, neurons)
    have = [u for u, r in enumerate(rows) if r is not None]
    out = [dict(empty) for _ in neurons]
    if not have:
        return out
    with torch.no_grad():
        effect = (torch.stack([rows[u] for u in have]).to(W_U.device) @ W_U.float()).cpu()  # [units, vocab]
    k = min(k, effect.shape[1])
    pos_v, pos_i = torch.topk(effect, k, dim=1)
    neg_v, neg_i = torch.topk(-effect, k, dim=1)
    tok = adapter.tokenizer
    for j, u in enumerate(have):
        if not bool(effect[j].any()):  # writes nothing the unembedding reads (a zero decoder row)
            continue
        heights, edges = np.histogram(effect[j].numpy(), bins=bins)
        out[u] = dict(pos_str=tok.convert_ids_to_tokens(pos_i[j].tolist()), pos_values=_finite(pos_v[j].numpy()),
                      neg_str=tok.convert_ids_to_tokens(neg_i[j].tolist()), neg_values=_finite(-neg_v[j].numpy()),
                      logits_hist_data_bar_heights=_finite(heights),
                      logits_hist_data_bar_values=_finite((edges[:-1] + edges[1:]) / 2))
    return out


def _explanations(descriptions: Any) -> dict[str, dict]:
    """neuron name -> {description, scores} of the described units (top end) of a Descriptions."""
    if descriptions is None:
        return {}
    table = getattr(descriptions, "table", None)
    if table is None or "description" not in table:
        raise TypeError(f"descriptions must be a Descriptions (tnp.describe), got {type(descriptions).__name__}")
    t = table[(table["end"] == "top") & table["described"]] if "end" in table else table
    score_cols = [c for c in ("test_f1", "simulation_corr", "detection_bacc", "formula_iou") if c in t]
    out = {}
    for row in t.to_dict("records"):
        text = str(row.get("top_description") or row["description"])
        scores = {c: float(row[c]) for c in score_cols if row.get(c) == row.get(c)}  # NaN dropped
        out[str(row["neuron"])] = dict(description=text, level=str(row.get("top_level", "")), scores=scores)
    return out


def _batch(acts, X, part, sid, n_sent, starts, words, model_id, source_id, explained, n_top, n_bins, created):
    cols = torch.as_tensor(part)
    x = X[:, cols]  # [words, units]
    per_sent = torch.full((n_sent, len(part)), -torch.inf).scatter_reduce(
        0, sid[:, None].expand(-1, len(part)), x, "amax", include_self=True)
    k = min(n_top, n_sent)
    top_vals, top_sent = torch.topk(per_sent, k, dim=0)
    feats, contexts, expl = [], [], []
    for u, j in enumerate(part):
        neuron = acts.neurons[j]
        index = str(neuron.index)
        v = x[:, u].numpy()
        pos = v[v > 0]
        heights, edges = np.histogram(pos, bins=20) if len(pos) else (np.zeros(0), np.zeros(1))
        idx, vals, l1 = _alignment(neuron)
        chosen = [(int(s), None) for s in top_sent[:, u].tolist()]
        if n_bins and len(pos):
            qs = np.quantile(pos, np.linspace(0, 1, n_bins + 1))
            rng = np.random.default_rng(int(hashlib.sha256(str(neuron).encode()).hexdigest()[:8], 16))
            smax = per_sent[:, u].numpy()
            for lo_, hi_ in zip(qs[:-1], qs[1:]):
                inside = np.flatnonzero((smax >= lo_) & (smax <= hi_))
                if len(inside):
                    chosen.append((int(rng.choice(inside)), (float(lo_), float(hi_), float(len(inside)))))
        max_act = float(top_vals[0, u]) if k else 0.0
        for s, bin_ in chosen:
            a, b = int(starts[s]), int(starts[s + 1])
            values = _finite(v[a:b])
            top_i = int(np.argmax(values)) if values else 0
            contexts.append(_record(ACTIVATION_FIELDS, id=_id(model_id, source_id, index, s, bin_), tokens=words[a:b],
                                    index=index, layer=source_id, modelId=model_id, maxValue=max(values or [0.0]),
                                    maxValueTokenIndex=top_i, minValue=min(values or [0.0]), values=values,
                                    creatorId="", dataSource=str(acts.meta.get("corpus", "") or "") or None,
                                    dataIndex=str(s), dfaValues=[], createdAt=created, lossValues=[],
                                    binMin=None if bin_ is None else bin_[0], binMax=None if bin_ is None else bin_[1],
                                    binContains=None if bin_ is None else bin_[2], qualifyingTokenIndex=top_i))
        feats.append(_record(FEATURE_FIELDS, modelId=model_id, layer=source_id, index=index, creatorId="",
                             createdAt=created, maxActApprox=max_act, hasVector=False, vector=[],
                             vectorDefaultSteerStrength=None, hookName=neuron.hook_name if (not neuron.is_latent or
                                                                                            _has(neuron)) else None,
                             topkCosSimIndices=[], topkCosSimValues=[], neuron_alignment_indices=idx,
                             neuron_alignment_values=vals, neuron_alignment_l1=l1, correlated_neurons_indices=[],
                             correlated_neurons_pearson=[], correlated_neurons_l1=[], correlated_features_indices=[],
                             correlated_features_pearson=[], correlated_features_l1=[], neg_str=[], neg_values=[],
                             pos_str=[], pos_values=[], frac_nonzero=float((v > 0).mean()) if len(v) else 0.0,
                             freq_hist_data_bar_heights=_finite(heights),
                             freq_hist_data_bar_values=_finite((edges[:-1] + edges[1:]) / 2),
                             logits_hist_data_bar_heights=[], logits_hist_data_bar_values=[],
                             decoder_weights_dist=[]))
        if str(neuron) in explained:
            e = explained[str(neuron)]
            expl.append(_record(EXPLANATION_FIELDS, id=_id(model_id, source_id, index, "explanation"),
                                modelId=model_id, layer=source_id, index=index, description=e["description"],
                                authorId="", typeName="tl_neuronprobe.describe",
                                explanationModelName="concepts (no LLM)",
                                notes=json.dumps({"level": e["level"], **e["scores"]}), createdAt=created))
    return feats, contexts, expl
