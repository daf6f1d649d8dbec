"""Data: corpora (CoNLL-U, TSV, records, synthetic), word-aligned activations and their extraction."""
