"""Association of every neuron with every concept, in chunks of neurons, as sparse-times-dense products.

For a chunk of neurons one product ``C^T [X, ranks, top-mask]`` gives, for all concepts at once, the sum of
activation over the concept's words (mean difference), the rank sum (AUROC) and the overlap with the
top-quantile mask (IoU, precision, recall); the ranks, the mask and each neuron's moments come from one sort of
packed integer keys per neuron on a thread per core (:mod:`._ranks`), written into a buffer reused across
chunks. Significance: the rank sum against a null that permutes each
sentence's activations among its words; that null's mean and variance are exact (sampling without replacement
within each sentence), so no Monte Carlo is needed, and the z-scores get Benjamini-Hochberg control across
concepts. A short list of candidates per neuron then gets exact average precision and the IoU at its best
threshold. Not for choosing formulas (see :mod:`._compose`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from scipy.special import ndtr
from tqdm.auto import tqdm

from ._ranks import rank_columns, rank_columns_torch, rank_rows


def sparse_t(m: sp.spmatrix) -> torch.Tensor:
    """``m^T`` as a torch CSR float32 tensor (the left factor of the chunked products)."""
    t = sp.csr_matrix(m.T, dtype=np.float32)
    with warnings.catch_warnings():  # "CSR support is in beta": the product below is all we use
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(torch.from_numpy(t.indptr.astype(np.int64)),
                                       torch.from_numpy(t.indices.astype(np.int64)),
                                       torch.from_numpy(t.data), size=t.shape)


def average_ranks(X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per column: average ranks (1..N, ties share their mean rank), sorted values and sort order (ascending).

    Sorting runs along contiguous rows of ``X^T`` (see :func:`._ranks.rank_rows`: numpy's quicksort on a thread
    per core; ties need no stable order since they share one rank).
    """
    ranks, vals, order = rank_rows(X.T.contiguous())
    return ranks.T.contiguous(), vals.T, order.T


@dataclass
class SentenceDesign:
    """What the within-sentence null needs: word -> sentence sums, per-concept counts and variance weights."""

    P: torch.Tensor      # CSR [n_sent, n_words], ones
    n_s: torch.Tensor    # [n_sent] words per sentence
    M_t: torch.Tensor    # CSR [n_concepts, n_sent] concept words per sentence
    G_t: torch.Tensor    # CSR [n_concepts, n_sent] m (n - m) / (n - 1)


def sentence_design(C: sp.csc_matrix, sentence_ids: np.ndarray) -> SentenceDesign:
    _, sid = np.unique(np.asarray(sentence_ids), return_inverse=True)
    n_words, n_sent = len(sid), int(sid.max()) + 1
    P = sp.csr_matrix((np.ones(n_words, np.float32), (sid, np.arange(n_words))), shape=(n_sent, n_words))
    n_s = np.bincount(sid, minlength=n_sent).astype(np.float64)
    M = sp.csr_matrix(P @ sp.csr_matrix(C, dtype=np.float32))  # [n_sent, n_concepts]
    G = M.copy()
    rows = np.repeat(np.arange(n_sent), np.diff(M.indptr))
    n_row = n_s[rows]
    G.data = np.where(n_row > 1, M.data * (n_row - M.data) / np.maximum(n_row - 1, 1), 0.0).astype(np.float32)
    return SentenceDesign(sparse_t(P.T), torch.from_numpy(n_s.astype(np.float32)), sparse_t(M), sparse_t(G))


