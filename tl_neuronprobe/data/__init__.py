"""Data: corpora (CoNLL-U, TSV, records, synthetic), word-aligned activations and their extraction."""

from . import synthetic, treebank  # noqa: E402,F401 - they register "synthetic" and "ud-english" for Corpus.load
