"""What the model does, read out three ways (or by any callable metric), and the lexicon that judges predictions.

A readout is chosen with a small config object (:class:`Identity`, :class:`Agreement`, :class:`Divergence`,
:class:`EmbeddingDistance`), or any callable ``metric(clean_logits, edited_logits) -> tensor``; the used
evaluation builds the runtime readout (the ``*Readout`` classes below) from it with :func:`build_readout`.

- :class:`IdentityReadout` (encoders with an LM head, or any model that predicts its input): the prediction at
  the tokens of each attribute-bearing word, compared with the clean run: ``changed``;
  ``correct_lemma_wrong_value`` (same lemma, another value of the attribute: the effect a translation aims
  for) and ``wrong_lemma`` (another word, or a form the lexicon does not know), both among changed words.
- :class:`AgreementReadout` (decoders): at the token before each verb, the model's preference among the verb's
  forms for each class (subject-verb agreement: "runs" versus "run"); ``agreement_flip`` (the preferred class
  changed), ``agreement_error`` (the preferred class is not the subject's) and ``logit_diff_drop`` (how much
  the right-minus-wrong logit difference fell).
- :class:`DivergenceReadout` (any model, with or without an LM head): ``kl`` between the clean and intervened
  output distributions, ``hidden_distance`` (1 - cosine of final hidden states, averaged over tokens) and
  ``embedding_distance`` (1 - cosine of the mean-pooled sentence embeddings).

:class:`Lexicon` maps word forms to lemmas and attribute values, built from the annotated corpus itself, so
judging a prediction needs nothing outside it.
"""

from __future__ import annotations

from collections import defaultdict
import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, NamedTuple, Sequence

import numpy as np
import torch

from ..core.adapter import Batch, ModelAdapter, TokenizedSentence
from ..core.config import Config
from ..data.corpus import Corpus
from ._lexicon import CONTEXT_ATTRIBUTES, SAME, VALUE_CHANGED, WRONG_LEMMA, Lexicon, word_features  # noqa: F401

__all__ = ["ReadoutSpec", "Identity", "Agreement", "Divergence", "EmbeddingDistance", "READOUT_SPECS",
           "Lexicon", "Readout", "IdentityReadout", "AgreementReadout", "DivergenceReadout", "MetricReadout", "Output",
           "CONTEXT_ATTRIBUTES", "READOUT_METRICS", "build_readout"]

#: the metrics each readout reports, first = the default for comparisons
READOUT_METRICS = {
    "identity": ("changed", "correct_lemma_wrong_value", "wrong_lemma"),
    "agreement": ("agreement_flip", "agreement_error", "logit_diff_drop"),
    "divergence": ("embedding_distance", "hidden_distance", "kl"),
}

# ------------------------------------------------------------------------------------------------ readouts
class Output(NamedTuple):
    """What one forward pass gives a readout: logits ``[rows, pos, vocab]`` and/or final hidden states."""

    logits: torch.Tensor | None
    hidden: torch.Tensor | None


@dataclass
class BatchPlan:
    """Per batch: which units (words, verbs or sentences) are read and where their tokens are."""

    n_units: int
    data: dict[str, Any]


