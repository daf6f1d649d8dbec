"""The corpus baseline equals a brute-force scan of every window, one forward pass each."""

from __future__ import annotations

import math

import pytest
import torch

import tl_neuronprobe as tnp
from tl_neuronprobe.textualization import CorpusSearch, Discrete, TextualizeConfig, corpus_top_windows, textualize


def brute_force(model, sentences, neurons, window, position, prefix, suffix):
    """Every window of every sentence, one at a time: the best activation per neuron and its windows."""
    adapter = tnp.ModelAdapter(model)
    tok = adapter.tokenizer
    best = {n: (-math.inf, set()) for n in neurons}
    for s in sentences:
        ids = tok(" ".join(s.words), add_special_tokens=False)["input_ids"]
        for start in range(len(ids) - window + 1):
            w = ids[start:start + window]
            seq = torch.as_tensor(prefix + w + suffix)[None]
            vals = {}

            def reader(name):
                def grab(act, hook=None):
                    for n in neurons:
                        if n.hook_name == name:
                            vals[n] = act.reshape(1, act.shape[1], -1)[0, len(prefix) + position, n.index].item()
                return grab
            with torch.no_grad():
                adapter.forward(seq, [(h, reader(h)) for h in sorted({n.hook_name for n in neurons})])
            for n in neurons:
                v, ws = best[n]
                if vals[n] > v + 1e-6:
                    best[n] = (vals[n], {tuple(w)})
                elif abs(vals[n] - v) <= 1e-6:
                    ws.add(tuple(w))
    return best


def test_corpus_windows_equal_brute_force_decoder(planted):
    corpus = tnp.Corpus.synthetic(20, seed=4)
    neurons = [tnp.Neuron(1, 57), tnp.Neuron(1, 5), tnp.Neuron(0, 12), tnp.Neuron(1, 3, "resid.mid")]
    bos = planted.tokenizer.bos_token_id
    expect = brute_force(planted, corpus.sentences, neurons, 3, 2, [bos], [])
    got = corpus_top_windows(planted, corpus, neurons, length=3, n_windows=2, batch_size=7)
    for n in neurons:
        top = got[got.neuron == str(n)].sort_values("rank")
        assert len(top) == 2 and top.activation.iloc[0] >= top.activation.iloc[1]
        assert top.activation.iloc[0] == pytest.approx(expect[n][0], abs=1e-5)
        assert tuple(top.token_ids.iloc[0]) in expect[n][1]


def test_corpus_windows_equal_brute_force_encoder_middle_position(tiny_bert):
    corpus = tnp.Corpus.synthetic(20, seed=5)
    neurons = [tnp.Neuron(0, 3), tnp.Neuron(1, 40), tnp.Neuron(1, 2, "resid.post")]
    adapter = tnp.ModelAdapter(tiny_bert)
    full = adapter.tokenizer("the", add_special_tokens=True)["input_ids"]
    plain = adapter.tokenizer("the", add_special_tokens=False)["input_ids"]
    i = full.index(plain[0])
    expect = brute_force(tiny_bert, corpus.sentences, neurons, 4, 2, full[:i], full[i + 1:])
    got = corpus_top_windows(tiny_bert, corpus, neurons, length=4, n_windows=1)  # encoders: middle token (index 2)
    for n in neurons:
        row = got[got.neuron == str(n)].iloc[0]
        assert row.activation == pytest.approx(expect[n][0], abs=1e-5)
        assert tuple(row.token_ids) in expect[n][1]


def test_corpus_method_reports_the_top_window(planted):
    corpus = tnp.Corpus.synthetic(40, seed=1)
    neurons = [tnp.Neuron(1, 57), tnp.Neuron(1, 30)]
    res = textualize(planted, neurons, TextualizeConfig(optimizer=CorpusSearch(), length=2, corpus=corpus),
                     progress=False)
    top = corpus_top_windows(planted, corpus, neurons, length=2, n_windows=1)
    for r, (_, row) in zip(res, top.iterrows()):
        assert r.activation == pytest.approx(row.activation) and r.text == row.text
        assert r.ratio == pytest.approx(1.0) and r.max_steps == 0
        assert not math.isnan(r.fluency)  # decoders report the self cross-entropy


def test_ratio_and_corpus_max_use_windows_of_the_same_length(planted):
    corpus = tnp.Corpus.synthetic(40, seed=2)
    n = tnp.Neuron(1, 30)
    res = textualize(planted, [n], TextualizeConfig(optimizer=Discrete(max_steps=5), length=3, corpus=corpus),
                     progress=False)
    top = corpus_top_windows(planted, corpus, [n], length=3, n_windows=1)
    assert res[0].corpus_max == pytest.approx(top.activation.iloc[0])
    assert res[0].ratio == pytest.approx(res[0].activation / top.activation.iloc[0])
    assert res.table.loc[0, "corpus_text"] == top.text.iloc[0]
