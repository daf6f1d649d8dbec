"""The writer thread of extraction: with a spare core, each batch's rows are checked and copied into the word matrix
on a second thread while the next batch runs. Same matrix either way, errors raised in the caller, no thread left."""

import re
import threading

import pytest
import torch

import tl_neuronprobe as tnp
import tl_neuronprobe.data.extraction as extraction
from tl_neuronprobe.core.adapter import ModelAdapter
from tl_neuronprobe.data.extraction import ExtractConfig


def writer_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("tnp-write")]


@pytest.fixture
def record_writes(monkeypatch):
    """The thread names the writes ran in."""
    names: list[str] = []
    write = extraction._Job.write

    def spy(self, *args):
        names.append(threading.current_thread().name)
        return write(self, *args)

    monkeypatch.setattr(extraction._Job, "write", spy)
    return names


@pytest.mark.parametrize("spare", [True, False])
def test_same_matrix_with_or_without_the_writer_thread(planted, planted_corpus, tmp_path, monkeypatch,
                                                       record_writes, spare):
    reference = tnp.extract(planted, planted_corpus, ExtractConfig(batch_size=1),
                            progress=False)  # one sentence per batch
    monkeypatch.setattr(extraction, "spare_core", lambda: spare)
    record_writes.clear()
    mem = tnp.extract(planted, planted_corpus, ExtractConfig(batch_size=16), progress=False)
    streamed = tnp.extract(planted, planted_corpus, ExtractConfig(batch_size=16, sentences_per_block=37),
                           out_dir=tmp_path / "acts", progress=False)
    threads = set(record_writes)
    assert len(record_writes) > 10
    if spare:  # every write on the writer thread, never in the caller
        assert all(name.startswith("tnp-write") for name in threads), threads
    else:
        assert threads == {threading.current_thread().name}
    torch.testing.assert_close(mem.X, reference.X, rtol=1e-5, atol=1e-6)
    assert torch.equal(streamed.X, mem.X)
    assert writer_threads() == []


def test_non_finite_activation_raised_from_the_writer_thread(planted_corpus, monkeypatch, record_writes):
    monkeypatch.setattr(extraction, "spare_core", lambda: True)
    weights, words, _ = tnp.testing.planted_weights()
    weights["embed.W_E"][words.index("cabinet")] = float("nan")
    bad = tnp.testing.build_model(weights, tnp.testing.word_tokenizer(words), n_heads=2)
    with pytest.raises(tnp.NonFiniteActivationError, match=r"hook blocks\.\d\.mlp\.hook_post neuron \d+ for word "
                                                            r"\d+ \('\w+'\) of sentence '([^']+)'") as err:
        tnp.extract(bad, planted_corpus, ExtractConfig(batch_size=8), progress=False)
    named = re.search(r"of sentence '([^']+)'", str(err.value)).group(1)
    assert "cabinet" in next(s for s in planted_corpus.sentences if s.id == named).words  # the NaN's own sentence
    assert record_writes and all(name.startswith("tnp-write") for name in record_writes)
    assert writer_threads() == [], "the writer thread must be shut down on an error"
    assert all(len(hp.fwd_hooks) == 0 for hp in bad.hook_dict.values() if hasattr(hp, "fwd_hooks"))
    ad = ModelAdapter(bad)
    assert ad.forward(ad.collate(ad.tokenize_sentences([["the", "dog"]]))) is not None


def test_spare_core_follows_torch_threads():
    before = torch.get_num_threads()
    cores = extraction._usable_cores()
    try:
        torch.set_num_threads(cores)
        assert not extraction.spare_core()
        torch.set_num_threads(1)
        assert extraction.spare_core() == (cores > 1)
    finally:
        torch.set_num_threads(before)
