"""Interventions: edits as objects (:class:`Zero`, :class:`Mean`, :class:`Resample`, :class:`Translate`,
:class:`SetValues`; the registry :data:`EDITS`), bound to neurons as TransformerLens hooks
(:class:`Intervention`), and the readouts that measure an edit's effect (:mod:`.readouts`: :class:`Identity`,
:class:`Divergence`, :class:`Agreement`, :class:`EmbeddingDistance`, or any callable metric).

>>> import tl_neuronprobe as tnp
>>> model = tnp.models.load("planted")
>>> edit = tnp.interventions.Mean().bind(model, ["L1.N5"], means=[0.5])
>>> edit.neurons
[Neuron(layer=1, index=5, site='mlp.post')]
"""

from ._edits import (Compose, Intervention, UnitColumns, WordPositions, apply_edit, attribute_positions,  # noqa: F401
                     class_means, compose, group_by_hook, hook_of, scaled_alpha, token_labels, translation_delta, write_columns)
from ._specs import EDITS, Edit, Mean, Resample, SetValues, Translate, Zero, edit_from_name
from .readouts import Agreement, Divergence, EmbeddingDistance, Identity, ReadoutSpec

#: ``apply_edit``, ``group_by_hook``, ``UnitColumns``, ``token_labels``, ``translation_delta`` and ``write_columns``
#: stay importable for the sweep (:mod:`.sweep`) and attribution but are not public
__all__ = ["Edit", "Zero", "Mean", "Resample", "Translate", "SetValues", "EDITS", "edit_from_name", "Intervention",
           "Compose", "compose", "WordPositions", "attribute_positions", "class_means", "scaled_alpha",
           "ReadoutSpec", "Identity", "Divergence", "Agreement", "EmbeddingDistance"]
