"""Rankers: scikit-learn selectors that order neurons by how much they encode an attribute.

Every ranker fits in memory (``fit(X, y, groups)``) or from row chunks (``fit_chunks(chunks)``);
``make_ranker(name, **params)`` builds one by its name in ``RANKERS``.
"""

from ..probes import SoftmaxTrainer
from ._base import NeuronRanker
from ._forward import forward_selection
from ._gaussian import Gaussian, GaussianScan
from ._linear import L1, Linear, weight_mass_order
from ._linear_search import LinearCV, MinimalSubset, minimal_subset
from ._out_of_core import fit_out_of_core
from ._registry import RANKERS, make_ranker
from ._univariate import AveragePrecision, FStatistic, MeanDifference, MutualInformation, Probeless, Random

__all__ = [
    "NeuronRanker", "Linear", "LinearCV", "SoftmaxTrainer", "Gaussian", "GaussianScan", "Probeless",
    "MeanDifference", "FStatistic", "MutualInformation", "L1", "AveragePrecision", "Random", "MinimalSubset",
    "weight_mass_order", "forward_selection", "minimal_subset", "make_ranker", "RANKERS", "fit_out_of_core",
]
