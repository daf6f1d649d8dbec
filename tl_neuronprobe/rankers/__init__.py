"""Rankers: scikit-learn selectors that order neurons by how much they encode an attribute."""

from ._base import NeuronRanker
from ._forward import forward_selection
from ._gaussian import Gaussian
from ._linear import L1, Linear, weight_mass_order
from ._linear_search import LambdaSearch, MinimalSubset, minimal_subset, search_lambdas
from ._out_of_core import fit_out_of_core
from ._registry import RANKERS, make_ranker
from ._univariate import AveragePrecision, FStatistic, MeanDifference, MutualInformation, Probeless, Random

__all__ = [
    "NeuronRanker", "Linear", "Gaussian", "Probeless", "MeanDifference", "FStatistic", "MutualInformation",
    "L1", "AveragePrecision", "Random", "MinimalSubset", "LambdaSearch", "weight_mass_order", "forward_selection",
    "search_lambdas", "minimal_subset", "make_ranker", "RANKERS", "fit_out_of_core",
]
