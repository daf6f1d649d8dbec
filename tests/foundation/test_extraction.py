import numpy as np
import pytest
import torch

import tl_neuronprobe as tnp
from tl_neuronprobe.core.adapter import ModelAdapter
from tl_neuronprobe.data.extraction import ExtractConfig


def small_corpus(n=40, seed=3):
    return tnp.Corpus.synthetic(n, seed=seed)


# ------------------------------------------------------------------------------------------- exactness
def reference_mlp_post(model, words, layer):
    """Per-token mlp.post of one sentence from a hook on the underlying model (or TL's cache for HookedTransformer)."""
    ad = ModelAdapter(model)
    (tok,) = ad.tokenize_sentences([words])
    ids = torch.as_tensor(tok.input_ids)[None]
    if ad.generation == "hooked":
        _, cache = model.run_with_cache(ids)
        return cache[f"blocks.{layer}.mlp.hook_post"][0], tok
    hf = model.original_model
    store = {}
    module = hf.transformer.h[layer].mlp.act if hasattr(hf, "transformer") else hf.bert.encoder.layer[layer].intermediate
    handle = module.register_forward_hook(lambda m, i, o: store.__setitem__("x", o.detach()))
    try:
        with torch.no_grad():
            hf(input_ids=ids)
    finally:
        handle.remove()
    return store["x"][0], tok


def test_activations_equal_a_direct_hook_on_the_model(planted, planted_corpus):
    acts = tnp.extract(planted, planted_corpus[:30], ExtractConfig(layers=[0, 1]), progress=False)
    for s_index in (0, 7, 29):
        sent = planted_corpus[s_index]
        rows = np.flatnonzero(acts.sentence_ids == s_index)
        for layer in (0, 1):
            ref, tok = reference_mlp_post(planted, sent.words, layer)
            last = [int(np.flatnonzero(tok.word_of_token == j)[-1]) for j in range(len(sent.words))]
            cols = acts.columns([tnp.Neuron(layer, i) for i in range(ref.shape[-1])])
            torch.testing.assert_close(acts.X[rows][:, cols], ref[last], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("architecture", ["gpt2", "bert"])
def test_batched_equals_alone_padding_never_leaks(architecture, generation):
    if architecture == "bert" and generation != "bridge":
        pytest.skip("encoders need TransformerBridge")
    model = tnp.testing.tiny_model(generation=generation, architecture=architecture, seed=1)
    corpus = small_corpus(30)
    batched = tnp.extract(model, corpus, ExtractConfig(site=["mlp.post", "resid.post"], batch_size=64), progress=False)
    alone = tnp.extract(model, corpus, ExtractConfig(site=["mlp.post", "resid.post"], batch_size=1), progress=False)
    assert batched.X.shape == (corpus.n_words, 2 * (64 + 32))
    torch.testing.assert_close(batched.X, alone.X, rtol=1e-4, atol=1e-5)


def test_every_site_has_its_width(generation):
    model = tnp.testing.tiny_model(generation=generation)
    corpus = small_corpus(5)
    for site, width in [("mlp.post", 64), ("mlp.pre", 64), ("resid.pre", 32), ("resid.mid", 32),
                        ("resid.post", 32), ("attn.z", 32)]:
        acts = tnp.extract(model, corpus, ExtractConfig(site=site, layers=[1]), progress=False)
        assert acts.X.shape == (corpus.n_words, width), site
        assert {n.site for n in acts.neurons} == {site}
        assert bool(torch.isfinite(acts.X).all())


def test_attn_z_is_heads_times_dhead_flattened(generation):
    model = tnp.testing.tiny_model(generation=generation)
    words = small_corpus(1)[0].words
    acts = tnp.extract(model, tnp.Corpus.from_records([{"words": words}]), ExtractConfig(site="attn.z", layers=[0]),
                       progress=False)
    ad = ModelAdapter(model)
    (tok,) = ad.tokenize_sentences([words])
    _, cache = model.run_with_cache(torch.as_tensor(tok.input_ids)[None])
    z = cache["blocks.0.attn.hook_z"][0]  # [pos, head, d_head]
    last = [int(np.flatnonzero(tok.word_of_token == j)[-1]) for j in range(len(words))]
    torch.testing.assert_close(acts.X, z[last].reshape(len(words), -1), rtol=1e-5, atol=1e-5)


@pytest.mark.minilm
def test_minilm_subword_aggregation_matches_hf(minilm):
    words = ["The", "unbelievably", "tall", "lighthouse", "keepers", "slept", "."]
    corpus = tnp.Corpus.from_records([{"words": words}])
    ref, tok = reference_mlp_post(minilm, words, 2)
    assert len(set(tok.word_of_token[tok.word_of_token >= 0].tolist())) == len(words)
    assert (tok.word_of_token == 1).sum() > 1, "the test needs a word split into several sub-tokens"
    for aggregation in ("first", "last", "mean"):
        acts = tnp.extract(minilm, corpus, ExtractConfig(layers=[2], aggregation=aggregation), progress=False)
        for j in range(len(words)):
            pos = np.flatnonzero(tok.word_of_token == j)
            want = {"first": ref[pos[0]], "last": ref[pos[-1]], "mean": ref[pos].mean(0)}[aggregation]
            torch.testing.assert_close(acts.X[j], want, rtol=1e-4, atol=1e-5)
    # CLS and SEP are never a word's token
    assert tok.word_of_token[0] == -1 and tok.word_of_token[-1] == -1


def test_stop_at_layer_runs_no_later_block_nor_head(planted):
    ad = ModelAdapter(planted)
    batch = ad.collate(ad.tokenize_sentences([["the", "dog", "runs", "."]]))
    fired = []
    hooks = [("blocks.0.hook_resid_post", lambda a, hook: fired.append("b0")),
             ("blocks.1.hook_resid_pre", lambda a, hook: fired.append("b1")),
             ("ln_final.hook_normalized", lambda a, hook: fired.append("head"))]
    assert ad.forward(batch, hooks, stop_at_layer=1) is None
    assert fired == ["b0"]


# ------------------------------------------------------------------------------------ dtype, streaming
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_output(planted, planted_corpus, dtype, tmp_path):
    full = tnp.extract(planted, planted_corpus[:20], progress=False)
    half = tnp.extract(planted, planted_corpus[:20], ExtractConfig(dtype=dtype), progress=False)
    assert half.X.dtype == getattr(torch, dtype)
    torch.testing.assert_close(half.X.float(), full.X, rtol=2e-2, atol=2e-2)
    half.save(tmp_path / "a")
    back = tnp.Activations.load(tmp_path / "a")
    assert back.X.dtype == half.X.dtype and torch.equal(back.X, half.X)


def test_streamed_equals_in_memory_and_reloads_memory_mapped(planted, planted_corpus, tmp_path):
    mem = tnp.extract(planted, planted_corpus, progress=False)
    out = tmp_path / "acts"
    streamed = tnp.extract(planted, planted_corpus, ExtractConfig(sentences_per_block=17), out_dir=out, progress=False)
    assert torch.equal(streamed.X, mem.X)
    assert isinstance(streamed.X.untyped_storage().data_ptr(), int)
    loaded = tnp.Activations.load(out)
    assert torch.equal(loaded.X, mem.X)
    assert loaded.neurons == mem.neurons and loaded.words == mem.words
    assert loaded.attributes == mem.attributes
    assert (loaded.sentence_ids == mem.sentence_ids).all()
    X, y, classes, idx = loaded.dataset("Number", return_index=True)
    assert classes == ["Plur", "Sing"] and len(X) == len(y) == len(idx)
    assert all(loaded.attributes["Number"][i] == classes[c] for i, c in zip(idx, y.tolist()))
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir()), "no staging folder may be left behind"


