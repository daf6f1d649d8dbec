"""scikit-learn's own estimator checks over every ranker and probe."""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

import tl_neuronprobe.rankers as R
from tl_neuronprobe.probes import GaussianProbe, LogisticProbes

SMALL = {"gaussian": dict(max_k=3), "linear": dict(trainer=R.SoftmaxTrainer(max_steps=2)), "l1": dict(max_steps=2)}
ESTIMATORS = [R.make_ranker(name, **SMALL.get(name, {})) for name in R.RANKERS] + [
    R.LinearCV(R.Linear(trainer=R.SoftmaxTrainer(max_steps=2)), grid=[(0.0, 0.0), (1e-3, 0.0)]),
    LogisticProbes(), GaussianProbe()]


POOR_SCORE = ("the probe's defaults (Adam, lr 3e-3, batches of 256, early stopping on a 10% dev split) are "
              "for thousands of words; on the check's 300 blobs it stops at 0.83 training accuracy, the bar is > 0.83")


def expected_failed_checks(estimator) -> dict[str, str]:
    """The checks known to fail, each with its reason (scikit-learn 1.9 runs them as xfail)."""
    if isinstance(estimator, LogisticProbes):
        return {"check_classifiers_train": POOR_SCORE}
    return {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible(estimator, check):
    check(estimator)
