"""Compositional descriptions (Mu & Andreas 2020): beam search over AND / OR / AND NOT formulas of concepts.

A formula is left-deep, a tuple of ``(op, concept)`` terms with ``op`` None for the first: ``((None, "upos=ADJ"),
("AND", "prev.upos=DET"))``. The search is batched across neurons: for each beam member of each neuron of a
batch, one sparse product ``C^T [F, F & fire]`` gives ``|F & c|`` and ``|F & c & fire|`` for every concept at
once, from which the IoU of ``F AND c``, ``F OR c`` and ``F AND NOT c`` with the neuron's firing mask follow.
Not for single-concept statistics (see :mod:`._associate`).
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from scipy.stats import binom

from ._associate import sparse_t

OPS = ("AND", "OR", "AND NOT")
Formula = tuple  # tuple[tuple[str | None, str], ...]


# ---------------------------------------------------------------------------------------- formulas
def formula_text(terms: Formula) -> str:
    """``upos=ADJ AND prev.upos=DET``; parentheses where a left part mixes operators."""
    text = terms[0][1]
    for i, (op, name) in enumerate(terms[1:], 1):
        if i > 1 and terms[i - 1][0] != op:
            text = f"({text})"
        text = f"{text} {op} {name}"
    return text


def parse_formula(text: str) -> Formula:
    """Inverse of :func:`formula_text` for left-deep formulas, also when concept names hold parentheses
    (``word=(``, ``lemma=)``): the grouping parentheses are exactly where :func:`formula_text` puts them (one
    opening at the start per change of operator, its closing at the end of the term before the new operator),
    so only those are removed."""
    pieces = re.split(r" (AND NOT|AND|OR) ", text)
    names, ops = pieces[0::2], [None] + pieces[1::2]
    changes = [i for i in range(2, len(ops)) if ops[i] != ops[i - 1]]
    opening = "(" * len(changes)
    if not names[0].startswith(opening):
        raise ValueError(f"not a formula written by formula_text: {text!r}")
    names[0] = names[0][len(opening):]
    for i in changes:
        if not names[i - 1].endswith(")"):
            raise ValueError(f"not a formula written by formula_text: {text!r}")
        names[i - 1] = names[i - 1][:-1]
    return tuple(zip(ops, names))


def evaluate(terms: Formula, concepts) -> np.ndarray:
    """Boolean mask over the words of ``concepts`` (a :class:`Concepts`) for one formula."""
    out = concepts.mask(terms[0][1])
    for op, name in terms[1:]:
        m = concepts.mask(name)
        out = out & m if op == "AND" else out | m if op == "OR" else out & ~m
    return out


def render(terms: Formula, labels: Mapping[str, str], keys: Mapping[str, str] | None = None) -> str:
    """English: ``(('upos=NOUN'), ('AND', 'Number=Plur'), ('AND NOT', 'prev.upos=DET'))`` ->
    ``'plural NOUN, not after DET'``."""
    keys = keys or {}
    text = labels.get(terms[0][1], terms[0][1])
    first_key = keys.get(terms[0][1], "")
    for i, (op, name) in enumerate(terms[1:], 1):
        lab = labels.get(name, name)
        if i > 1 and terms[i - 1][0] != op:
            text = f"({text})"
        if op == "AND" and i == 1 and first_key in ("upos", "xpos") and _is_feature(keys.get(name, "")):
            text = f"{lab} {text}"
        elif op == "AND":
            text = f"{text}, {lab}"
        elif op == "AND NOT":
            text = f"{text}, not {lab}"
        else:
            text = f"{text} or {lab}"
    return text


def _is_feature(key: str) -> bool:
    known = ("upos", "xpos", "lemma", "deprel", "word", "shape", "position", "user", "discovered", "head.upos", "head_upos")
    return bool(key) and key not in known and not key.startswith(("prefix", "suffix", "prev.", "next.", "ngram"))


def _canonical(terms: tuple[tuple[str | None, int], ...]):
    ops = {op for op, _ in terms[1:]}
    if ops in ({"AND"}, {"OR"}):
        return (ops.pop(), frozenset(c for _, c in terms))
    return terms


# ------------------------------------------------------------------------------------------- search
def _candidate_iou(Y: torch.Tensor, F: torch.Tensor, FM: torch.Tensor, c: torch.Tensor, cM: torch.Tensor,
                   M: torch.Tensor) -> torch.Tensor:
    """IoU of ``F op c`` with the firing mask, ``[n, B, 3, K]``, from the product ``Y = [|F&c|, |F&c&M|]``."""
    FC, FCM = Y[..., 0], Y[..., 1]  # [n, B, K]
    F_, FM_, M_ = F[..., None], FM[..., None], M[:, None, None]
    cM_, c_ = cM[:, None, :], c[None, None, :]
    inter = torch.stack([FCM, FM_ + cM_ - FCM, FM_ - FCM], dim=2)
    size = torch.stack([FC, F_ + c_ - FC, F_ - FC], dim=2)
    union = size + M_[..., None] - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(inter))


def beam_search(C: sp.csc_matrix, fire: torch.Tensor, inter1: np.ndarray, beam: int = 5, max_length: int = 3,
                min_gain: float = 0.02, ops: Sequence[str] = OPS, batch: int = 128, term_alpha: float = 0.01,
                CT: torch.Tensor | None = None, dense: torch.Tensor | None = None) -> tuple[list, np.ndarray]:
    """Best formula per neuron (columns of ``fire`` [n_words, n_neurons]) and its IoU on these words.

    ``inter1[n, c]`` is ``|fire_n & c|``. A longer formula replaces a shorter one only if its IoU is higher by at
    least ``min_gain`` and its new term is justified: the words it adds (OR) fire more, or the words it removes
    (AND, AND NOT) fire less, than the rest (one-sided binomial test at ``term_alpha`` / (3 x concepts)). Returns formulas as tuples of ``(op, concept index)``.
    """
    bad = set(ops) - set(OPS)
    if bad:
        raise ValueError(f"unknown operators {sorted(bad)}; use {OPS}")
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1, got {max_length}")
    CT = sparse_t(C) if CT is None else CT
    dense = torch.from_numpy(C.toarray()) if dense is None else dense
    c = torch.from_numpy(np.asarray(C.sum(0)).ravel().astype(np.float32))
    op_ok = torch.tensor([op in ops for op in OPS])
    formulas: list = []
    ious: list[np.ndarray] = []
    for s in range(0, fire.shape[1], batch):
        f, i = _search_batch(CT, dense, c, fire[:, s:s + batch], torch.from_numpy(inter1[s:s + batch]),
                             beam, max_length, min_gain, op_ok, term_alpha)
        formulas += f
        ious.append(i)
    return formulas, np.concatenate(ious) if ious else np.zeros(0, np.float32)


def _search_batch(CT, dense, c, fire, cM, beam, max_length, min_gain, op_ok, term_alpha):
    n = fire.shape[1]
    K = dense.shape[1]
    M = fire.sum(0).float()
    iou1 = torch.where(M[:, None] + c - cM > 0, cM / (M[:, None] + c - cM).clamp(min=1), torch.zeros_like(cM))
    b = min(beam, K)
    top_iou, top = iou1.topk(b, dim=1)
    beams = [[((None, int(x)),) for x in row] for row in top.tolist()]
    masks = dense[:, top]  # [N, n, B]
    best = [bm[0] for bm in beams]
    best_iou = top_iou[:, 0].clone()
    for length in range(1, max_length):
        fm = masks & fire[:, :, None]
        q = torch.stack([masks, fm], dim=-1).float().reshape(masks.shape[0], -1)
        Y = torch.sparse.mm(CT, q).T.reshape(n, masks.shape[2], 2, K).permute(0, 1, 3, 2)
        cand = _candidate_iou(Y, masks.sum(0).float(), fm.sum(0).float(), c, cM, M)  # [n, B, 3, K]
        cand = torch.where(op_ok[None, None, :, None], cand, torch.full_like(cand, -1.0))
        used = torch.tensor([[[t for _, t in terms] + [terms[0][1]] * (length - len(terms)) for terms in row]
                             for row in beams])  # [n, B, length]: a concept already in the formula is not added
        cand.scatter_(3, used[:, :, None, :].expand(-1, -1, 3, -1), -1.0)
        vals, flat = cand.reshape(n, -1).topk(min(cand[0].numel(), 3 * b), dim=1)
        beams, new_cols = _next_beams(beams, vals.tolist(), flat.tolist(), K, b)
        p = _term_pvalues(new_cols, Y, masks.sum(0).float(), fm.sum(0).float(), c, cM, M, fire.shape[0])
        for i, cols in enumerate(new_cols):  # the best new formula that gains enough, with a justified new term
            for slot, (_, o, _, v) in enumerate(cols):
                if o >= 0 and v >= float(best_iou[i]) + min_gain and p[i, slot] <= term_alpha / (3 * K):
                    best[i], best_iou[i] = beams[i][slot], v
                    break
        masks = _extend_masks(masks, dense, new_cols, b)
    return best, best_iou.numpy().astype(np.float32)


def _next_beams(beams, vals, flat, K, b):
    """Per neuron, the ``b`` best distinct extensions ``(beam slot, op, concept, IoU)``; the old beam if none."""
    new_beams, new_cols = [], []
    for i in range(len(beams)):
        seen, row, cols = set(), [], []
        for v, f in zip(vals[i], flat[i]):
            j, rest = divmod(f, 3 * K)
            o, k = divmod(rest, K)
            terms = beams[i][j] + ((OPS[o], k),)
            key = _canonical(terms)
            if v < 0 or key in seen:
                continue
            seen.add(key)
            row.append(terms)
            cols.append((j, o, k, v))
            if len(row) == b:
                break
        if not row:
            row, cols = beams[i], [(j, -1, -1, -1.0) for j in range(len(beams[i]))]
        new_beams.append(row)
        new_cols.append(cols)
    return new_beams, new_cols


def _term_pvalues(cols, Y, F, FM, c, cM, M, N) -> np.ndarray:
    """One-sided binomial p-value that the words a new term adds or removes fire as the rest would.

    AND c / AND NOT c remove words from F: they must fire less than the kept ones. OR c adds words: they must
    fire more than the words outside both.
    """
    n, b = len(cols), max(len(r) for r in cols)
    idx = np.zeros((n, b, 3), np.int64)
    for i, row in enumerate(cols):
        for slot, (j, o, k, _) in enumerate(row):
            idx[i, slot] = (j, max(o, 0), max(k, 0))
    ii = np.arange(n)[:, None]
    j, o, k = idx[..., 0], idx[..., 1], idx[..., 2]
    FC, FCM = Y[ii, j, k, 0].numpy(), Y[ii, j, k, 1].numpy()
    F_, FM_ = F.numpy()[ii, j], FM.numpy()[ii, j]
    c_, cM_, M_ = c.numpy()[k], cM.numpy()[ii, k], M.numpy()[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        # AND: removed F & ~c, kept F & c; AND NOT: removed F & c, kept F & ~c; OR: added c & ~F vs outside both
        rem_n = np.where(o == 0, F_ - FC, FC)
        rem_k = np.where(o == 0, FM_ - FCM, FCM)
        keep_rate = np.where(o == 0, FCM / FC, (FM_ - FCM) / (F_ - FC))
        add_n, add_k = c_ - FC, cM_ - FCM
        out_rate = (M_ - FM_ - cM_ + FCM) / (N - F_ - c_ + FC)
        p_rem = binom.cdf(rem_k, rem_n, np.clip(np.nan_to_num(keep_rate), 0, 1))
        p_add = binom.sf(add_k - 1, add_n, np.clip(np.nan_to_num(out_rate), 0, 1))
    return np.nan_to_num(np.where(o == 1, p_add, p_rem), nan=1.0)


def _extend_masks(masks, dense, cols, b):
    """Masks of the new beams: old beam mask ``op`` concept column, all neurons and slots at once."""
    n = masks.shape[1]
    slot = np.zeros((n, b), np.int64)
    op = np.full((n, b), -1, np.int64)
    con = np.zeros((n, b), np.int64)
    for i, row in enumerate(cols):
        for s, (j, o, k, _) in enumerate(row):
            slot[i, s], op[i, s], con[i, s] = j, o, max(k, 0)
    old = masks[:, torch.arange(n)[:, None], torch.from_numpy(slot)]  # [N, n, b]
    col = dense[:, torch.from_numpy(con)]
    o = torch.from_numpy(op)[None]
    return torch.where(o == 0, old & col, torch.where(o == 1, old | col, torch.where(o == 2, old & ~col, old)))
