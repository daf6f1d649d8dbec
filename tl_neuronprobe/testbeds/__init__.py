"""Testbeds: models and corpora with planted ground truth (planted neurons, a sequence model, an agreement decoder).

A namespace package: import from its modules (:mod:`.planted`, :mod:`.sequence`, :mod:`.agreement`,
:mod:`.descriptions`); :mod:`tl_neuronprobe.testing` (``tnp.testing``) re-exports what tests and examples use.
"""
