"""The one place that names the rankers: ``make_ranker("linear", seed=0)`` and ``RANKERS``."""

from __future__ import annotations

from typing import Any

from ._base import NeuronRanker
from ._gaussian import Gaussian
from ._linear import L1, Linear
from ._univariate import AveragePrecision, FStatistic, MeanDifference, MutualInformation, Probeless, Random

__all__ = ["RANKERS", "make_ranker"]

RANKERS: dict[str, type[NeuronRanker]] = {
    "linear": Linear,
    "gaussian": Gaussian,
    "probeless": Probeless,
    "mean_difference": MeanDifference,
    "f_statistic": FStatistic,
    "mutual_information": MutualInformation,
    "l1": L1,
    "average_precision": AveragePrecision,
    "random": Random,
}



def make_ranker(name: str, **params: Any) -> NeuronRanker:
    """A ranker from its name, one of :data:`RANKERS` (``"linear"``, ``"gaussian"``, ``"probeless"``, ...), with
    ``params`` as its constructor's.

    Examples
    --------
    >>> make_ranker("mean_difference", k=5)
    MeanDifference(k=5)
    """
    key = name.strip().lower().replace("-", "_")
    if key not in RANKERS:
        raise ValueError(f"unknown ranker {name!r}; choose from {sorted(RANKERS)}")
    return RANKERS[key](**params)
