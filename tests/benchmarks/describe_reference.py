"""The naive per-neuron loop the description benchmarks compare against, and their synthetic data.

One neuron at a time (each vectorized over concepts with scipy): ranks, concept sums, rank sums, top-quantile
overlaps and the within-sentence null moments, giving the same AUROC, IoU and z as the chunked association.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.stats import rankdata

import tl_neuronprobe as tnp
from tl_neuronprobe.descriptions import build_concepts


def naive_association(X: np.ndarray, C: sp.csc_matrix, sentence_ids: np.ndarray, quantile: float = 0.05):
    """AUROC, IoU and z per (neuron, concept), one neuron per iteration."""
    n, d = X.shape
    Ct = sp.csr_matrix(C.T, dtype=np.float64)
    c = np.asarray(C.sum(0)).ravel().astype(np.float64)
    _, sid = np.unique(sentence_ids, return_inverse=True)
    n_s = np.bincount(sid).astype(np.float64)
    P = sp.csr_matrix((np.ones(n), (sid, np.arange(n))), shape=(len(n_s), n))
    M = sp.csr_matrix(P @ sp.csr_matrix(C, dtype=np.float64))
    G = M.copy()
    rows = np.repeat(np.arange(M.shape[0]), np.diff(M.indptr))
    G.data = np.where(n_s[rows] > 1, M.data * (n_s[rows] - M.data) / np.maximum(n_s[rows] - 1, 1), 0)
    k_top = max(1, int(np.ceil(quantile * n)))
    auroc, iou, z = (np.empty((d, C.shape[1])) for _ in range(3))
    for j in range(d):
        x = X[:, j].astype(np.float64)
        r = rankdata(x)
        top = (x >= np.sort(x)[n - k_top]).astype(np.float64)
        rs, inter = Ct @ r, Ct @ top
        auroc[j] = (rs - c * (c + 1) / 2) / np.maximum(c * (n - c), 1)
        iou[j] = inter / (top.sum() + c - inter)
        mu = np.bincount(sid, r) / n_s
        var = np.maximum(np.bincount(sid, r * r) / n_s - mu ** 2, 0)
        sd = np.sqrt(G.T @ var)
        z[j] = np.where(sd > 1e-9, (rs - M.T @ mu) / np.where(sd > 1e-9, sd, 1), 0)
    return auroc, iou, z


def treebank_concepts(n_words: int, max_concepts: int, path: str = "ud-english"):
    """Concepts of the first sentences of a treebank (default: the shipped EWT slice, 55,639 words) holding
    ``n_words`` words."""
    corpus = tnp.Corpus.load(path)
    if corpus.n_words < n_words:
        raise ValueError(f"{path} has {corpus.n_words} words, fewer than the {n_words} asked for")
    lengths = np.cumsum([len(s) for s in corpus.sentences])
    corpus = corpus[: int(np.searchsorted(lengths, n_words)) + 1]
    sid = corpus.sentence_ids[:n_words]
    attrs = {k: v[:n_words] for k, v in corpus.attributes().items()}
    return build_concepts(corpus.words[:n_words], sid, attrs, max_concepts=max_concepts), sid


def planted_activations(C: sp.csc_matrix, n_neurons: int, seed: int = 0) -> np.ndarray:
    """Noise, plus every third neuron firing on one concept."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((C.shape[0], n_neurons), dtype=np.float32) * 0.3
    for j in range(0, n_neurons, 3):
        X[:, j] += C[:, rng.integers(C.shape[1])].toarray().ravel()
    return X
