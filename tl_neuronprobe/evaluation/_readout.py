"""The used evaluation's readout: a named one, or the one the model's clean behaviour calls for (``auto``).

Not for the readouts themselves (:mod:`tl_neuronprobe.interventions.readouts`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..core.adapter import ModelAdapter
from ..interventions.readouts import AgreementReadout, DivergenceReadout, IdentityReadout, Output, Readout
from ._resolve import Resolved
from ._tables import Preparer, Tables

__all__ = ["READOUTS", "make_readout", "choose_readout"]

READOUTS = ("auto", "identity", "agreement", "divergence")


def make_readout(readout: "str | Readout", adapter: ModelAdapter, divergence: Sequence[str] | None,
                  agreement_attribute: str | None) -> Readout:
    if isinstance(readout, Readout):
        return readout
    if readout == "identity":
        return IdentityReadout()
    if readout == "agreement":
        return AgreementReadout(agreement_attribute)
    if readout == "divergence":
        if divergence is None:
            divergence = (("embedding_distance", "hidden_distance") if adapter.is_encoder
                          else ("kl", "embedding_distance", "hidden_distance"))
        return DivergenceReadout(divergence)
    raise ValueError(f"readout must be one of {READOUTS} or a Readout, got {readout!r}")


def _agreement_if_readable(adapter, resolved: Resolved, tables: Tables, batches, prepare, agreement_attribute):
    """The agreement readout and its sentences if the clean decoder agrees on >= 60% of the verbs, else None."""
    ro = AgreementReadout(agreement_attribute)
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


def choose_readout(readout: "str | Readout", resolved: Resolved, tables: Tables, batches: list[list[int]],
                   prepare: Preparer, divergence: Sequence[str] | None = None,
                   agreement_attribute: str | None = None) -> tuple[Readout, np.ndarray]:
    """The readout, set up on the evaluated corpus, and per sentence whether it has units to read.

    ``auto``: identity if the clean model predicts its own input at the attribute words (>= 50% on the first
    batch), else agreement for a decoder with readable verbs (>= 60% clean agreement), else divergence.
    """
    adapter = resolved.adapter
    setup = (adapter, resolved.corpus, resolved.attribute, tables.carries, tables.tokenized)
    if not (isinstance(readout, str) and readout == "auto"):
        ro = make_readout(readout, adapter, divergence, agreement_attribute)
        return ro, ro.setup(*setup)
    prep = prepare(batches[0])
    with torch.inference_mode():
        out = Output(adapter.forward(prep.batch), None)
    if IdentityReadout().clean_accuracy(out, prep.batch, prep.word_mask) >= 0.5:
        ro = IdentityReadout()
        return ro, ro.setup(*setup)
    if not adapter.is_encoder:
        found = _agreement_if_readable(adapter, resolved, tables, batches, prepare, agreement_attribute)
        if found is not None:
            return found
    ro = make_readout("divergence", adapter, divergence, agreement_attribute)
    return ro, ro.setup(*setup)


