"""A neuron browser: every analysis of a run as one static HTML site (overview and neuron pages), opened from disk.

``tnp.report(results, out_dir)`` takes a results folder (as ``tl-neuronprobe demo`` writes it) or result objects;
``run_report(results_dir, out_dir)`` is what the ``tl-neuronprobe report`` command calls.
"""

from ._collect import ReportData, collect, is_activations_folder
from ._site import report, run_report, write_site

__all__ = ["ReportData", "collect", "is_activations_folder", "report", "run_report", "write_site"]