class Readout:
    """Base class. The used evaluation calls, per sentence batch: :meth:`plan`, :meth:`clean` on the clean
    output, then :meth:`compare` on the intervened outputs (``n_rep`` interventions stacked along the batch);
    at the end :meth:`finalize` turns the concatenated raw results into per-unit metrics ``[R, n_units]``."""

    name = "readout"
    needs_logits = True
    needs_hidden = False
    metrics: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget the units of a previous evaluation (a readout object can be reused)."""
        self.unit_sentence: list[np.ndarray] = []

    def setup(self, adapter: ModelAdapter, corpus: Corpus, attribute: str, carries: list[np.ndarray],
              tokenized: list[TokenizedSentence]) -> np.ndarray:
        """Prepare units; ``carries[s]`` marks the words of sentence ``s`` that carry the attribute (with a
        known class). Returns, per sentence, whether it has units."""
        raise NotImplementedError

    def plan(self, batch: Batch, sentence_ids: Sequence[int], word_mask: torch.Tensor, mask: torch.Tensor,
             record: bool = True) -> BatchPlan:
        """Per batch (``sentence_ids``: the corpus indices of its rows): which units are read and where."""
        raise NotImplementedError

    def clean(self, output: Output, plan: BatchPlan) -> Any:
        raise NotImplementedError

    def compare(self, output: Output, ref: Any, plan: BatchPlan, n_rep: int) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def finalize(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return raw

    def units_sentences(self) -> np.ndarray:
        return np.concatenate(self.unit_sentence) if self.unit_sentence else np.zeros(0, dtype=np.int64)


def _rows(t: torch.Tensor, n_rep: int) -> torch.Tensor:
    """[n_rep * b, ...] -> [n_rep, b, ...]."""
    return t.reshape(n_rep, t.shape[0] // n_rep, *t.shape[1:])


class IdentityReadout(Readout):
    """The model's prediction at each attribute-bearing word's own tokens (an MLM head without [MASK], or
    the planted testbed's readout), judged with a :class:`Lexicon`."""

    name = "identity"
    metrics = READOUT_METRICS["identity"]

    def __init__(self, lexicon: Lexicon | None = None):
        self.lexicon = self._given_lexicon = lexicon
        super().__init__()

    def reset(self) -> None:
        super().reset()
        self.unit_ref: list[tuple[str, str | None]] = []
        self.tok_counts: list[np.ndarray] = []
        self.clean_preds: list[torch.Tensor] = []

    def setup(self, adapter, corpus, attribute, carries, tokenized):
        self.reset()
        self.adapter, self.corpus, self.attribute = adapter, corpus, attribute
        self.lexicon = self._given_lexicon if self._given_lexicon is not None else Lexicon.from_corpus(corpus)
        self.carries = carries
        return np.asarray([bool(c.any()) for c in carries])

    def _positions(self, batch: Batch, word_mask: torch.Tensor):
        b_idx, p_idx = torch.nonzero(word_mask, as_tuple=True)
        return b_idx, p_idx

    def plan(self, batch, sentence_ids, word_mask, mask, record=True):
        b_idx, p_idx = self._positions(batch, word_mask)
        words = batch.word_of_token[b_idx, p_idx]
        bw = (b_idx.cpu().numpy(), words.cpu().numpy())
        # tokens of one word are consecutive: a new unit starts where (row, word) changes
        if len(bw[0]):
            new = np.ones(len(bw[0]), dtype=bool)
            new[1:] = (bw[0][1:] != bw[0][:-1]) | (bw[1][1:] != bw[1][:-1])
            starts = np.flatnonzero(new)
            counts = np.diff(np.append(starts, len(new)))
        else:
            starts = counts = np.zeros(0, dtype=np.int64)
        if record:
            attr = self.attribute
            for st in starts:
                s = sentence_ids[int(bw[0][st])]
                w = int(bw[1][st])
                feats = word_features(self.corpus, s, w)
                self.unit_ref.append((feats["lemma"], self.corpus.sentences[s].attributes[attr][w]))
            self.unit_sentence.append(np.asarray([sentence_ids[int(bw[0][st])] for st in starts], dtype=np.int64))
            self.tok_counts.append(counts)
        return BatchPlan(len(starts), dict(b=b_idx, p=p_idx))

    def clean(self, output, plan):
        pred = output.logits[plan.data["b"], plan.data["p"]].argmax(-1)
        self.clean_preds.append(pred)
        return pred

    def compare(self, output, ref, plan, n_rep):
        logits = _rows(output.logits, n_rep)
        return {"pred": logits[:, plan.data["b"], plan.data["p"]].argmax(-1)}

    def clean_accuracy(self, output: Output, batch: Batch, word_mask: torch.Tensor) -> float:
        """Share of attribute-word tokens whose clean prediction is the input token itself."""
        b, p = torch.nonzero(word_mask, as_tuple=True)
        if len(b) == 0:
            return 0.0
        return float((output.logits[b, p].argmax(-1) == batch.input_ids[b, p]).float().mean())

    def _decode(self, ids: tuple[int, ...], cache: dict) -> str:
        if ids not in cache:
            tok = self.adapter.tokenizer
            cache[ids] = tok.decode(list(ids), skip_special_tokens=False).strip() if tok is not None else ""
        return cache[ids]

    def finalize(self, raw):
        pred = raw["pred"]  # [R, T]
        clean = torch.cat(self.clean_preds).cpu().numpy() if self.clean_preds else np.zeros(0, dtype=np.int64)
        counts = np.concatenate(self.tok_counts) if self.tok_counts else np.zeros(0, dtype=np.int64)
        R, n_units = pred.shape[0], len(counts)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        if n_units == 0:
            empty = np.zeros((R, 0))
            return {m: empty for m in self.metrics}
        changed_tok = (pred != clean[None]).astype(np.int64)
        changed = np.add.reduceat(changed_tok, starts, axis=1) > 0
        refs = self.unit_ref
        ref_keys = {r: i for i, r in enumerate(dict.fromkeys(refs))}
        ref_idx = np.asarray([ref_keys[r] for r in refs], dtype=np.int64)
        ref_list = list(ref_keys)
        codes = np.zeros((R, n_units), dtype=np.int64)
        cache: dict = {}
        judged: dict = {}
        single = counts == 1
        if single.any():
            ids = pred[:, starts[single]]  # [R, n_single]
            key = ids.astype(np.int64) * len(ref_list) + ref_idx[single][None]
            uniq, inverse = np.unique(key, return_inverse=True)
            vals = np.empty(len(uniq), dtype=np.int64)
            for i, k in enumerate(uniq):
                tid, r = divmod(int(k), len(ref_list))
                lemma, value = ref_list[r]
                vals[i] = self.lexicon.judge(self._decode((tid,), cache), lemma, value, self.attribute)
            codes[:, single] = vals[inverse].reshape(ids.shape)
        for u in np.flatnonzero(~single):
            lemma, value = refs[u]
            for r in range(R):
                ids = tuple(int(x) for x in pred[r, starts[u]:starts[u] + counts[u]])
                k = (ids, lemma, value)
                if k not in judged:
                    judged[k] = self.lexicon.judge(self._decode(ids, cache), lemma, value, self.attribute)
                codes[r, u] = judged[k]
        return {"changed": changed.astype(np.float64),
                "correct_lemma_wrong_value": (changed & (codes == VALUE_CHANGED)).astype(np.float64),
                "wrong_lemma": (changed & (codes == WRONG_LEMMA)).astype(np.float64)}


class AgreementReadout(Readout):
    """Next-token readout with class-specific target sets: at the token before each verb, the logits of the
    verb's forms for each class (logsumexp over a class's forms) decide which class the model prefers.

    Verbs are the words with a value of ``agreement_attribute`` (the class the verb must agree with, e.g. the
    subject's number) whose lemma has forms for at least two classes (from the lexicon, matching every other
    feature, with ``form_attribute`` the feature that varies) whose first tokens differ.
    """

    name = "agreement"
    metrics = READOUT_METRICS["agreement"]

    def __init__(self, agreement_attribute: str | None = None, form_attribute: str | None = None,
                 lexicon: Lexicon | None = None):
        super().__init__()
        self.agreement_attribute = agreement_attribute
        self.form_attribute = form_attribute
        self.lexicon = self._given_lexicon = lexicon

    def _first_token(self, form: str) -> int | None:
        if form not in self._tok_cache:
            t = self.adapter.tokenize_sentences([["the", form]])[0]
            ids = t.input_ids[t.word_of_token == 1]
            self._tok_cache[form] = int(ids[0]) if len(ids) else None
        return self._tok_cache[form]

    def setup(self, adapter, corpus, attribute, carries, tokenized):
        self.reset()
        self.__dict__.pop("_index", None)
        self.adapter, self.corpus = adapter, corpus
        self._tok_cache: dict[str, int | None] = {}
        names = corpus.attribute_names
        agree = self.agreement_attribute or ("Agreement" if "Agreement" in names else attribute)
        if agree not in names:
            raise KeyError(f"agreement readout: the corpus has no attribute {agree!r}; attributes: {names}")
        form_attr = self.form_attribute or attribute
        self.agree_attr, self.form_attr = agree, form_attr
        self.lexicon = self._given_lexicon if self._given_lexicon is not None else Lexicon.from_corpus(corpus)
        classes = sorted({v for v in corpus.attribute(agree) if v is not None})
        self.classes = classes
        cidx = {c: i for i, c in enumerate(classes)}
        self.targets: dict[tuple[int, int], tuple[list[list[int]], int]] = {}
        has = np.zeros(len(corpus), dtype=bool)
        for s, (sent, tok) in enumerate(zip(corpus.sentences, tokenized)):
            values = sent.attributes.get(agree)
            if values is None:
                continue
            for w, gold in enumerate(values):
                if gold is None or gold not in cidx:
                    continue
                alts = self.lexicon.alternatives(word_features(corpus, s, w), form_attr, ignore=(agree,))
                ids = [sorted({t for t in (self._first_token(f) for f in alts.get(c, [])) if t is not None})
                       for c in classes]
                if sum(bool(x) for x in ids) < 2 or not ids[cidx[gold]]:
                    continue
                flat = [t for x in ids for t in x]
                if len(flat) != len(set(flat)):  # two classes share a first token: no decision to read
                    continue
                first = np.flatnonzero(tok.word_of_token == w)
                if len(first) == 0 or first[0] == 0:
                    continue
                self.targets[(s, w)] = (ids, cidx[gold])
                has[s] = True
        if not self.targets:
            raise ValueError(f"agreement readout: no word with {agree!r} has forms of two classes of "
                             f"{form_attr!r} in the corpus lexicon (need e.g. 'runs'/'run' both attested)")
        self.max_forms = max(len(x) for ids, _ in self.targets.values() for x in ids)
        return has

    def plan(self, batch, sentence_ids, word_mask, mask, record=True):
        rows, pos, tgt, gold, sent = [], [], [], [], []
        wot = batch.word_of_token.cpu().numpy()
        C, F = len(self.classes), self.max_forms
        for b, s in enumerate(sentence_ids):
            for (s2, w), (ids, g) in self._by_sentence().get(s, []):
                p = int(np.flatnonzero(wot[b] == w)[0])
                rows.append(b)
                pos.append(p - 1)
                t = np.full((C, F), -1, dtype=np.int64)
                for c, x in enumerate(ids):
                    t[c, : len(x)] = x
                tgt.append(t)
                gold.append(g)
                sent.append(s)
        device = batch.input_ids.device
        data = dict(b=torch.as_tensor(rows, dtype=torch.long, device=device),
                    p=torch.as_tensor(pos, dtype=torch.long, device=device),
                    targets=torch.as_tensor(np.stack(tgt) if tgt else np.zeros((0, C, F), dtype=np.int64),
                                            device=device),
                    gold=torch.as_tensor(gold, dtype=torch.long, device=device))
        if record:
            self.unit_sentence.append(np.asarray(sent, dtype=np.int64))
        return BatchPlan(len(rows), data)

    def _by_sentence(self) -> dict[int, list]:
        if not hasattr(self, "_index"):
            index: dict[int, list] = defaultdict(list)
            for key, val in self.targets.items():
                index[key[0]].append((key, val))
            self._index = index
        return self._index

    def _scores(self, logits: torch.Tensor, plan: BatchPlan) -> torch.Tensor:
        """Per unit and class, logsumexp of the class's form logits: [..., units, C]."""
        t = plan.data["targets"]  # [U, C, F]
        sel = logits[..., plan.data["b"], plan.data["p"], :]  # [..., U, V]
        g = sel.gather(-1, t.clamp(min=0).reshape(*t.shape[:1], -1).expand(*sel.shape[:-1], -1))
        g = g.reshape(*sel.shape[:-1], *t.shape[1:]).float()
        g = g.masked_fill(t < 0, float("-inf"))
        return torch.logsumexp(g, -1)

    def _decision(self, scores: torch.Tensor, gold: torch.Tensor):
        pref = scores.argmax(-1)
        right = scores.gather(-1, gold.expand(*scores.shape[:-1]).unsqueeze(-1)).squeeze(-1)
        others = scores.scatter(-1, gold.expand(*scores.shape[:-1]).unsqueeze(-1), float("-inf"))
        return pref, right - others.max(-1).values

    def clean(self, output, plan):
        return self._decision(self._scores(output.logits, plan), plan.data["gold"])

    def clean_accuracy(self, output: Output, plan: BatchPlan) -> float:
        pref, _ = self.clean(output, plan)
        return float((pref == plan.data["gold"]).float().mean()) if plan.n_units else 0.0

    def compare(self, output, ref, plan, n_rep):
        pref_clean, diff_clean = ref
        scores = self._scores(_rows(output.logits, n_rep), plan)  # [n_rep, U, C]
        pref, diff = self._decision(scores, plan.data["gold"])
        return {"agreement_flip": (pref != pref_clean[None]).float(),
                "agreement_error": (pref != plan.data["gold"][None]).float(),
                "logit_diff_drop": (diff_clean[None] - diff).float()}


class DivergenceReadout(Readout):
    """How far the intervened output moves from the clean one, per sentence: any model, LM head or not.

    ``metrics``: any of ``kl`` (needs an output head), ``hidden_distance`` and ``embedding_distance`` (final
    hidden states: the last block's residual output; for BERT-like encoders the model's last hidden state).
    """

    name = "divergence"

    def __init__(self, metrics: Sequence[str] = ("embedding_distance", "hidden_distance")):
        super().__init__()
        bad = [m for m in metrics if m not in READOUT_METRICS["divergence"]]
        if bad or not metrics:
            raise ValueError(f"divergence metrics must be among {READOUT_METRICS['divergence']}, got {list(metrics)}")
        self.metrics = tuple(metrics)
        self.needs_logits = "kl" in self.metrics
        self.needs_hidden = any(m != "kl" for m in self.metrics)

    def setup(self, adapter, corpus, attribute, carries, tokenized):
        self.reset()
        return np.ones(len(corpus), dtype=bool)

    def plan(self, batch, sentence_ids, word_mask, mask, record=True):
        rows = torch.nonzero(mask.any(1)).flatten()
        if record:
            self.unit_sentence.append(np.asarray(sentence_ids, dtype=np.int64)[rows.cpu().numpy()])
        valid = batch.attention_mask.bool()[rows]
        return BatchPlan(len(rows), dict(rows=rows, valid=valid))

    def clean(self, output, plan):
        rows = plan.data["rows"]
        ref = {}
        if output.hidden is not None:
            ref["hidden"] = output.hidden[rows].float()
        if output.logits is not None and "kl" in self.metrics:
            ref["logp"] = output.logits[rows].float().log_softmax(-1)
        return ref

    def compare(self, output, ref, plan, n_rep):
        rows, valid = plan.data["rows"], plan.data["valid"]
        v = valid.float()
        n_tok = v.sum(-1).clamp(min=1)
        res = {}
        if self.needs_hidden:
            h = _rows(output.hidden, n_rep)[:, rows].float()  # [n_rep, U, P, D]
            h0 = ref["hidden"][None]
            if "hidden_distance" in self.metrics:
                d = 1 - torch.nn.functional.cosine_similarity(h, h0, dim=-1)
                res["hidden_distance"] = (d * v).sum(-1) / n_tok
            if "embedding_distance" in self.metrics:
                pool = (h * v[..., None]).sum(-2) / n_tok[..., None]
                pool0 = (h0 * v[..., None]).sum(-2) / n_tok[..., None]
                res["embedding_distance"] = 1 - torch.nn.functional.cosine_similarity(pool, pool0, dim=-1)
        if "kl" in self.metrics:
            logq = _rows(output.logits, n_rep)[:, rows].float().log_softmax(-1)
            logp = ref["logp"][None]
            kl = (logp.exp() * (logp - logq)).sum(-1)
            res["kl"] = (kl * v).sum(-1) / n_tok
        return res


class MetricReadout(Readout):
    """Any callable ``metric(clean_logits, edited_logits)`` as a readout: both ``[sentences, pos, vocab]`` (the
    sentences of a batch with an edited token); it returns one value per sentence ``[sentences]`` or per token
    ``[sentences, pos]`` (then averaged over each sentence's tokens, padding left out). The metric is named
    after the callable (``__name__``)."""

    name = "metric"

    def __init__(self, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]):
        super().__init__()
        if not callable(fn):
            raise TypeError(f"a metric readout needs a callable, got {type(fn).__name__}")
        self.fn = fn
        self.metrics = (getattr(fn, "__name__", type(fn).__name__).strip("<>") or "metric",)

    def setup(self, adapter, corpus, attribute, carries, tokenized):
        self.reset()
        return np.ones(len(corpus), dtype=bool)

    def plan(self, batch, sentence_ids, word_mask, mask, record=True):
        rows = torch.nonzero(mask.any(1)).flatten()
        if record:
            self.unit_sentence.append(np.asarray(sentence_ids, dtype=np.int64)[rows.cpu().numpy()])
        return BatchPlan(len(rows), dict(rows=rows, valid=batch.attention_mask.bool()[rows]))

    def clean(self, output, plan):
        return output.logits[plan.data["rows"]]

    def compare(self, output, ref, plan, n_rep):
        rows, valid = plan.data["rows"], plan.data["valid"]
        edited = _rows(output.logits, n_rep)[:, rows]
        values = []
        for r in range(n_rep):
            v = torch.as_tensor(self.fn(ref, edited[r])).float().to(ref.device)
            if v.ndim == 2:
                w = valid.float()
                v = (v * w).sum(-1) / w.sum(-1).clamp(min=1)
            if tuple(v.shape) != (len(rows),):
                raise ValueError(f"metric {self.metrics[0]!r} returned shape {tuple(v.shape)}; expected one value "
                                 f"per sentence [{len(rows)}] or per token [{len(rows)}, pos]")
            values.append(v)
        return {self.metrics[0]: torch.stack(values) if values else torch.zeros(0, len(rows))}


