"""Discovered concepts: latent clusters of the model's own word representations, or a generator's descriptors.

The built-in source clusters contextual word representations (agglomerative, Ward, as ConceptX does) and
names each cluster by the annotation or word concept it overlaps most. The pluggable source takes any
callable that proposes descriptors for the words of a sentence (for instance a local causal LM, see
:func:`causal_lm_generator`; nothing is downloaded) and merges similar descriptors into one concept. Not for
scoring (the concepts join the vocabulary of :func:`describe`).
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import torch

from ._concepts import Concepts, from_masks

if TYPE_CHECKING:
    from ..data.corpus import Corpus

Generator = Callable[[Sequence[str]], Sequence[Sequence[str]]]


def latent_concepts(representations, base: Concepts | None = None, words: Sequence[str] | None = None,
                    n_clusters: int = 50, max_points: int = 4000, n_components: int = 32, min_support: int = 5,
                    seed: int = 0) -> Concepts:
    """Clusters of word representations ``[n_words, d]`` as concepts of family ``discovered``.

    Agglomerative (Ward) clustering of at most ``max_points`` sampled words after PCA; every word then joins
    its nearest cluster centre. Each cluster is named by the concept of ``base`` it overlaps most (IoU) and
    its most frequent words.
    """
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.decomposition import PCA

    R = np.asarray(representations.float() if isinstance(representations, torch.Tensor) else representations,
                   dtype=np.float32)
    if R.ndim != 2 or len(R) < n_clusters:
        raise ValueError(f"representations must be [n_words >= n_clusters={n_clusters}, d], got {R.shape}")
    R = (R - R.mean(0)) / np.where(R.std(0) > 0, R.std(0), 1)
    R = PCA(min(n_components, R.shape[1], len(R)), random_state=seed).fit_transform(R)
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(len(R), min(max_points, len(R)), replace=False))
    labels = AgglomerativeClustering(n_clusters=n_clusters, linkage="ward").fit_predict(R[sample])
    centres = np.stack([R[sample][labels == k].mean(0) for k in range(n_clusters)])
    d2 = (R * R).sum(1)[:, None] - 2 * R @ centres.T + (centres * centres).sum(1)[None]
    assign = d2.argmin(1)
    masks, names = {}, {}
    for k in range(n_clusters):
        m = assign == k
        if m.sum() < min_support:
            continue
        name = f"latent{k:03d}"
        masks[name] = m
        names[name] = _cluster_label(m, base, words)
    return from_masks(masks, "discovered", names)


def form_vectors(model, forms: Sequence[str]) -> np.ndarray:
    """Each word form's vector in ``model``'s input embedding (``W_E``): the mean of its sub-tokens' rows
    (tokenized alone, without special tokens). ``[len(forms), d_model]`` float32."""
    from ..core.adapter import ModelAdapter

    adapter = ModelAdapter.wrap(model)
    tok = adapter.tokenizer
    W = adapter.W_E.detach().float().cpu()
    out = np.zeros((len(forms), W.shape[1]), dtype=np.float32)
    for i, form in enumerate(forms):
        ids = tok(form, add_special_tokens=False)["input_ids"] or tok(" " + form, add_special_tokens=False)["input_ids"]
        if ids:
            out[i] = W[torch.as_tensor(ids)].mean(0).numpy()
    return out


def word_set_concepts(words: Sequence[str], vectors: "np.ndarray | Callable[[Sequence[str]], np.ndarray]",
                      n_sets: int = 300, min_count: int = 2, min_support: int = 5, shown: int = 6,
                      seed: int = 0) -> Concepts:
    """Lexical-semantic word sets as concepts of family ``set``: the lower-cased forms of ``words`` seen at least
    ``min_count`` times, clustered by their vectors (k-means on unit vectors, seeded), each cluster one concept
    "one of {clothes, shirt, pants, ...}" (its most frequent members first). The table's ``size`` column is the
    number of forms in the set: a description's length counts a set by its members.

    ``vectors``: ``[n_forms, d]`` for the sorted distinct forms, or a callable giving them (e.g.
    ``lambda forms: form_vectors(model, forms)``, the model's own input embedding, so the sets are the model's
    notion of similar words, found without labels).
    """
    from sklearn.cluster import KMeans

    lower = np.asarray([w.lower() for w in words], dtype=object)
    counts = Counter(lower.tolist())
    forms = sorted(f for f, c in counts.items() if c >= min_count)
    if len(forms) < 2:
        raise ValueError(f"need at least 2 word forms seen {min_count}+ times, got {len(forms)}")
    V = np.asarray(vectors(forms) if callable(vectors) else vectors, dtype=np.float32)
    if V.shape[0] != len(forms):
        raise ValueError(f"vectors has {V.shape[0]} rows for {len(forms)} forms (the sorted forms seen "
                         f"{min_count}+ times)")
    if not np.isfinite(V).all():
        raise ValueError("vectors contain NaN or inf")
    V = V / np.maximum(np.linalg.norm(V, axis=1, keepdims=True), 1e-12)
    k = min(n_sets, len(forms))
    labels = KMeans(n_clusters=k, n_init=3, random_state=seed).fit_predict(V)
    index = {f: i for i, f in enumerate(forms)}
    word_form = np.fromiter((index.get(w, -1) for w in lower), dtype=np.int64, count=len(lower))
    masks, names, sizes = {}, {}, {}
    for c in range(k):
        members = [f for f, lab in zip(forms, labels) if lab == c]
        if len(members) < 2:
            continue  # a single form is the surface concept already
        mask = np.isin(word_form, [index[f] for f in members])
        if mask.sum() < min_support:
            continue
        members.sort(key=lambda f: (-counts[f], f))
        name = f"{members[0]}+{len(members) - 1}"
        more = ", ..." if len(members) > shown else ""
        masks[name] = mask
        names[name] = "one of {" + ", ".join(members[:shown]) + more + "}"
        sizes[name] = len(members)
    if not masks:
        raise ValueError(f"no word set covers at least min_support={min_support} words")
    concepts = from_masks(masks, "set", names)
    concepts.table["size"] = [sizes[n] for n in masks]
    return concepts


def _cluster_label(mask: np.ndarray, base: Concepts | None, words: Sequence[str] | None) -> str:
    parts = []
    if base is not None and len(base):
        inter = np.asarray(base.matrix[mask].sum(0)).ravel()
        iou = inter / np.maximum(base.table["support"].to_numpy() + mask.sum() - inter, 1)
        j = int(np.argmax(iou))
        parts.append(f"~{base.table['label'].iloc[j]} (IoU {iou[j]:.2f})")
    if words is not None:
        common = Counter(w.lower() for w, m in zip(words, mask) if m).most_common(3)
        parts.append("e.g. " + ", ".join(f'"{w}"' for w, _ in common))
    return "cluster " + "; ".join(parts) if parts else "cluster"


def generated_concepts(corpus: "Corpus | Sequence[Sequence[str]]", generator: Generator, distance: float = 0.4,
                       min_support: int = 5) -> Concepts:
    """Concepts from a descriptor generator: ``generator(words)`` gives, per word, a list of descriptor strings.

    ``corpus``: a :class:`~tl_neuronprobe.Corpus` or its sentences as lists of words (in the order of the
    activations the concepts go with).

    Descriptors are merged by character n-gram similarity (average-linkage clustering at cosine distance
    ``distance``); each merged descriptor is named by its most frequent member.
    """
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.feature_extraction.text import TfidfVectorizer

    per_word: list[list[str]] = []
    sentences = [s.words for s in corpus.sentences] if hasattr(corpus, "sentences") else corpus
    for words in sentences:
        got = list(generator(list(words)))
        if len(got) != len(words):
            raise ValueError(f"the generator gave {len(got)} descriptor lists for a sentence of {len(words)} words")
        per_word += [[str(d).strip().lower() for d in g if str(d).strip()] for g in got]
    counts = Counter(d for ds in per_word for d in set(ds))
    vocab = sorted(counts)
    if not vocab:
        raise ValueError("the generator proposed no descriptor")
    if len(vocab) == 1:
        cluster = np.zeros(1, dtype=int)
    else:
        V = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4)).fit_transform(vocab).toarray()
        cluster = AgglomerativeClustering(n_clusters=None, distance_threshold=distance, metric="cosine",
                                          linkage="average").fit_predict(V)
    of = dict(zip(vocab, cluster))
    members: dict[int, list[str]] = {}
    for d in vocab:
        members.setdefault(int(of[d]), []).append(d)
    masks, labels = {}, {}
    for k, ds in members.items():
        m = np.array([any(of[d] == k for d in w) for w in per_word], dtype=bool)
        if m.sum() < min_support:
            continue
        name = max(ds, key=lambda d: (counts[d], d))
        masks[name], labels[name] = m, name if len(ds) == 1 else f"{name} (+{len(ds) - 1} similar)"
    if not masks:
        raise ValueError(f"no generated descriptor covers at least min_support={min_support} words")
    return from_masks(masks, "discovered", labels)


def causal_lm_generator(model, template: str = '{sentence}\nIn this sentence, "{word}" is', max_new_tokens: int = 3
                        ) -> Generator:
    """A generator from a local TransformerLens causal LM (greedy decoding of a short descriptor per word).

    The model is whatever the caller already loaded; nothing is downloaded and no API is called.
    """
    if not hasattr(model, "to_tokens") or not hasattr(model, "to_string"):
        raise TypeError("causal_lm_generator needs a TransformerLens model (with to_tokens / to_string)")

    @torch.no_grad()
    def generate(words: Sequence[str]) -> list[list[str]]:
        sentence = " ".join(words)
        out = []
        for w in words:
            tokens = model.to_tokens(template.format(sentence=sentence, word=w))
            start = tokens.shape[1]
            for _ in range(max_new_tokens):
                nxt = model(tokens)[:, -1].argmax(-1, keepdim=True)
                tokens = torch.cat([tokens, nxt.to(tokens.device)], dim=1)
            text = model.to_string(tokens[0, start:])
            out.append([text.strip().split("\n")[0]] if text.strip() else [])
        return out

    return generate
