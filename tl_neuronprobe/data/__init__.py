"""Data: corpora, word-aligned activations and their extraction. A namespace package: import from its modules.

Public, by module (the top level re-exports the first four):

- :mod:`.corpus`: ``Corpus`` (``Corpus.load("ud-english:N" | "synthetic:N" | path)``, ``from_conllu``,
  ``from_tsv``, ``from_records``), ``Sentence``, ``CorpusError``, ``register_source``;
- :mod:`.activations`: ``Activations`` (``[n_words, n_neurons]``, ``save`` / ``load`` memory-mapped,
  ``dataset(attribute)``, ``select``, ``from_array``);
- :mod:`.extraction`: ``extract(model, corpus, ExtractConfig(...), out_dir=None, device=None, progress=True)``,
  ``ExtractConfig``, ``AGGREGATIONS``, ``NonFiniteActivationError``, ``LongSentenceError``;
- :mod:`.chunks`: ``ActivationChunks`` and ``chunk_rows_for`` (row chunks of a saved folder, for out-of-core fits);
- :mod:`.synthetic` (``Corpus.synthetic``) and :mod:`.treebank` (the shipped UD English slice).

``_shards`` (the on-disk layout of streamed and multi-process extraction) is private.
"""

from . import synthetic, treebank  # noqa: E402,F401 - they register "synthetic" and "ud-english" for Corpus.load