# ------------------------------------------------------------------------------------------- readout objects
#: readout name -> readout config class (``Identity``, ``Agreement``, ``Divergence``, ``EmbeddingDistance``)
READOUT_SPECS: dict[str, type["ReadoutSpec"]] = {}


@dataclasses.dataclass(frozen=True)
class ReadoutSpec(Config):
    """Base of the readout objects: a config that :meth:`build` turns into a runtime :class:`Readout`."""

    name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("name"):
            READOUT_SPECS[cls.name] = cls

    def build(self, adapter: ModelAdapter) -> Readout:  # pragma: no cover - every subclass builds its own
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class Identity(ReadoutSpec):
    """The model's prediction at each attribute-bearing word's own tokens, judged with a lexicon
    (``changed``, ``correct_lemma_wrong_value``, ``wrong_lemma``): models that predict their input (an MLM head
    without [MASK], as MiniLM's shipped head).

    ``lexicon``: a corpus spec of :meth:`Corpus.load <tl_neuronprobe.Corpus.load>` (``"ud-english"``, a
    ``.conllu`` path, ...) whose forms, lemmas and features judge the predictions; None: the evaluated corpus.
    A predicted form the lexicon has never seen counts as ``wrong_lemma``, so a few dozen evaluated sentences
    judge a flip such as "dogs" -> "dog" only if "dog" occurs among them: name a larger corpus of the same
    annotation.

    Examples
    --------
    >>> from tl_neuronprobe.interventions import Identity
    >>> Identity().to_dict()
    {'type': 'Identity', 'lexicon': None}
    >>> Identity(lexicon="ud-english").lexicon
    'ud-english'
    """

    name: ClassVar[str] = "identity"
    lexicon: "str | None" = None

    def build(self, adapter: ModelAdapter) -> Readout:
        return IdentityReadout(None if self.lexicon is None else corpus_lexicon(self.lexicon))