def _null_moments(design: SentenceDesign, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of ``sum over concept words of values`` when values are permuted within sentences."""
    sums = torch.sparse.mm(design.P, values)
    sq = torch.sparse.mm(design.P, values.square())
    mu = sums / design.n_s[:, None]
    var = (sq / design.n_s[:, None] - mu.square()).clamp(min=0)
    return torch.sparse.mm(design.M_t, mu), torch.sparse.mm(design.G_t, var)


@dataclass
class Association:
    """Statistics of every (neuron, concept) pair, arrays ``[n_neurons, n_concepts]`` (float32)."""

    iou: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    auroc: np.ndarray
    mean_diff: np.ndarray
    z: np.ndarray
    p: np.ndarray
    q: np.ndarray
    quantile_threshold: np.ndarray  # [n_neurons] activation cut of the top-quantile mask
    n_fire: np.ndarray              # [n_neurons]


def associate(X: torch.Tensor, C: sp.csc_matrix, sentence_ids: np.ndarray, quantile: float = 0.05,
              chunk_neurons: int = 512, end: str = "top", progress: bool = False,
              device: "str | torch.device | None" = None) -> Association:
    """All neurons (columns of ``X`` [n_words, n_neurons]) against all concepts (columns of ``C``), in chunks of
    ``chunk_neurons`` neurons (memory about ``3 * n_words * chunk_neurons`` floats; the result does not depend on it).

    ``device`` None (default) runs on the CPU (numpy sorts on a thread per core); a torch device (``"cuda"``)
    runs every chunk's sort, ranks, mask and sparse products there (:func:`._ranks.rank_columns_torch`), with
    one transfer of the chunk's ``[w, n_concepts]`` results back per chunk. ``device="cpu"`` forces that torch
    route on the CPU (how the tests check it equals the default)."""
    if device is not None:
        return _associate_torch(X, C, sentence_ids, quantile, chunk_neurons, end, progress, torch.device(device))
    sign = _checked(X, C, quantile, end)
    n, d = X.shape
    CT = sparse_t(C)
    design = sentence_design(C, sentence_ids)
    c = np.asarray(C.sum(0)).ravel().astype(np.float64)
    k_top = max(1, int(np.ceil(quantile * n)))
    K = C.shape[1]
    f32 = np.float32
    res = {k: np.empty((d, K), f32) for k in ("iou", "precision", "recall", "auroc", "mean_diff", "z", "q")}
    res["p"] = np.empty((d, K), np.float64)
    thr, n_fire = np.empty(d, f32), np.empty(d, np.int64)
    chunk = chunk_neurons
    width = min(chunk, d)
    buf = torch.empty(n * 3 * width)  # [activation, rank, top mask] per word, reused: one sparse product per chunk
    for s in tqdm(range(0, d, chunk), disable=not progress, desc="associate", unit="chunk"):
        w = min(chunk, d - s)
        B = buf[:n * 3 * w].view(n, 3 * w)
        xc, rk, mk = B[:, :w], B[:, w:2 * w], B[:, 2 * w:]
        xc.copy_(X[:, s:s + w])
        if sign < 0:
            xc.neg_()
        col = rank_columns(xc.numpy(), rk.numpy(), mk.numpy(), at=n - k_top)
        prod = torch.sparse.mm(CT, B)
        e, v = _null_moments(design, rk)
        part = {"sum": prod[:, :w], "ranksum": prod[:, w:2 * w], "inter": prod[:, 2 * w:], "mean": e, "var": v}
        stats = _statistics({k: val.T.numpy() for k, val in part.items()}, c, n, col.threshold,
                            col.n_fire.astype(np.float64), col.std, col.total)
        for key in res:
            res[key][s:s + w] = getattr(stats, key)
        thr[s:s + w], n_fire[s:s + w] = stats.quantile_threshold, stats.n_fire
    return Association(res["iou"], res["precision"], res["recall"], res["auroc"], res["mean_diff"], res["z"],
                       res["p"], res["q"], thr, n_fire)


def _checked(X: torch.Tensor, C: sp.csc_matrix, quantile: float, end: str) -> float:
    if C.shape[0] != X.shape[0]:
        raise ValueError(f"activations have {X.shape[0]} words but the concept matrix has {C.shape[0]} rows")
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    sign = {"top": 1.0, "bottom": -1.0}.get(end)
    if sign is None:
        raise ValueError(f"end must be 'top' or 'bottom', got {end!r}")
    return sign


def _associate_torch(X: torch.Tensor, C: sp.csc_matrix, sentence_ids: np.ndarray, quantile: float, chunk: int,
                     end: str, progress: bool, device: torch.device) -> Association:
    """:func:`associate` with every chunk's work on ``device`` (the same statistics, float32 ranks)."""
    sign = _checked(X, C, quantile, end)
    n, d = X.shape
    CT = sparse_t(C).to(device)
    design = sentence_design(C, sentence_ids)
    design = SentenceDesign(design.P.to(device), design.n_s.to(device), design.M_t.to(device), design.G_t.to(device))
    c = np.asarray(C.sum(0)).ravel().astype(np.float64)
    k_top = max(1, int(np.ceil(quantile * n)))
    parts = []
    for s in tqdm(range(0, d, chunk), disable=not progress, desc="associate", unit="chunk"):
        xc = X[:, s:s + chunk].to(device, torch.float32) * sign
        rk, mk, col = rank_columns_torch(xc, at=n - k_top)
        w = xc.shape[1]
        prod = torch.sparse.mm(CT, torch.cat([xc, rk, mk], 1))
        e, v = _null_moments(design, rk)
        part = {"sum": prod[:, :w], "ranksum": prod[:, w:2 * w], "inter": prod[:, 2 * w:], "mean": e, "var": v}
        parts.append(_statistics({k: val.T.cpu().numpy() for k, val in part.items()}, c, n, col.threshold,
                                 col.n_fire.astype(np.float64), col.std, col.total))
    return Association(*[np.concatenate([getattr(p, f) for p in parts]) for f in Association.__dataclass_fields__])


def _statistics(out: dict, c: np.ndarray, n: int, thr, n_fire, std, total) -> Association:
    with np.errstate(divide="ignore", invalid="ignore"):
        inter = out["inter"].astype(np.float64)
        union = n_fire[:, None] + c[None] - inter
        iou = np.where(union > 0, inter / union, 0.0)
        precision = inter / np.maximum(n_fire[:, None], 1)
        recall = inter / np.maximum(c[None], 1)
        ranksum = out["ranksum"].astype(np.float64)
        auroc = (ranksum - c * (c + 1) / 2) / np.maximum(c * (n - c), 1)
        s = out["sum"].astype(np.float64)
        mean_diff = (s / c - (total[:, None] - s) / np.maximum(n - c, 1)) / np.where(std > 0, std, 1.0)[:, None]
        sd = np.sqrt(out["var"].astype(np.float64))
        z = np.where(sd > 1e-9, (ranksum - out["mean"]) / np.where(sd > 1e-9, sd, 1.0), 0.0)
    p = ndtr(-z)
    f32 = np.float32
    return Association(iou.astype(f32), precision.astype(f32), recall.astype(f32), auroc.astype(f32),
                       mean_diff.astype(f32), z.astype(f32), p, benjamini_hochberg(p).astype(f32),
                       np.asarray(thr, f32), np.asarray(n_fire).astype(np.int64))


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """BH-adjusted p-values (q-values) along the last axis (across concepts, per neuron)."""
    p = np.asarray(p, dtype=np.float64)
    m = p.shape[-1]
    order = np.argsort(p, axis=-1, kind="stable")
    ranked = np.take_along_axis(p, order, -1) * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[..., ::-1], axis=-1)[..., ::-1].clip(max=1.0)
    q = np.empty_like(ranked)
    np.put_along_axis(q, order, ranked, -1)
    return q


