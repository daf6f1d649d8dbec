"""Core building blocks every stage shares. A namespace package: import from its modules.

Public, by module:

- :mod:`.neurons`: ``Neuron`` (``L3.N1207``, its hook name), ``parse_neurons``, ``SITES`` (these three also at the
  top level), ``hook_name``;
- :mod:`.adapter`: ``ModelAdapter`` (the one place that knows HookedTransformer vs TransformerBridge, encoder vs
  decoder; ``forward(batch, fwd_hooks, stop_at_layer=...)``), ``LongSentenceError``;
- :mod:`.config`: ``Config`` (the base of every stage config), ``write_summary`` / ``read_summary``;
- :mod:`.distributed`: ``setup``, ``rank``, ``world_size``, ``is_main``, ``local_device``, ``gather``,
  ``barrier``, ``local`` (for scripts launched with ``torchrun``; the stages call them themselves).

:mod:`.hooks` (the capture helper), :mod:`.validation` (input checks) and :mod:`.plotting` are for the
package's own modules.
"""