def test_interrupted_extraction_keeps_the_previous_folder(planted_corpus, tmp_path, generation):
    weights, words, _ = tnp.testing.planted_weights()
    good = tnp.testing.build_model(weights, tnp.testing.word_tokenizer(words), n_heads=2, generation=generation)
    out = tmp_path / "acts"
    before = tnp.extract(good, planted_corpus[:50], out_dir=out, progress=False)
    saved = (out / "activations.safetensors").read_bytes(), (out / "meta.json").read_text()
    weights["embed.W_E"][words.index("cabinet")] = float("nan")
    bad = tnp.testing.build_model(weights, tnp.testing.word_tokenizer(words), n_heads=2, generation=generation)
    with pytest.raises(tnp.NonFiniteActivationError, match=r"blocks\.\d\.mlp\.hook_post.*sentence"):
        tnp.extract(bad, planted_corpus, ExtractConfig(sentences_per_block=10), out_dir=out, progress=False)
    assert ((out / "activations.safetensors").read_bytes(), (out / "meta.json").read_text()) == saved
    assert torch.equal(tnp.Activations.load(out).X, before.X)
    # beside it only the staging folder, kept so that a re-run resumes from its completed shards
    assert sorted(p.name for p in tmp_path.iterdir()) == [".acts.partial", "acts"]
    # and the model runs exactly as before: no hook left behind
    ad = ModelAdapter(good)
    batch = ad.collate(ad.tokenize_sentences([planted_corpus[0].words]))
    assert all(len(hp.fwd_hooks) == 0 for hp in good.hook_dict.values() if hasattr(hp, "fwd_hooks"))
    torch.testing.assert_close(ad.forward(batch), ad.forward(batch))


