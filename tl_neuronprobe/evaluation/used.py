"""The used evaluation: intervene on the top-k neurons of each ranking and read what the model does.

:func:`evaluate_used` answers "does the model *use* the neurons this ranking puts first?" for every ranking and
every k at once: top-k, bottom-k and random-k neurons of the same site and layer are intervened on (zero, mean,
resample or translate toward another class) at the tokens of the words that carry the attribute, and one of
the three readouts of :mod:`tl_neuronprobe.readouts` measures the effect, with bootstrap confidence intervals
over sentences. :func:`compare_encoded_used` sets the result beside the encoded (probing) curves and says where
the two orderings of the rankings disagree, the central finding of Antverg & Belinkov (2022).

Speed: all (ranking, selection, k) interventions of a sentence batch run as extra rows of one batched forward
pass (the batch repeated along the batch dimension, each repetition with its own neuron weights), after one
clean pass. On a ``HookedTransformer`` the intervened passes start from the clean pass's cached residual
stream at the first intervened layer (``start_at_layer``), so lower blocks run once per batch, not once per
intervention. ``strategy='naive'`` runs one forward pass per (intervention, batch) through the public
:mod:`tl_neuronprobe.interventions` objects instead; both give the same numbers.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .. import interventions as iv
from ..core.adapter import Batch, ModelAdapter
from ..data.corpus import Corpus
from ..core.neurons import Neuron, check_site, hook_name
from ..interventions.readouts import (READOUT_METRICS, AgreementReadout, DivergenceReadout, IdentityReadout, Output,
                       Readout)

__all__ = ["evaluate_used", "plot_used", "compare_encoded_used", "EncodedUsed", "METHODS", "READOUTS"]

METHODS = ("translate", "zero", "mean", "resample")
READOUTS = ("auto", "identity", "agreement", "divergence")
SELECTIONS = ("top", "bottom", "random")


# ------------------------------------------------------------------------------------------- rankings
def _is_neuron_text(x: Any) -> bool:
    if not isinstance(x, str):
        return False
    try:
        Neuron.parse(x)
        return True
    except ValueError:
        return False


def _is_order(x: Any) -> bool:
    """One neuron order (not a collection of rankings)."""
    if isinstance(x, (np.ndarray, torch.Tensor)):
        return x.ndim == 1 and not (x.dtype == object)
    if isinstance(x, (list, tuple)) and x:
        first = x[0]
        return isinstance(first, (Neuron, int, np.integer)) or _is_neuron_text(first)
    return False


def _ranking_items(rankings: Any) -> list[tuple[str | None, Any]]:
    if isinstance(rankings, pd.DataFrame):  # an encoded table: its fitted orders index attrs["neurons"]
        orders, neurons = rankings.attrs.get("orders"), rankings.attrs.get("neurons")
        if not orders or not neurons:
            raise ValueError("a table given as rankings must carry attrs['orders'] and attrs['neurons'] "
                             "(as evaluate_encoded's does)")
        return [(str(name), [neurons[int(j)] for j in order]) for name, order in orders.items()]
    if isinstance(rankings, Mapping):
        return [(str(k), v) for k, v in rankings.items()]
    if isinstance(rankings, str) or hasattr(rankings, "order_") or _is_order(rankings):
        return [(None, rankings)]
    items = list(rankings)
    if not items:
        raise ValueError("no rankings given")
    return [(None, r) for r in items]


def _default_name(r: Any, i: int) -> str:
    if isinstance(r, str):
        return r.strip().lower()
    if hasattr(r, "order_"):
        return type(r).__name__.lower()
    return f"ranking{i}"


def _columns_to_neurons(cols: Any, site: str, layer: int | None, adapter: ModelAdapter, name: str,
                        neurons: Sequence[Neuron] | None = None) -> list[Neuron]:
    arr = np.asarray(cols.detach().cpu() if isinstance(cols, torch.Tensor) else cols)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"ranking {name!r}: expected neurons or integer column indices, got {arr.dtype} {arr.shape}")
    if neurons is not None:
        if len(arr) and (arr.min() < 0 or arr.max() >= len(neurons)):
            raise ValueError(f"ranking {name!r} has column indices outside 0..{len(neurons) - 1} (neurons=)")
        return [Neuron.parse(neurons[int(i)]) for i in arr]
    if layer is None:
        if adapter.n_layers != 1:
            raise ValueError(f"ranking {name!r} gives column indices: pass layer= (and site=, default "
                             "'mlp.post') to say which neurons they index")
        layer = 0
    return [Neuron(int(layer), int(i), site) for i in arr]


def _fit_ranker(name: str, X: np.ndarray, y: np.ndarray, groups: np.ndarray, seed: int):
    try:
        from .. import rankers
    except ImportError as exc:  # the rankers module is optional for this one
        raise ImportError(f"ranking {name!r} is a ranker name but tl_neuronprobe.rankers is not available; "
                          "pass neuron orders (lists of Neuron, or column indices with layer=)") from exc
    make = getattr(rankers, "make_ranker", None)
    if make is None:
        raise ImportError("tl_neuronprobe.rankers has no make_ranker(name); pass fitted rankers or neuron orders")
    try:
        ranker = make(name, random_state=seed)
    except TypeError:
        ranker = make(name)
    try:
        return ranker.fit(X, y, groups=groups)
    except TypeError:
        return ranker.fit(X, y)


# ------------------------------------------------------------------------------------------- specs
@dataclass
class _Spec:
    """One intervention of the sweep: the neurons of (ranking, selection, k[, random draw])."""

    ranking: str
    selection: str
    k: int
    draw: int
    neurons: list[Neuron]
    alpha: np.ndarray


def _alpha_for(method: str, k: int, n_total: int, alpha: "float | str", beta: float) -> np.ndarray:
    if method != "translate":
        return np.ones(k)
    if isinstance(alpha, str):
        if alpha != "scaled":
            raise ValueError(f"alpha must be a number or 'scaled', got {alpha!r}")
        return iv.scaled_alpha(n_total, beta, np.arange(k))
    return np.full(k, float(alpha))


# ------------------------------------------------------------------------------------------- statistics
def bootstrap_means(values: np.ndarray, unit_sentence: np.ndarray, n_bootstrap: int = 1000, ci: float = 0.95,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Means of ``values [rows, n_units]`` over units, and percentile CIs resampling *sentences*.

    Every row is resampled with the same sentence draws (paired), so differences between rows are comparable.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != len(unit_sentence):
        raise ValueError(f"values {values.shape} do not match {len(unit_sentence)} units")
    if values.shape[1] == 0:
        nan = np.full(values.shape[0], np.nan)
        return nan, nan.copy(), nan.copy()
    point = values.mean(1)
    if n_bootstrap <= 0:
        return point, np.full_like(point, np.nan), np.full_like(point, np.nan)
    _, sent = np.unique(unit_sentence, return_inverse=True)
    n_s = int(sent.max()) + 1
    sums = np.zeros((values.shape[0], n_s))
    np.add.at(sums.T, sent, values.T)
    counts = np.bincount(sent, minlength=n_s).astype(np.float64)
    rng = np.random.default_rng(seed)
    W = rng.multinomial(n_s, np.full(n_s, 1.0 / n_s), size=n_bootstrap).astype(np.float64)  # [B, n_s]
    stats = (W @ sums.T) / np.maximum(W @ counts, 1e-12)[:, None]  # [B, rows]
    lo, hi = np.percentile(stats, [100 * (1 - ci) / 2, 100 * (1 + ci) / 2], axis=0)
    return point, lo, hi


# ------------------------------------------------------------------------------------------- the engine
class _Sweep:
    """Everything evaluate_used needs per sentence batch, computed once."""

    def __init__(self, adapter: ModelAdapter, specs: list[_Spec], U: list[Neuron], method: str, kind: str):
        self.adapter, self.specs, self.U, self.method, self.kind = adapter, specs, U, method, kind
        pos = {n: j for j, n in enumerate(U)}
        A = np.zeros((len(specs), len(U)), dtype=np.float32)
        self.spec_cols: list[np.ndarray] = []
        for r, s in enumerate(specs):
            cols = np.asarray([pos[n] for n in s.neurons], dtype=np.int64)
            A[r, cols] = s.alpha
            self.spec_cols.append(cols)
        self.A = torch.from_numpy(A).to(adapter.device)
        self.groups = {h: (c.to(adapter.device), i.to(adapter.device)) for h, (c, i) in iv.group_by_hook(U).items()}

    def batched_hooks(self, A: torch.Tensor, mask: torch.Tensor, values: torch.Tensor | None, B: int):
        """Hooks editing a batch repeated ``A.shape[0]`` times: repetition r uses neuron weights ``A[r]``."""
        hooks = []
        maskf = mask.to(torch.float32)
        for name, (cols, uidx) in self.groups.items():
            A_h = A[:, uidx]
            V_h = None if values is None else values[..., uidx]

            def hook(act, hook=None, cols=cols, A_h=A_h, V_h=V_h, name=name):  # noqa: ARG001
                rows, p = act.shape[:2]
                if rows % B or rows // B != A_h.shape[0] or p != maskf.shape[1]:
                    raise RuntimeError(f"batched intervention at {name}: activation {tuple(act.shape)} does not "
                                       f"match {A_h.shape[0]} repetitions of [{B}, {maskf.shape[1]}]")
                flat = act.reshape(rows, p, -1)
                cur = flat[..., cols].reshape(A_h.shape[0], B, p, len(cols))
                w = maskf[None, :, :, None].to(cur.dtype) * A_h[:, None, None, :].to(cur.dtype)
                v = None if V_h is None else (V_h[None] if V_h.ndim == 3 else V_h).to(cur.dtype)
                new = iv.apply_edit(self.kind, cur, w, v)
                return iv.write_columns(act, cols, new.reshape(rows, p, len(cols)))

            hooks.append((name, hook))
        return hooks

    def single(self, r: int, mask: torch.Tensor, values: torch.Tensor | None) -> iv.Intervention:
        """Spec ``r`` as a public intervention object (the naive strategy)."""
        spec, cols = self.specs[r], torch.as_tensor(self.spec_cols[r], device=mask.device)
        model = self.adapter
        if self.method == "zero":
            return iv.zero(model, spec.neurons, positions=mask)
        vals = values[..., cols]
        if self.method == "translate":
            return iv.translate(model, spec.neurons, delta=vals, alpha=spec.alpha, positions=mask)
        if self.method == "mean":
            return iv.mean(model, spec.neurons, vals, positions=mask)
        return iv.resample(model, spec.neurons, vals, positions=mask)


def _run(adapter: ModelAdapter, inp, hooks, readout: Readout, extra: Sequence = (), **kwargs) -> Output:
    captured: dict[str, torch.Tensor] = {}
    hooks = list(hooks) + list(extra)
    if readout.needs_hidden:
        def capture(act, hook=None):  # noqa: ARG001
            captured["h"] = act
        hooks.append((hook_name("resid.post", adapter.n_layers - 1), capture))
    logits = adapter.forward(inp, hooks, stop_at_layer=None if readout.needs_logits else adapter.n_layers,
                             return_type="logits" if readout.needs_logits else None, **kwargs)
    return Output(logits if readout.needs_logits else None, captured.get("h"))


def _repeat(batch: Batch, n: int) -> Batch:
    return Batch(batch.input_ids.repeat(n, 1), batch.attention_mask.repeat(n, 1), batch.word_of_token.repeat(n, 1),
                 padded=batch.padded)


def _make_readout(readout: "str | Readout", adapter: ModelAdapter, divergence: Sequence[str] | None,
                  agreement_attribute: str | None) -> Readout:
    if isinstance(readout, Readout):
        return readout
    if readout == "identity":
        return IdentityReadout()
    if readout == "agreement":
        return AgreementReadout(agreement_attribute)
    if readout == "divergence":
        if divergence is None:
            divergence = (("embedding_distance", "hidden_distance") if adapter.is_encoder
                          else ("kl", "embedding_distance", "hidden_distance"))
        return DivergenceReadout(divergence)
    raise ValueError(f"readout must be one of {READOUTS} or a Readout, got {readout!r}")


def evaluate_used(
    model,
    corpus: Corpus,
    attribute: str,
    rankings: Any,
    ks: "Sequence[int] | int",
    method: str = "translate",
    readout: "str | Readout" = "auto",
    *,
    site: str = "mlp.post",
    layer: int | None = None,
    neurons: Sequence[Neuron] | None = None,
    positions: str = "attribute",
    alpha: "float | str" = 1.0,
    beta: float = 8.0,
    mean_of: str = "dataset",
    resample_from: str = "any",
    random_baseline: bool = True,
    n_random: int = 3,
    bottom: bool = True,
    n_bootstrap: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    fit_corpus: Corpus | None = None,
    aggregation: str = "last",
    agreement_attribute: str | None = None,
    divergence: Sequence[str] | None = None,
    batch_size: int = 32,
    max_tokens: int = 16384,
    strategy: str = "auto",
    device: "str | torch.device | None" = None,
    progress: bool = True,
    plot: "str | Path | None" = None,
) -> pd.DataFrame:
    """Intervene on the top-k (and bottom-k, random-k) neurons of each ranking and measure what changes.

    ``rankings``: a dict name -> ranking, a list of rankings, or one ranking; a ranking is a neuron order
    (list of :class:`Neuron` or ``'L1.N5'`` strings, or column indices: into ``neurons`` if given, e.g.
    ``acts.neurons``, else of ``site`` at ``layer``), a fitted ranker (anything with ``order_``, read as column
    indices), or a ranker name (``'probeless'``...) fitted here with :mod:`tl_neuronprobe.rankers` on
    ``fit_corpus`` (default: ``corpus``) at ``site``/``layer``. An encoded table from
    :func:`~tl_neuronprobe.encoded.evaluate_encoded` gives its fitted orders (``attrs['orders']``).

    ``method``: ``translate`` (``h_i + alpha_i (q(next class)_i - q(own class)_i)``; ``alpha`` a constant or
    ``'scaled'``: ``beta * (1e-3/beta) ** (rank/(n-1))``), ``zero``, ``mean`` (``mean_of='dataset'``: the mean
    over attribute-bearing words; ``'target'``: the next class's mean) or ``resample`` (the value of a random
    attribute-bearing word, ``resample_from='any'`` or ``'other_class'``). Class means and donors come from
    ``fit_corpus`` (word representations by ``aggregation``); the next class follows the sorted class order.
    ``positions``: ``'attribute'`` (every sub-token of every word carrying the attribute) or ``'all'``.

    ``readout``: ``identity``, ``agreement``, ``divergence`` (see :mod:`tl_neuronprobe.readouts`) or ``auto``:
    identity when the model predicts its own input at the attribute words (>= 50% on a clean batch), else
    agreement for decoders whose corpus has verbs to read (>= 60% clean agreement), else divergence.

    Returns a tidy DataFrame: ``attribute, method, readout, ranking, selection (top|bottom|random), k, metric,
    value, ci_low, ci_high, n_units, n_sentences``; random rows average ``n_random`` draws of the ranking's
    site/layer pool and are repeated under each ranking. CIs are percentile bootstraps over sentences.
    ``table.attrs`` records the readout, strategy, forward passes, seconds in all and in the intervention
    sweep (clean and intervened passes plus the readout). With ``plot``, the curves are
    saved there (:func:`plot_used`).
    """
    t_start = time.perf_counter()
    adapter = ModelAdapter.wrap(model)
    if device is not None:
        adapter.model.to(device)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if positions not in ("attribute", "all"):
        raise ValueError(f"positions must be 'attribute' or 'all', got {positions!r}")
    if positions == "all" and method == "translate":
        raise ValueError("translation needs each position's class: use positions='attribute' with translate")
    if mean_of not in ("dataset", "target"):
        raise ValueError(f"mean_of must be 'dataset' or 'target', got {mean_of!r}")
    if resample_from not in ("any", "other_class"):
        raise ValueError(f"resample_from must be 'any' or 'other_class', got {resample_from!r}")
    if strategy not in ("auto", "batched", "cached", "naive"):
        raise ValueError(f"strategy must be 'auto', 'batched', 'cached' or 'naive', got {strategy!r}")
    check_site(site)
    if len(corpus) == 0:
        raise ValueError("the corpus is empty")
    if attribute not in corpus.attribute_names:
        raise KeyError(f"no word in {corpus.name} has attribute {attribute!r}; attributes: {corpus.attribute_names}")
    ks = [int(ks)] if isinstance(ks, (int, np.integer)) else [int(k) for k in ks]
    if not ks or any(k < 1 for k in ks):
        raise ValueError(f"ks must be positive integers, got {ks}")
    ks = sorted(dict.fromkeys(ks))
    fit_corpus = corpus if fit_corpus is None else fit_corpus
    rng = np.random.default_rng(seed)

    # ---- rankings -> neuron orders
    items = _ranking_items(rankings)
    orders: dict[str, list[Neuron] | None] = {}
    pending: dict[str, str] = {}
    for i, (name, r) in enumerate(items):
        name = name or _default_name(r, i)
        while name in orders:
            name = f"{name}_{i}"
        if isinstance(r, str) and not _is_neuron_text(r):
            pending[name] = r
            orders[name] = None
        elif hasattr(r, "order_"):
            orders[name] = _columns_to_neurons(r.order_, site, layer, adapter, name, neurons)
        elif isinstance(r, (list, tuple)) and r and isinstance(r[0], (Neuron, str)):
            orders[name] = [Neuron.parse(n) for n in r]
        else:
            orders[name] = _columns_to_neurons(r, site, layer, adapter, name, neurons)
    if pending and layer is None:
        raise ValueError(f"rankings {list(pending.values())} are ranker names: pass layer= (and site=) to say "
                         "which neurons to rank")

    def validate(name: str, order: list[Neuron]) -> None:
        if not order:
            raise ValueError(f"ranking {name!r} is empty")
        adapter.check_neurons(order)
        if len(set(order)) != len(order):
            raise ValueError(f"ranking {name!r} lists a neuron twice")
        if max(ks) > len(order):
            raise ValueError(f"k={max(ks)} is larger than ranking {name!r} ({len(order)} neurons)")

    for name, order in orders.items():
        if order is not None:
            validate(name, order)
    blocks = {(n.site, n.layer) for o in orders.values() if o for n in o}
    if pending:
        blocks.add((site, int(layer)))

    # ---- activations of the fit corpus, where needed (class means, donors, ranker fitting)
    acts = X_attr = y_attr = None
    classes: list[str] = sorted({v for v in fit_corpus.attribute(attribute) if v is not None}) \
        if attribute in fit_corpus.attribute_names else []
    if method != "zero" or pending:
        from ..data.extraction import extract

        sites = sorted({s for s, _ in blocks})
        layers = sorted({la for _, la in blocks})
        acts = extract(adapter, fit_corpus, site=sites, layers=layers, aggregation=aggregation,
                       batch_size=max(batch_size, 32), device=None, progress=progress)
        X_all, y_t, classes, idx = acts.dataset(attribute, return_index=True)
        X_attr, y_attr = X_all, y_t.numpy()
        groups = acts.sentence_ids[idx]
        for name, ranker_name in pending.items():
            cols = acts.columns([Neuron(int(layer), j, site) for j in range(adapter.site_width(site))])
            fitted = _fit_ranker(ranker_name, X_attr[:, torch.as_tensor(cols)].numpy(), y_attr, groups, seed)
            orders[name] = _columns_to_neurons(fitted.order_, site, layer, adapter, name)  # fitted on one layer
            validate(name, orders[name])
    if len(classes) < 2 and method in ("translate", "mean", "resample"):
        raise ValueError(f"attribute {attribute!r} has fewer than 2 classes in the fit corpus ({classes})")
    all_orders: dict[str, list[Neuron]] = {k: v for k, v in orders.items() if v is not None}

    # ---- specs: top / bottom per ranking, random per pool (all neurons of the ranking's sites and layers)
    specs: list[_Spec] = []
    index: dict[tuple, list[int]] = {}
    pool_of: dict[str, tuple] = {}
    for name, order in all_orders.items():
        sels = [("top", order)] + ([("bottom", order[::-1])] if bottom else [])
        for sel, o in sels:
            for k in ks:
                index[(name, sel, k)] = [len(specs)]
                specs.append(_Spec(name, sel, k, 0, list(o[:k]), _alpha_for(method, k, len(o), alpha, beta)))
        pool_of[name] = tuple(sorted({(n.site, n.layer) for n in order}))
    if random_baseline:
        for pool in dict.fromkeys(pool_of.values()):
            members = [Neuron(la, j, s) for s, la in pool for j in range(adapter.site_width(s))]
            if max(ks) > len(members):
                raise ValueError(f"k={max(ks)} is larger than the random pool ({len(members)} neurons)")
            for d in range(n_random):
                perm = np.random.default_rng([seed, d, len(members)]).permutation(len(members))
                o = [members[j] for j in perm]
                for k in ks:
                    index.setdefault((pool, "random", k), []).append(len(specs))
                    specs.append(_Spec(f"random{pool}", "random", k, d, o[:k],
                                       _alpha_for(method, k, len(o), alpha, beta)))
    U = sorted({n for s in specs for n in s.neurons})
    kind = "shift" if method == "translate" else "replace"
    sweep = _Sweep(adapter, specs, U, method, kind)

    # ---- value tables over U (on the device)
    dev = adapter.device
    lookup = {c: i for i, c in enumerate(classes)}
    C = len(classes)
    table = mu = XU = None
    if acts is not None:
        colU = torch.as_tensor(acts.columns(U))
        XU = X_attr[:, colU].float()
        if method != "zero":
            means = iv.class_means(XU, torch.as_tensor(y_attr), C) if C else None
            nxt = torch.arange(1, C + 1) % C
            if method == "translate":
                table = (means[nxt] - means).to(dev)
            elif method == "mean":
                table = means[nxt].to(dev) if mean_of == "target" else None
                mu = XU.mean(0).to(dev)
        XU = XU.to(dev)

    # ---- the evaluated corpus: tokens, labels, units
    tokenized = adapter.tokenize_sentences([s.words for s in corpus.sentences])
    labels: list[np.ndarray] = []
    for s, tok in zip(corpus.sentences, tokenized):
        missing = np.bincount(tok.word_of_token[tok.word_of_token >= 0], minlength=len(s)) == 0
        if missing.any():
            j = int(np.argmax(missing))
            raise ValueError(f"sentence {s.id!r}: word {j} ({s.words[j]!r}) produced no token with this tokenizer")
        vals = s.attributes.get(attribute, [None] * len(s))
        labels.append(np.asarray([lookup.get(v, -1) if v is not None else -1 for v in vals], dtype=np.int64))
    carries = [lab >= 0 for lab in labels]
    too_long = [i for i, t in enumerate(tokenized) if len(t) > adapter.n_ctx]
    if too_long:
        warnings.warn(f"{len(too_long)} sentences are longer than the context ({adapter.n_ctx}) and are skipped")
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in corpus.sentences])])
    donor_of_word = None
    if method == "resample":
        donor_of_word = np.full(int(offsets[-1]), -1, dtype=np.int64)
        for s, lab in enumerate(labels):
            for w in np.flatnonzero(lab >= 0):
                if resample_from == "other_class":
                    pool = np.flatnonzero(y_attr != lab[w])
                else:
                    pool = np.arange(len(y_attr))
                donor_of_word[offsets[s] + w] = pool[rng.integers(len(pool))] if len(pool) else -1
    donor_t = torch.as_tensor(donor_of_word, device=dev) if donor_of_word is not None else None

    wanted = [i for i in range(len(corpus)) if i not in set(too_long)
              and (positions == "all" or carries[i].any())]
    if not wanted:
        raise ValueError(f"no sentence of {corpus.name} has a word with a known class of {attribute!r}")
    order_by_len = sorted(wanted, key=lambda i: len(tokenized[i]))
    batches = [order_by_len[i:i + batch_size] for i in range(0, len(order_by_len), batch_size)]

    def prepare(sent_idx: list[int]):
        batch = adapter.collate([tokenized[i] for i in sent_idx])
        lab = iv.token_labels(batch.word_of_token, [labels[i] for i in sent_idx])
        word_mask = lab >= 0
        mask = word_mask if positions == "attribute" else batch.attention_mask.bool()
        values = None
        if method == "translate":
            values = table[lab.clamp(min=0)] * word_mask[..., None].float()
        elif method == "mean":
            values = table[lab.clamp(min=0)] if mean_of == "target" else mu
        elif method == "resample":
            gw = torch.as_tensor(offsets[sent_idx], device=dev)[:, None] + batch.word_of_token.clamp(min=0)
            donor = torch.where(batch.word_of_token >= 0, donor_t[gw], torch.full_like(gw, -1))
            values = XU[donor.clamp(min=0)] * (donor >= 0)[..., None].float()
            mask = mask & (donor >= 0)
        return batch, word_mask, mask, values

    # ---- readout
    is_auto = isinstance(readout, str) and readout == "auto"
    if not is_auto:
        ro = _make_readout(readout, adapter, divergence, agreement_attribute)
        has_units = ro.setup(adapter, corpus, attribute, carries, tokenized)
    else:
        ro, has_units = _auto_readout(adapter, corpus, attribute, carries, tokenized, batches, prepare,
                                      divergence, agreement_attribute)
    batches = [[i for i in b if has_units[i]] for b in batches]
    batches = [b for b in batches if b]
    if not batches:
        raise ValueError(f"the {ro.name} readout found nothing to read in {corpus.name}")

    # ---- strategy
    L0 = min(n.layer for n in U)
    can_cache = adapter.generation == "hooked" and L0 > 0
    if strategy == "cached" and not can_cache:
        raise ValueError("strategy='cached' needs a HookedTransformer and an intervened layer above 0 "
                         f"(have {adapter.generation}, first intervened layer {L0}); use 'batched'")
    if strategy == "auto":
        strategy = "cached" if can_cache else "batched"

    R = len(specs)
    raw: dict[str, list[torch.Tensor]] = {}
    n_forward = 0
    bar = tqdm(total=len(batches), disable=not progress, desc=f"used ({ro.name}, {strategy})")
    t_sweep = time.perf_counter()
    with torch.inference_mode():
        for sent_idx in batches:
            batch, word_mask, mask, values = prepare(sent_idx)
            B, P = batch.input_ids.shape
            plan = ro.plan(batch, sent_idx, word_mask, mask)
            cache: dict[str, torch.Tensor] = {}
            extra = []
            if strategy == "cached":
                def keep(act, hook=None):  # noqa: ARG001
                    cache["resid"] = act.detach()
                extra = [(hook_name("resid.pre", L0), keep)]
            out = _run(adapter, batch, [], ro, extra)
            n_forward += 1
            ref = ro.clean(out, plan)
            parts: list[dict[str, torch.Tensor]] = []
            if strategy == "naive":
                for r in range(R):
                    single = sweep.single(r, mask, values)
                    parts.append(ro.compare(_run(adapter, batch, single.hooks(), ro), ref, plan, 1))
                    n_forward += 1
            else:
                per = max(1, max_tokens // max(1, B * P))
                if ro.needs_logits:
                    per = max(1, min(per, (1 << 29) // max(1, B * P * adapter.d_vocab * 4)))
                for lo in range(0, R, per):
                    A = sweep.A[lo:lo + per]
                    n = A.shape[0]
                    hooks = sweep.batched_hooks(A, mask, values, B)
                    if strategy == "cached":
                        o = _run(adapter, cache["resid"].repeat(n, 1, 1), hooks, ro, start_at_layer=L0,
                                 attention_mask=batch.attention_mask.repeat(n, 1))
                    else:
                        o = _run(adapter, _repeat(batch, n), hooks, ro)
                    parts.append(ro.compare(o, ref, plan, n))
                    n_forward += 1
            for key in parts[0]:
                raw.setdefault(key, []).append(torch.cat([p[key] for p in parts], 0))
            bar.update(1)
    bar.close()
    results = ro.finalize({k: torch.cat(v, 1).cpu().numpy() for k, v in raw.items()})
    sweep_seconds = time.perf_counter() - t_sweep
    unit_sentence = ro.units_sentences()

    # ---- rows: top/bottom per ranking; random averaged over draws, repeated under each ranking
    row_keys: list[tuple[str, str, int]] = []
    row_specs: list[list[int]] = []
    for name in all_orders:
        for sel in ("top", "bottom") if bottom else ("top",):
            for k in ks:
                row_keys.append((name, sel, k))
                row_specs.append(index[(name, sel, k)])
        if random_baseline:
            for k in ks:
                row_keys.append((name, "random", k))
                row_specs.append(index[(pool_of[name], "random", k)])
    records = []
    n_sent = len(np.unique(unit_sentence))
    for metric in ro.metrics:
        vals = results[metric]
        stacked = np.stack([vals[rs].mean(0) for rs in row_specs]) if row_specs else np.zeros((0, vals.shape[1]))
        point, lo, hi = bootstrap_means(stacked, unit_sentence, n_bootstrap, ci, seed)
        for (name, sel, k), v, a, b in zip(row_keys, point, lo, hi):
            records.append(dict(attribute=attribute, method=method, readout=ro.name, ranking=name, selection=sel,
                                k=k, metric=metric, value=float(v), ci_low=float(a), ci_high=float(b),
                                n_units=int(vals.shape[1]), n_sentences=n_sent))
    out_table = pd.DataFrame.from_records(records)
    out_table.attrs.update(dict(readout=ro.name, method=method, attribute=attribute, strategy=strategy,
                                forward_passes=n_forward, interventions=R, batches=len(batches),
                                sweep_seconds=round(sweep_seconds, 4), seconds=round(time.perf_counter() - t_start, 4),
                                skipped_long=len(too_long)))
    if plot is not None:
        fig = plot_used(out_table, plot)
        import matplotlib.pyplot as plt

        plt.close(fig)
    return out_table


def _auto_readout(adapter, corpus, attribute, carries, tokenized, batches, prepare, divergence, agreement_attribute):
    """Pick the readout from what the model does on the first batch (see :func:`evaluate_used`)."""
    sent_idx = batches[0]
    batch, word_mask, mask, _ = prepare(sent_idx)
    probe = IdentityReadout()
    with torch.inference_mode():
        out = Output(adapter.forward(batch), None)
    if probe.clean_accuracy(out, batch, word_mask) >= 0.5:
        ro = IdentityReadout()
        return ro, ro.setup(adapter, corpus, attribute, carries, tokenized)
    if not adapter.is_encoder:
        ro = AgreementReadout(agreement_attribute)
        try:
            has = ro.setup(adapter, corpus, attribute, carries, tokenized)
        except (ValueError, KeyError):
            has = None
        if has is not None:
            first = [i for b in batches for i in b if has[i]][:64]
            if first:
                b2, wm2, m2, _ = prepare(first)
                plan = ro.plan(b2, first, wm2, m2, record=False)
                with torch.inference_mode():
                    acc = ro.clean_accuracy(Output(adapter.forward(b2), None), plan)
                if acc >= 0.6:
                    return ro, has
    ro = _make_readout("divergence", adapter, divergence, agreement_attribute)
    return ro, ro.setup(adapter, corpus, attribute, carries, tokenized)


# ------------------------------------------------------------------------------------------- plots
def _pyplot():
    import matplotlib

    backend = matplotlib.get_backend().lower()
    if "inline" not in backend and backend not in ("agg", "pdf", "svg", "ps", "cairo"):
        matplotlib.use("Agg")  # files only, no display needed; notebooks keep their inline backend
    import matplotlib.pyplot as plt

    return plt


def plot_used(table: pd.DataFrame, path: "str | Path | None" = None, metrics: Sequence[str] | None = None):
    """Used curves: one panel per metric, value against k; top-k solid with its CI band, bottom-k dotted,
    random-k dashed gray. Returns the matplotlib Figure (saved to ``path`` if given)."""
    plt = _pyplot()
    if table.empty:
        raise ValueError("the table is empty")
    metrics = list(metrics or dict.fromkeys(table["metric"]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 3.8), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    rankings = list(dict.fromkeys(table["ranking"]))
    for ax, metric in zip(axes[0], metrics):
        t = table[table["metric"] == metric]
        drawn_random = set()
        for i, name in enumerate(rankings):
            c = colors[i % len(colors)]
            for sel, style in (("top", "-"), ("bottom", ":"), ("random", "--")):
                d = t[(t["ranking"] == name) & (t["selection"] == sel)].sort_values("k")
                if d.empty:
                    continue
                if sel == "random":
                    key = tuple(np.round(d["value"].to_numpy(), 12))
                    if key in drawn_random:
                        continue
                    drawn_random.add(key)
                    color, label = "0.45", "random" if len(drawn_random) == 1 else None
                else:
                    color, label = c, f"{name}" if sel == "top" else f"{name} (bottom)"
                ax.plot(d["k"], d["value"], style, color=color, marker="o" if sel == "top" else None, ms=3,
                        label=label)
                if sel != "bottom":
                    ax.fill_between(d["k"], d["ci_low"], d["ci_high"], color=color, alpha=0.15, lw=0)
        ax.set_xlabel("k (neurons intervened)")
        ax.set_ylabel(metric.replace("_", " "))
        ax.set_title(metric.replace("_", " "))
        ax.grid(alpha=0.3)
    attrs = table.iloc[0]
    fig.suptitle(f"used: {attrs.get('attribute', '')}, {attrs.get('method', '')}, {attrs.get('readout', '')} readout")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    return fig


# ------------------------------------------------------------------------------------------- encoded vs used
@dataclass
class EncodedUsed:
    """The comparison: per (ranking, k) encoded and used scores and ranks, per-k agreement, a summary."""

    table: pd.DataFrame
    per_k: pd.DataFrame
    summary: str
    figure: Any = None

    def __str__(self) -> str:
        return self.summary


_ENCODED_METRICS = ("accuracy", "f1", "macro_f1", "selectivity", "score", "mutual_information")


def _curve(table: pd.DataFrame, metric: str | None, preferred: Sequence[str], what: str, selection: str,
           attribute: str | None, probe: str | None = None) -> tuple[pd.DataFrame, str]:
    """(ranking, k, value) of one metric from a tidy (metric/value) or wide table."""
    t = table.copy()
    if "ranking" not in t.columns:
        for alt in ("ranker", "method_name", "name"):
            if alt in t.columns:
                t = t.rename(columns={alt: "ranking"})
                break
    if "ranking" not in t.columns or "k" not in t.columns:
        raise ValueError(f"the {what} table needs 'ranking' and 'k' columns, has {list(table.columns)}")
    if "selection" in t.columns:
        t = t[t["selection"] == selection]
    if probe is not None and "probe" in t.columns and probe in set(t["probe"]):
        t = t[t["probe"] == probe]
    if attribute is not None and "attribute" in t.columns and attribute in set(t["attribute"]):
        t = t[t["attribute"] == attribute]
    if "metric" in t.columns and "value" in t.columns:
        have = list(dict.fromkeys(t["metric"]))
        metric = metric or next((m for m in preferred if m in have), have[0] if have else None)
        if metric not in have:
            raise ValueError(f"the {what} table has no metric {metric!r}; it has {have}")
        t = t[t["metric"] == metric]
        col = "value"
    else:
        numeric = [c for c in t.columns if c not in ("k",) and pd.api.types.is_numeric_dtype(t[c])]
        metric = metric or next((m for m in preferred if m in numeric), numeric[0] if numeric else None)
        if metric not in t.columns:
            raise ValueError(f"the {what} table has no column {metric!r}; numeric columns: {numeric}")
        col = metric
    out = t.groupby(["ranking", "k"], as_index=False)[col].mean().rename(columns={col: "value"})
    if out.empty:
        raise ValueError(f"the {what} table has no rows for selection {selection!r}")
    return out, metric


def compare_encoded_used(encoded_table: pd.DataFrame, used_table: pd.DataFrame, encoded_metric: str | None = None,
                         used_metric: str | None = None, selection: str = "top", probe: str | None = "logistic",
                         path: "str | Path | None" = None, tol: float = 0.02) -> EncodedUsed:
    """Put encoded (probing) and used (intervention) curves side by side and say where they disagree.

    Per k present in both tables, the rankings are ordered by their encoded score and by their used score;
    ``per_k`` gives the Spearman correlation of the two orderings, the best ranking by each, and how far each
    ranking's used score is above random-k (when the used table has random rows). ``summary`` says it in
    words; ``figure`` shows the two panels (saved to ``path`` if given). Scores within ``tol`` count as ties.
    ``encoded_table`` may be tidy (``metric``/``value``) or wide (one column per metric, as
    :func:`~tl_neuronprobe.encoded.evaluate_encoded` gives; ``probe`` picks its probe).
    """
    from scipy.stats import spearmanr

    attribute = None
    if "attribute" in used_table.columns and used_table["attribute"].nunique() == 1:
        attribute = str(used_table["attribute"].iloc[0])
    readout = str(used_table["readout"].iloc[0]) if "readout" in used_table.columns and len(used_table) else None
    enc, enc_metric = _curve(encoded_table, encoded_metric, _ENCODED_METRICS, "encoded", selection, attribute,
                             probe)
    used, use_metric = _curve(used_table, used_metric, READOUT_METRICS.get(readout, ()), "used", selection,
                              attribute)
    rand = None
    if "selection" in used_table.columns and (used_table["selection"] == "random").any():
        rand, _ = _curve(used_table, use_metric, (), "used", "random", attribute)
        rand = rand.groupby("k", as_index=False)["value"].mean().rename(columns={"value": "random"})
    merged = enc.merge(used, on=["ranking", "k"], suffixes=("_encoded", "_used"))
    if merged.empty:
        raise ValueError("the encoded and used tables share no (ranking, k): rankings "
                         f"{sorted(set(enc['ranking']))} vs {sorted(set(used['ranking']))}, "
                         f"k {sorted(set(enc['k']))} vs {sorted(set(used['k']))}")
    merged = merged.rename(columns={"value_encoded": "encoded", "value_used": "used"})
    if rand is not None:
        merged = merged.merge(rand, on="k", how="left")
        merged["used_minus_random"] = merged["used"] - merged["random"]
    merged["encoded_rank"] = merged.groupby("k")["encoded"].rank(ascending=False, method="min")
    merged["used_rank"] = merged.groupby("k")["used"].rank(ascending=False, method="min")
    rows = []
    for k, g in merged.groupby("k"):
        rho = float("nan")
        if len(g) >= 2 and g["encoded"].nunique() > 1 and g["used"].nunique() > 1:
            rho = float(spearmanr(g["encoded"], g["used"]).statistic)
        be = g.loc[g["encoded"].idxmax()]
        bu = g.loc[g["used"].idxmax()]
        row = dict(k=int(k), n_rankings=len(g), spearman=rho, best_encoded=be["ranking"],
                   best_encoded_score=float(be["encoded"]), best_used=bu["ranking"], best_used_score=float(bu["used"]),
                   disagree=bool(be["ranking"] != bu["ranking"]
                                 and float(g.loc[g["ranking"] == be["ranking"], "used"].iloc[0]) < bu["used"] - tol))
        if "used_minus_random" in g:
            row["at_or_below_random"] = ", ".join(g.loc[g["used_minus_random"] <= tol, "ranking"])
        rows.append(row)
    per_k = pd.DataFrame(rows)
    summary = _summary(per_k, merged, enc_metric, use_metric, attribute, tol)
    fig = _plot_compare(merged, enc_metric, use_metric, attribute, path)
    return EncodedUsed(merged.sort_values(["k", "ranking"]).reset_index(drop=True), per_k, summary, fig)


def _summary(per_k: pd.DataFrame, merged: pd.DataFrame, enc_metric: str, use_metric: str,
             attribute: str | None, tol: float) -> str:
    what = f" for {attribute}" if attribute else ""
    lines = [f"Encoded ({enc_metric}) versus used ({use_metric}){what}, {len(set(merged['ranking']))} rankings, "
             f"k in {sorted(set(int(k) for k in merged['k']))}."]
    dis = per_k[per_k["disagree"]]
    if len(dis):
        ks = ", ".join(str(k) for k in dis["k"])
        r = dis.iloc[0]
        lines.append(f"Encoded and used disagree at k = {ks}: e.g. at k={r['k']} {r['best_encoded']} encodes best "
                     f"({r['best_encoded_score']:.3f}) but {r['best_used']} changes the model most "
                     f"({r['best_used_score']:.3f}).")
    else:
        lines.append("The ranking that encodes best is also the one the model uses most at every k (within "
                     f"{tol}).")
    rho = per_k["spearman"].dropna()
    if len(rho):
        lines.append(f"Spearman correlation between the encoded and used orderings of the rankings: mean "
                     f"{rho.mean():+.2f} (from {rho.min():+.2f} to {rho.max():+.2f}).")
    if "at_or_below_random" in per_k:
        weak = sorted({n for s in per_k["at_or_below_random"] for n in s.split(", ") if n})
        if weak:
            counts = {n: int(sum(n in s.split(", ") for s in per_k["at_or_below_random"])) for n in weak}
            desc = ", ".join(f"{n} ({c}/{len(per_k)} k values)" for n, c in counts.items())
            lines.append(f"No better than random neurons of the same k: {desc}.")
        else:
            lines.append("Every ranking's top-k neurons change the model more than random neurons of the same k.")
    return " ".join(lines)


def _plot_compare(merged: pd.DataFrame, enc_metric: str, use_metric: str, attribute: str | None, path):
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, g) in enumerate(merged.groupby("ranking", sort=False)):
        g = g.sort_values("k")
        axes[0].plot(g["k"], g["encoded"], "-o", ms=3, color=colors[i % len(colors)], label=name)
        axes[1].plot(g["k"], g["used"], "-o", ms=3, color=colors[i % len(colors)], label=name)
    if "random" in merged:
        r = merged.groupby("k", as_index=False)["random"].mean()
        axes[1].plot(r["k"], r["random"], "--", color="0.45", label="random")
    axes[0].set_title(f"encoded: {enc_metric}")
    axes[1].set_title(f"used: {use_metric}")
    for ax in axes:
        ax.set_xlabel("k")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle(f"encoded versus used{': ' + attribute if attribute else ''}")
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    return fig


def iter_metrics(table: pd.DataFrame) -> Iterable[str]:
    """The metrics of a used table, in order."""
    return list(dict.fromkeys(table["metric"]))


def excess_over_random(table: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """Per (ranking, selection, k): value minus the random-k value of the same ranking and k."""
    t = table if metric is None else table[table["metric"] == metric]
    rand = t[t["selection"] == "random"][["ranking", "k", "metric", "value"]].rename(columns={"value": "random"})
    out = t[t["selection"] != "random"].merge(rand, on=["ranking", "k", "metric"], how="left")
    out["excess"] = out["value"] - out["random"]
    return out

