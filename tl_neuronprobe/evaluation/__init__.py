"""Evaluation: what the rankings say, against held-out data and against the model. A namespace package: import
from its modules (the top level re-exports the stage functions, their configs and results).

Public, by module:

- :mod:`.encoded`: ``evaluate_encoded(acts, attribute, rankers, EncodedConfig(...))`` -> ``EncodedResult``
  (probe accuracy on each ranker's top-k neurons, with controls; ``.rankings``, ``.plot()``,
  ``.layer_distribution()``, ``.ranker_agreement()``);
- :mod:`.used`: ``evaluate_used(model, corpus, attribute, rankings, UsedConfig(...))`` -> ``UsedResult`` (the
  model's own predictions under edits of the top-k, bottom-k and random-k neurons), ``UsedConfig``,
  ``Baselines``, ``UsedFit``, ``UsedBatching``;
- :mod:`.attribution`: ``attribute_used(model, corpus, attribute, AttributionConfig(...))`` -> ``Attribution``
  (every neuron's estimated effect on a readout by attribution patching, checked by exact single-neuron
  patching; its ranking goes wherever an encoded ranking goes), ``Verify``, ``exact_effects``;
- :mod:`.compare`: ``compare_encoded_used(encoded, used, CompareConfig(...))`` -> ``Comparison``; neuron by neuron,
  ``compare_per_neuron(encoded, attribution, NeuronCompareConfig(...))`` -> ``NeuronComparison``;
- :mod:`.results`: ``TableResult`` (the base of the three results: ``save`` / ``load`` / ``to_frame`` / ``plot``)
  and ``load_result(path)``;
- :mod:`.controls`: ``control_labels`` (Hewitt & Liang control tasks) and ``selectivity``;
- :mod:`.stats`: bootstrap intervals; :mod:`.plots`: the shared curve style.
"""