# --------------------------------------------------------------------------------- long sentences
def long_corpus(n_words=45):
    words = (["the", "dog", "near", "the", "cats"] * 20)[:n_words]
    return tnp.Corpus.from_records([{"words": ["a", "cat", "runs", "."], "id": "short"},
                                    {"words": words, "id": "long-one"}])


def test_long_sentence_is_an_error_that_names_it(generation):
    model = tnp.testing.tiny_model(generation=generation, n_ctx=32)
    with pytest.raises(tnp.LongSentenceError, match=r"'long-one' has 46 tokens .* context of 32"):
        tnp.extract(model, long_corpus(), progress=False)


def test_long_sentence_window_and_skip(generation):
    model = tnp.testing.tiny_model(generation=generation, n_ctx=32)
    corpus = long_corpus()
    windowed = tnp.extract(model, corpus, ExtractConfig(long_sentences="window"), progress=False)
    assert windowed.X.shape[0] == corpus.n_words and bool(torch.isfinite(windowed.X).all())
    # the first window (31 words + BOS) equals extracting those words as a sentence of their own
    first = tnp.extract(model, tnp.Corpus.from_records([{"words": corpus[1].words[:31]}]), progress=False)
    torch.testing.assert_close(windowed.X[4:35], first.X, rtol=1e-5, atol=1e-5)
    skipped = tnp.extract(model, corpus, ExtractConfig(long_sentences="skip"), progress=False)
    assert skipped.meta["skipped_sentences"] == ["long-one"]
    assert bool((skipped.X[4:] == 0).all())
    torch.testing.assert_close(skipped.X[:4], windowed.X[:4], rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------------ bad input
def test_unknown_site_layer_and_neuron(planted, planted_corpus):
    with pytest.raises(ValueError, match="unknown site 'mlp.out'.*mlp.post"):
        tnp.extract(planted, planted_corpus, ExtractConfig(site="mlp.out"), progress=False)
    with pytest.raises(ValueError, match=r"layers \[7\] do not exist.*0\.\.1"):
        tnp.extract(planted, planted_corpus, ExtractConfig(layers=[7]), progress=False)
    ad = ModelAdapter(planted)
    with pytest.raises(ValueError, match=r"neuron L1\.N64 is out of range.*64 neurons"):
        ad.check_neurons([tnp.Neuron(1, 64)])
    with pytest.raises(ValueError, match="hook 'blocks.0.mlp.hook_banana' does not exist"):
        ad.check_hook("blocks.0.mlp.hook_banana")


def test_empty_corpus_and_missing_attribute(planted, planted_corpus):
    with pytest.raises(ValueError, match="empty"):
        tnp.extract(planted, tnp.Corpus([]), progress=False)
    acts = tnp.extract(planted, planted_corpus[:5], progress=False)
    with pytest.raises(KeyError, match="'Case' not in these activations"):
        acts.dataset("Case")
    with pytest.raises(KeyError, match="not in these activations"):
        acts.columns(["L5.N3"])


def test_model_of_neither_generation_is_rejected():
    with pytest.raises(TypeError, match="neither a TransformerLens HookedTransformer"):
        ModelAdapter(torch.nn.Linear(3, 3))


def test_tokenizer_without_offsets_is_rejected(planted):
    class SlowTokenizer:  # e.g. a sentencepiece tokenizer loaded without its fast version
        is_fast = False

    ad = ModelAdapter(planted)
    ad.tokenizer = SlowTokenizer()
    with pytest.raises(ValueError, match="no character offsets"):
        ad.tokenize_sentences([["the", "dog"]])
    ad.tokenizer = None
    with pytest.raises(ValueError, match="has no tokenizer"):
        ad.tokenize_sentences([["the", "dog"]])


def test_same_result_twice(planted, planted_corpus):
    a = tnp.extract(planted, planted_corpus[:20], progress=False)
    b = tnp.extract(planted, planted_corpus[:20], progress=False)
    assert torch.equal(a.X, b.X)


def test_planted_neurons_are_what_they_claim(planted, planted_corpus):
    acts = tnp.extract(planted, planted_corpus, progress=False)
    X, y, classes = acts.dataset("Number")
    sing = classes.index("Sing")
    for n in planted.planted["Number"]:
        v = X[:, acts.columns([n])[0]]
        gap = (v[y == sing].mean() - v[y != sing].mean()).abs()
        assert gap > 3 * v.std() / 2, n
    trig, token = next(iter(planted.planted.trigger.items()))
    v = acts.X[:, acts.columns([trig])[0]]
    on = torch.as_tensor([w == token for w in acts.words])
    assert v[on].min() > 0.5 and v[~on].max() < 0.05
