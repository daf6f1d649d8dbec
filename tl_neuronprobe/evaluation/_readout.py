"""The used evaluation's readout: the one configured, or the one the model's clean behaviour calls for (None).

Not for the readouts themselves (:mod:`tl_neuronprobe.interventions.readouts`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..interventions.readouts import Agreement, Divergence, IdentityReadout, Output, Readout, build_readout
from ._resolve import Resolved
from ._tables import Preparer, Tables

__all__ = ["choose_readout"]


def _agreement_if_readable(adapter, resolved: Resolved, tables: Tables, batches, prepare):
    """The agreement readout and its sentences if the clean decoder agrees on >= 60% of the verbs, else None."""
    ro = Agreement().build(adapter)
    try:
        has = ro.setup(adapter, resolved.corpus, resolved.attribute, tables.carries, tables.tokenized)
    except (ValueError, KeyError):
        return None
    first = [i for b in batches for i in b if has[i]][:64]
    if not first:
        return None
    prep = prepare(first)
    plan_ = ro.plan(prep.batch, first, prep.word_mask, prep.mask, record=False)
    with torch.inference_mode():
        acc = ro.clean_accuracy(Output(adapter.forward(prep.batch), None), plan_)
    return (ro, has) if acc >= 0.6 else None


def choose_readout(readout: Any, resolved: Resolved, tables: Tables, batches: list[list[int]],
                   prepare: Preparer) -> tuple[Readout, np.ndarray]:
    """The readout, set up on the evaluated corpus, and per sentence whether it has units to read.

    ``readout``: a readout object (``Identity()``, ``Agreement(...)``, ``Divergence(...)``,
    ``EmbeddingDistance()``), a runtime :class:`Readout`, a callable metric, or None: identity if the clean
    model predicts its own input at the attribute words (>= 50% on the first batch), else agreement for a decoder
    with readable verbs (>= 60% clean agreement), else divergence.
    """
    adapter = resolved.adapter
    setup = (adapter, resolved.corpus, resolved.attribute, tables.carries, tables.tokenized)
    if readout is not None:
        ro = build_readout(readout, adapter)
        return ro, ro.setup(*setup)
    prep = prepare(batches[0])
    with torch.inference_mode():
        out = Output(adapter.forward(prep.batch), None)
    if IdentityReadout().clean_accuracy(out, prep.batch, prep.word_mask) >= 0.5:
        ro = IdentityReadout()
        return ro, ro.setup(*setup)
    if not adapter.is_encoder:
        found = _agreement_if_readable(adapter, resolved, tables, batches, prepare)
        if found is not None:
            return found
    ro = Divergence().build(adapter)
    return ro, ro.setup(*setup)