@functools.lru_cache(maxsize=4)
def corpus_lexicon(spec: str) -> Lexicon:
    """The :class:`Lexicon` of the corpus ``spec`` (:meth:`Corpus.load`), built once per process and spec."""
    return Lexicon.from_corpus(Corpus.load(spec))


@dataclasses.dataclass(frozen=True)
class Agreement(ReadoutSpec):
    """Subject-verb agreement at the token before each verb (decoders): ``agreement_flip``, ``agreement_error``,
    ``logit_diff_drop``. ``attribute``: what the verb agrees with (default ``"Agreement"`` if the corpus has it,
    else the evaluated attribute); ``form_attribute``: the feature whose forms compete (default: the evaluated
    attribute)."""

    name: ClassVar[str] = "agreement"
    attribute: "str | None" = None
    form_attribute: "str | None" = None

    def build(self, adapter: ModelAdapter) -> Readout:
        return AgreementReadout(self.attribute, self.form_attribute)


@dataclasses.dataclass(frozen=True)
class Divergence(ReadoutSpec):
    """How far the edited output moves from the clean one, per sentence: any of ``kl`` (needs an output head),
    ``hidden_distance``, ``embedding_distance``; ``metrics=None``: all three for a decoder, the two distances for
    an encoder."""

    name: ClassVar[str] = "divergence"
    metrics: "tuple[str, ...] | None" = None

    def validate(self) -> None:
        if self.metrics is not None:
            bad = [m for m in self.metrics if m not in READOUT_METRICS["divergence"]]
            if bad or not self.metrics:
                raise ValueError(f"Divergence.metrics must be among {READOUT_METRICS['divergence']}, got "
                                 f"{list(self.metrics)}")

    def build(self, adapter: ModelAdapter) -> Readout:
        metrics = self.metrics
        if metrics is None:
            metrics = (("embedding_distance", "hidden_distance") if adapter.is_encoder
                       else ("kl", "embedding_distance", "hidden_distance"))
        return DivergenceReadout(metrics)


@dataclasses.dataclass(frozen=True)
class EmbeddingDistance(ReadoutSpec):
    """``embedding_distance`` only: 1 - cosine of the clean and edited mean-pooled sentence embeddings (final
    hidden states; any model, no output head needed)."""

    name: ClassVar[str] = "embedding_distance"

    def build(self, adapter: ModelAdapter) -> Readout:
        return DivergenceReadout(("embedding_distance",))


def build_readout(readout: "ReadoutSpec | Readout | Callable", adapter: ModelAdapter) -> Readout:
    """The runtime readout of a readout object, a :class:`Readout` (used as it is) or a callable metric."""
    if isinstance(readout, Readout):
        return readout
    if isinstance(readout, ReadoutSpec):
        return readout.build(adapter)
    if callable(readout):
        return MetricReadout(readout)
    raise TypeError(f"readout must be Identity(), Agreement(), Divergence(), EmbeddingDistance(), a Readout or a "
                    f"callable metric(clean_logits, edited_logits), got {readout!r}")
