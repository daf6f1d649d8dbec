"""``long_sentences="skip"``: a skipped sentence's zero rows are marked, counted in a warning, and never reach a
labelled dataset (in memory, streamed to a folder, reloaded, or read in chunks)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import tl_neuronprobe as tnp
from tl_neuronprobe.data.chunks import ActivationChunks
from tl_neuronprobe.data.extraction import ExtractConfig

LONG = 45  # words of the long sentence; with BOS 46 tokens, over a context of 32


def labelled_corpus() -> tnp.Corpus:
    long_words = (["the", "dog", "near", "the", "cats"] * 20)[:LONG]
    return tnp.Corpus.from_records([
        {"words": ["a", "cat", "runs", "."], "id": "short", "upos": ["DET", "NOUN", "VERB", "PUNCT"]},
        {"words": long_words, "id": "long-one", "upos": ["X"] * LONG},
        {"words": ["the", "dog", "sat"], "id": "short-2", "upos": ["DET", "NOUN", "VERB"]},
    ])


@pytest.fixture(scope="module")
def model():
    return tnp.testing.tiny_model(n_ctx=32)


def test_skipped_rows_leave_the_dataset_with_a_warning(model, tmp_path):
    corpus = labelled_corpus()
    with pytest.warns(UserWarning, match=r"1 sentences longer than the context of 32 tokens skipped \(45 words"):
        acts = tnp.extract(model, corpus, ExtractConfig(long_sentences="skip"), progress=False)
    assert acts.meta["skipped_sentence_index"] == [1] and acts.n_words == corpus.n_words  # rows stay aligned
    with pytest.warns(UserWarning, match=r"'upos': 45 labelled words of 1 sentences skipped"):
        X, y, classes, idx = acts.dataset("upos", return_index=True)
    assert len(idx) == 7 and set(acts.sentence_ids[idx]) == {0, 2} and "X" not in classes
    assert bool((X.abs().sum(dim=1) > 0).all())  # no zero row labelled
    # streamed to a folder and reloaded, and read in chunks: the same rows
    with pytest.warns(UserWarning, match="skipped"):
        saved = tnp.extract(model, corpus, ExtractConfig(long_sentences="skip"), out_dir=tmp_path / "acts",
                            progress=False)
    with pytest.warns(UserWarning, match="45 labelled words"):
        assert np.array_equal(saved.dataset("upos", return_index=True)[3], idx)
    with pytest.warns(UserWarning, match="45 labelled words"):
        assert np.array_equal(ActivationChunks(tmp_path / "acts", "upos").rows, idx)
    with pytest.warns(UserWarning, match="45 labelled words"):
        assert np.array_equal(tnp.Activations.load(tmp_path / "acts").dataset("upos", return_index=True)[3], idx)


def test_windowed_sentences_stay_in_the_dataset(model):
    """Control: with windows every labelled word has real activations and stays in."""
    acts = tnp.extract(model, labelled_corpus(), ExtractConfig(long_sentences="window"), progress=False)
    X, y, classes = acts.dataset("upos")
    assert len(y) == 7 + LONG and "X" in classes and bool((X.abs().sum(dim=1) > 0).all())


def test_folder_without_the_skipped_rows_warns(model, tmp_path):
    """A folder from before the index was recorded: its zero rows cannot be told apart, and a warning says so."""
    with pytest.warns(UserWarning):
        tnp.extract(model, labelled_corpus(), ExtractConfig(long_sentences="skip"), out_dir=tmp_path / "old",
                    progress=False)
    meta_file = tmp_path / "old" / "meta.json"
    saved = json.loads(meta_file.read_text())
    del saved["meta"]["skipped_sentence_index"]
    meta_file.write_text(json.dumps(saved))
    with pytest.warns(UserWarning, match="do not record their rows"):
        assert len(tnp.Activations.load(tmp_path / "old").dataset("upos")[1]) == 7 + LONG


def test_no_skip_no_warning(model, recwarn):
    acts = tnp.extract(model, labelled_corpus()[:1], ExtractConfig(long_sentences="skip"), progress=False)
    assert len(acts.dataset("upos")[1]) == 4
    assert [str(w.message) for w in recwarn if issubclass(w.category, UserWarning)] == []
    assert torch.isfinite(acts.X).all()
