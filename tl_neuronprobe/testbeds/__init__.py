"""Testbeds: models and corpora with planted ground truth (planted neurons, a sequence model, an agreement decoder)."""
