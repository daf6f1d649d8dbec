"""Scoring descriptions on held-out words, the baselines scored the same way, and P@k / R@k with bootstrap intervals.

Every method gives, per neuron, a boolean description mask over the held-out words and a predicted activation;
the neuron's firing mask there is ``activation > threshold`` with the threshold fixed on the fitting words.
Not for finding descriptions (see :mod:`._associate` and :mod:`._compose`).
"""

from __future__ import annotations

from typing import Hashable, Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch


def sentence_split(sentence_ids: np.ndarray, test_size: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Word indices of a seeded split by sentence: ``(fit, held_out)``."""
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be in (0, 1), got {test_size}")
    sid = np.asarray(sentence_ids)
    uniq = np.unique(sid)
    if len(uniq) < 2:
        raise ValueError("a held-out split needs at least two sentences")
    rng = np.random.default_rng(seed)
    n_test = min(len(uniq) - 1, max(1, int(round(test_size * len(uniq)))))
    test_sent = rng.choice(uniq, size=n_test, replace=False)
    is_test = np.isin(sid, test_sent)
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def mask_scores(desc: np.ndarray, fire: np.ndarray) -> dict[str, np.ndarray]:
    """IoU, precision, recall and F1 of description masks against firing masks (columns = neurons)."""
    tp = (desc & fire).sum(0).astype(np.float64)
    d, f = desc.sum(0).astype(np.float64), fire.sum(0).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(d > 0, tp / d, 0.0)
        recall = np.where(f > 0, tp / f, np.nan)
        f1 = np.where(d + f > 0, 2 * tp / (d + f), np.nan)
        iou = np.where(d + f - tp > 0, tp / (d + f - tp), np.nan)
    return {"iou": iou, "precision": precision, "recall": recall, "f1": f1}


def pearson(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Column-wise Pearson correlation (0 where either side is constant)."""
    p = pred - pred.mean(0)
    t = truth - truth.mean(0)
    den = np.sqrt((p * p).sum(0) * (t * t).sum(0))
    return np.where(den > 0, (p * t).sum(0) / np.where(den > 0, den, 1), 0.0)


def hard_negative_accuracy(desc: np.ndarray, fire: np.ndarray, groups: Sequence[np.ndarray]) -> np.ndarray:
    """Balanced accuracy of ``desc`` as a detector: firing words vs hard negatives, per neuron.

    Hard negatives: silent words sharing a group value (lemma, UPOS: integer codes, -1 for none) with a firing
    word of that neuron.
    """
    hard = np.zeros_like(fire)
    f32 = fire.astype(np.float32)
    for g in groups:
        ok = g >= 0
        onehot = sp.csr_matrix((np.ones(ok.sum(), np.float32), (g[ok], np.flatnonzero(ok))),
                               shape=(int(g.max()) + 1 if ok.any() else 1, len(g)))
        present = np.asarray(onehot @ f32) > 0  # [n_values, n_neurons]
        hard[ok] |= present[g[ok]]
    hard &= ~fire
    n_pos, n_hard = fire.sum(0), hard.sum(0)
    tpr = (desc & fire).sum(0) / np.maximum(n_pos, 1)
    tnr = (~desc & hard).sum(0) / np.maximum(n_hard, 1)
    return np.where((n_pos > 0) & (n_hard > 0), 0.5 * (tpr + tnr), np.nan)


def codes(values: Sequence) -> np.ndarray:
    """Integer codes of per-word values (-1 for None)."""
    arr = np.asarray(["\x00" if v is None else str(v) for v in values], dtype=object)
    uniq, inv = np.unique(arr.astype(str), return_inverse=True)
    inv = inv.astype(np.int64)
    if "\x00" in uniq:
        inv[arr == "\x00"] = -1
    return inv


def two_level_prediction(desc_fit: np.ndarray, x_fit: np.ndarray, desc_test: np.ndarray) -> np.ndarray:
    """Predict each word's activation as the fit-split mean of matching or of non-matching words."""
    on = desc_fit.sum(0)
    off = len(desc_fit) - on
    mean_on = np.where(on > 0, (x_fit * desc_fit).sum(0) / np.maximum(on, 1), x_fit.mean(0))
    mean_off = np.where(off > 0, (x_fit * ~desc_fit).sum(0) / np.maximum(off, 1), x_fit.mean(0))
    return np.where(desc_test, mean_on, mean_off)


def context_scores(desc: np.ndarray, fire: np.ndarray, x: np.ndarray, sentences: np.ndarray, seed: int = 0,
                   chunk: int = 512) -> dict[str, np.ndarray]:
    """delphi-style detection and fuzzing of a description over held-out *sentences*, without an LLM: the
    description is the judge (a word matches it or not). Per neuron:

    - ``context_detection_bacc``: a sentence is called active when some word of it matches the description;
      balanced accuracy over the sentences where the neuron fires (some word above its threshold) and those where
      it does not.
    - ``fuzzing_bacc``: in each sentence where the neuron fires, two highlights: the right one (its most active
      word) and a wrong one (a seeded random silent word of the same sentence); a highlight is judged right when
      the highlighted word matches the description. Balanced accuracy over right and wrong highlights (sentences
      without a silent word give no wrong highlight).

    NaN where a class is empty (no firing sentence, or no silent one). Neurons go ``chunk`` at a time (memory)."""
    sent = torch.as_tensor(codes(sentences))
    n_sent = int(sent.max()) + 1 if len(sent) else 0
    u = torch.from_numpy(np.random.default_rng(seed).random(len(sent))).float()[:, None]
    out = {"context_detection_bacc": np.full(desc.shape[1], np.nan), "fuzzing_bacc": np.full(desc.shape[1], np.nan)}
    for start in range(0, desc.shape[1], chunk):
        cols = slice(start, start + chunk)
        d = torch.from_numpy(np.ascontiguousarray(desc[:, cols]))
        f = torch.from_numpy(np.ascontiguousarray(fire[:, cols]))
        xt = torch.from_numpy(np.ascontiguousarray(x[:, cols])).float()
        det, fuzz = _context_chunk(d, f, xt, sent, n_sent, u)
        out["context_detection_bacc"][cols], out["fuzzing_bacc"][cols] = det, fuzz
    return out


def _context_chunk(d: torch.Tensor, f: torch.Tensor, xt: torch.Tensor, sent: torch.Tensor, n_sent: int,
                   u: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    idx = sent[:, None].expand(-1, d.shape[1])

    def per_sentence(v: torch.Tensor) -> torch.Tensor:
        return torch.zeros(n_sent, v.shape[1], dtype=torch.float64).index_add_(0, sent, v.double())

    def chosen(key: torch.Tensor) -> torch.Tensor:
        """Per sentence the word with the smallest finite ``key`` (ties: all of them), as a word mask."""
        best = torch.full((n_sent, key.shape[1]), torch.inf, dtype=key.dtype).scatter_reduce(0, idx, key, "amin")
        return torch.isfinite(key) & (key == best[sent])

    active = per_sentence(f) > 0
    called = per_sentence(d) > 0
    n_pos, n_neg = active.sum(0).double(), (~active).sum(0).double()
    tpr = (called & active).sum(0) / n_pos.clamp(min=1)
    tnr = (~called & ~active).sum(0) / n_neg.clamp(min=1)
    detection = torch.where((n_pos > 0) & (n_neg > 0), 0.5 * (tpr + tnr), torch.nan)
    top = chosen(torch.where(f, -xt, torch.inf))
    silent = chosen(torch.where(f, torch.inf, u.expand_as(xt)))
    right_ok = per_sentence(top & d) > 0
    wrong_ok = per_sentence(silent & ~d) > 0
    has_wrong = (per_sentence(silent) > 0) & active
    n_right, n_wrong = active.sum(0).double(), has_wrong.sum(0).double()
    fuzz = 0.5 * ((right_ok & active).sum(0) / n_right.clamp(min=1)
                  + (wrong_ok & has_wrong).sum(0) / n_wrong.clamp(min=1))
    fuzz = torch.where((n_right > 0) & (n_wrong > 0), fuzz, torch.nan)
    return detection.numpy(), fuzz.numpy()


def top_and_random_corr(pred: np.ndarray, x: np.ndarray, sentences: np.ndarray, n_top: int = 20,
                        n_random: int = 20, seed: int = 0, chunk: int = 256) -> np.ndarray:
    """Simulation scored as Bills et al. (2023) score explanations ("top-and-random"): per neuron, Pearson
    correlation of predicted and true activations over the words of its ``n_top`` held-out sentences with the
    highest activation plus ``n_random`` other held-out sentences drawn at random (seeded, the same draw order
    for every neuron). NaN where the chosen words are constant."""
    sent = torch.as_tensor(codes(sentences))
    n_sent = int(sent.max()) + 1 if len(sent) else 0
    n_top = min(n_top, n_sent)
    order = np.random.default_rng(seed).permutation(n_sent)  # sentences drawn in this order
    priority = torch.from_numpy(np.argsort(order)).double()  # each sentence's place in it
    out = np.full(x.shape[1], np.nan)
    for start in range(0, x.shape[1], chunk):
        cols = slice(start, start + chunk)
        xt = torch.from_numpy(np.ascontiguousarray(x[:, cols])).double()
        pt = torch.from_numpy(np.ascontiguousarray(pred[:, cols])).double()
        idx = sent[:, None].expand(-1, xt.shape[1])
        peak = torch.full((n_sent, xt.shape[1]), -torch.inf, dtype=torch.float64).scatter_reduce(0, idx, xt, "amax")
        top = torch.zeros(n_sent, xt.shape[1], dtype=torch.bool)
        top.scatter_(0, peak.topk(n_top, dim=0).indices, True)
        rest = torch.where(top, torch.inf, priority[:, None].expand_as(peak))
        rand = torch.zeros_like(top)
        k = min(n_random, n_sent - n_top)
        if k > 0:
            rand.scatter_(0, rest.topk(k, dim=0, largest=False).indices, True)
        chosen = (top | rand)[sent].numpy()  # [words, neurons]: the chosen sentences' words
        # the arithmetic in NumPy, whose sums down axis 0 add the rows in order for every column: the result
        # does not depend on how the neurons are chunked or shared between ranks (bit for bit)
        xn, pn, w = xt.numpy(), pt.numpy(), chosen.astype(np.float64)
        n = np.maximum(w.sum(0), 1)
        dx, dp = (xn - (w * xn).sum(0) / n) * w, (pn - (w * pn).sum(0) / n) * w
        den = np.sqrt((dx * dx).sum(0) * (dp * dp).sum(0))
        # constant on the chosen words: decided exactly (max == min), not by a rounded variance
        varies = [np.where(chosen, v, -np.inf).max(0) > np.where(chosen, v, np.inf).min(0) for v in (xn, pn)]
        ok = varies[0] & varies[1] & (den > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[cols] = np.where(ok, (dx * dp).sum(0) / np.where(ok, den, 1.0), np.nan)
    return out


def score_masks(method: str, neurons: Sequence[str], desc_fit: np.ndarray, desc_test: np.ndarray,
                x_fit: np.ndarray, x_test: np.ndarray, thresholds: np.ndarray, groups: Sequence[np.ndarray],
                pred_test: np.ndarray | None = None, sentences: np.ndarray | None = None,
                length: np.ndarray | None = None, seed: int = 0) -> pd.DataFrame:
    """One row per neuron: the held-out scores of one method's description masks (with ``sentences``, the
    held-out words' sentence ids, also :func:`top_and_random_corr` and :func:`context_scores`; ``length``: the
    description's length per neuron)."""
    fire = x_test > thresholds[None]
    sc = mask_scores(desc_test, fire)
    pred = two_level_prediction(desc_fit, x_fit, desc_test) if pred_test is None else pred_test
    extra = {}
    if sentences is not None:
        extra = dict(simulation_top_random=top_and_random_corr(pred, x_test, sentences, seed=seed),
                     **context_scores(desc_test, fire, x_test, sentences, seed))
    return pd.DataFrame({"neuron": list(neurons), "method": method, **sc,
                         "simulation_corr": pearson(pred, x_test),
                         "detection_bacc": hard_negative_accuracy(desc_test, fire, groups), **extra,
                         "length": np.nan if length is None else np.asarray(length, dtype=np.float64),
                         "n_fire_test": fire.sum(0)})


def _form_sums(forms: np.ndarray, fit: np.ndarray, x_fit: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Per word form (integer codes) the sum of each neuron's fit activations ``[n_forms, n_neurons]`` and the
    form's count on the fit words (float64), for the lookup baselines."""
    n_forms = int(forms.max()) + 1
    f_fit = torch.from_numpy(forms[fit])
    x = torch.from_numpy(x_fit).double()
    sums = torch.zeros(n_forms, x_fit.shape[1], dtype=torch.float64).index_add_(0, f_fit, x)
    return sums, torch.bincount(f_fit, minlength=n_forms).double()


def lookup_top_forms(forms: np.ndarray, fit: np.ndarray, test: np.ndarray, x_fit: np.ndarray, m: np.ndarray,
                     min_count: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """The length-matched lookup baseline: per neuron the ``m[j]`` word forms with the highest mean activation
    on the fit words (forms seen at least ``min_count`` times there), as description masks on fit and test words.
    A description of length m is compared with a lookup table of m entries."""
    sums, counts = _form_sums(forms, fit, x_fit)
    n_forms = len(counts)
    means = torch.where(counts[:, None] >= min_count, sums / counts.clamp(min=1)[:, None], -torch.inf)
    m = np.maximum(np.asarray(m, dtype=np.int64), 1)
    order = torch.argsort(means, dim=0, descending=True, stable=True)[: int(m.max())]  # [max m, neurons]
    keep = torch.arange(order.shape[0])[:, None] < torch.from_numpy(m)[None]
    chosen = torch.zeros(n_forms, x_fit.shape[1], dtype=torch.bool)
    chosen.scatter_(0, order, keep)
    chosen &= torch.isfinite(means)
    chosen = chosen.numpy()
    return chosen[forms[fit]], chosen[forms[test]]


def token_lookup(forms: np.ndarray, fit: np.ndarray, test: np.ndarray, x_fit: np.ndarray,
                 thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The token identity baseline: per word form, its mean activation on the fit words.

    Returns the description masks (forms whose mean exceeds the threshold) on fit and test words, the
    predicted test activations (unseen forms get the overall fit mean) and per neuron the number of fit forms
    in its table (the lookup's length).
    """
    sums, counts = _form_sums(forms, fit, x_fit)
    means = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None],
                        torch.from_numpy(x_fit.mean(0)).double()[None]).numpy()
    fires = means > thresholds[None]
    entries = (fires & (counts.numpy()[:, None] > 0)).sum(0)
    return fires[forms[fit]], fires[forms[test]], means[forms[test]], entries


# --------------------------------------------------------------------------------------------- P@k, R@k
def precision_recall_at_k(ranked: Mapping[Hashable, Sequence], gold: Mapping[Hashable, set], ks: Sequence[int] = (1, 2, 5),
                          n_bootstrap: int = 1000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """P@k = |top-k in gold| / k and R@k = |top-k in gold| / |gold|, averaged over items, with bootstrap intervals.

    ``ranked[item]``: the item's ranked list (descriptors of a neuron, or neurons of a descriptor); ``gold[item]``
    its gold set. Items without a gold set, or with an empty one, are skipped. Intervals: percentile bootstrap
    over items.
    """
    items = [i for i in ranked if gold.get(i)]
    if not items:
        raise ValueError("no item has both a ranking and a non-empty gold set")
    rng = np.random.default_rng(seed)
    boot = rng.integers(0, len(items), size=(n_bootstrap, len(items)))
    lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
    rows = []
    for k in ks:
        hits = np.array([len(set(list(ranked[i])[:k]) & set(gold[i])) for i in items], dtype=np.float64)
        p = hits / k
        r = hits / np.array([len(gold[i]) for i in items], dtype=np.float64)
        pb, rb = p[boot].mean(1), r[boot].mean(1)
        rows.append(dict(k=k, p_at_k=p.mean(), p_lo=np.quantile(pb, lo_q), p_hi=np.quantile(pb, hi_q),
                         r_at_k=r.mean(), r_lo=np.quantile(rb, lo_q), r_hi=np.quantile(rb, hi_q), n_items=len(items)))
    return pd.DataFrame(rows)