def within_sentence_shuffle(x: np.ndarray, sentence_ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``x`` with its rows permuted at random within each sentence (Monte Carlo version of the null)."""
    sid = np.asarray(sentence_ids)
    order = np.lexsort((rng.random(len(sid)), sid))
    base = np.argsort(sid, kind="stable")
    out = np.empty_like(x)
    out[base] = x[order]
    return out


@dataclass
class Refined:
    """Per (neuron, candidate): exact average precision, best-threshold IoU and that threshold."""

    candidates: np.ndarray  # [n_neurons, k] concept indices
    ap: np.ndarray          # [n_neurons, k]
    best_iou: np.ndarray    # [n_neurons, k]
    threshold: np.ndarray   # [n_neurons, k] fire when activation > threshold


def refine(X: torch.Tensor, C: sp.csc_matrix, candidates: np.ndarray, min_fraction: float = 0.002,
           max_fraction: float = 0.5, chunk: int = 256, end: str = "top") -> Refined:
    """Exact AP and the IoU at the best activation threshold, for each neuron's candidate concepts."""
    n, d = X.shape
    k = candidates.shape[1]
    sign = 1.0 if end == "top" else -1.0
    ap, best, thr = (np.zeros((d, k), np.float32) for _ in range(3))
    c = np.asarray(C.sum(0)).ravel().astype(np.float32)
    lo, hi = max(1, int(min_fraction * n)), max(1, int(max_fraction * n))
    cut = torch.arange(1, n + 1, dtype=torch.float32)[:, None]
    allowed = (cut >= lo) & (cut <= hi)
    for s in range(0, d, chunk):
        xc = sign * X[:, s:s + chunk].float()
        neg = -xc.T.contiguous()
        order = torch.from_numpy(np.argsort(neg.numpy(), axis=1))  # descending; tie order is irrelevant
        vals, order = (-neg.gather(1, order)).T, order.T
        valid = torch.cat([vals[1:] != vals[:-1], torch.ones(1, xc.shape[1], dtype=torch.bool)])
        cand = candidates[s:s + xc.shape[1]]
        union_cols = np.unique(cand)
        dense = torch.from_numpy(C[:, union_cols].toarray())
        where = np.searchsorted(union_cols, cand)
        for j in range(k):
            hits = dense[order, torch.from_numpy(where[:, j])[None, :]].float()
            tp = hits.cumsum(0)
            cj = torch.from_numpy(c[cand[:, j]])[None, :]
            prev = torch.where(valid, tp, torch.zeros_like(tp)).cummax(0).values
            prev = torch.cat([torch.zeros(1, tp.shape[1]), prev[:-1]])
            ap[s:s + xc.shape[1], j] = (torch.where(valid, (tp - prev) * tp / cut, 0).sum(0) / cj).numpy()
            iou = torch.where(valid & allowed, tp / (cut + cj - tp), torch.full_like(tp, -1.0))
            b, arg = iou.max(0)
            nxt = vals.gather(0, (arg + 1).clamp(max=n - 1)[None]).squeeze(0)
            here = vals.gather(0, arg[None]).squeeze(0)
            nxt = torch.where(arg == n - 1, here - 1.0, nxt)  # every word fires: cut below the smallest
            best[s:s + xc.shape[1], j] = b.clamp(min=0).numpy()
            thr[s:s + xc.shape[1], j] = (sign * (here + nxt) / 2).numpy()
    return Refined(candidates, ap, best, thr)


def shortlist(assoc: Association, k: int = 5) -> np.ndarray:
    """Per neuron, ``k`` candidate concepts: the best by IoU at the quantile mask, then by z, no repeats."""
    by_iou = np.argsort(-assoc.iou, axis=1, kind="stable")[:, : 2 * k]
    by_z = np.argsort(-assoc.z, axis=1, kind="stable")[:, : 2 * k]
    out = np.empty((assoc.iou.shape[0], k), dtype=np.int64)
    for i in range(out.shape[0]):
        seen = list(dict.fromkeys(np.ravel(np.column_stack([by_iou[i], by_z[i]]))))
        out[i] = seen[:k]
    return out


def intersections_at(X: torch.Tensor, C: sp.csc_matrix, thresholds: np.ndarray, chunk: int = 1024,
                     end: str = "top") -> tuple[np.ndarray, np.ndarray]:
    """``|fire_n & c|`` for all neurons x concepts with ``fire_n = X[:, n] > thresholds[n]``, and ``|fire_n|``."""
    CT = sparse_t(C)
    d = X.shape[1]
    sign = 1.0 if end == "top" else -1.0
    inter = np.empty((d, C.shape[1]), np.float32)
    n_fire = np.empty(d, np.int64)
    for s in range(0, d, chunk):
        t = torch.from_numpy(np.asarray(thresholds[s:s + chunk], dtype=np.float32))
        m = ((sign * X[:, s:s + chunk].float()) > sign * t).float()
        inter[s:s + m.shape[1]] = torch.sparse.mm(CT, m).T.numpy()
        n_fire[s:s + m.shape[1]] = m.sum(0).numpy().astype(np.int64)
    return inter, n_fire
