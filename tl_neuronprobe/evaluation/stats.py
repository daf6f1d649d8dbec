"""Statistics over used tables: sentence-level bootstrap intervals and effects in excess of random neurons.

Not for computing the effects themselves (the sweep and the readouts do that).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["bootstrap_means", "excess_over_random"]


def bootstrap_means(values: np.ndarray, unit_sentence: np.ndarray, n_bootstrap: int = 1000, ci: float = 0.95,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Means of ``values [rows, n_units]`` over units, and percentile CIs resampling *sentences*.

    Every row is resampled with the same sentence draws (paired), so differences between rows are comparable.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != len(unit_sentence):
        raise ValueError(f"values {values.shape} do not match {len(unit_sentence)} units")
    if values.shape[1] == 0:
        nan = np.full(values.shape[0], np.nan)
        return nan, nan.copy(), nan.copy()
    point = values.mean(1)
    if n_bootstrap <= 0:
        return point, np.full_like(point, np.nan), np.full_like(point, np.nan)
    _, sent = np.unique(unit_sentence, return_inverse=True)
    n_s = int(sent.max()) + 1
    sums = np.zeros((values.shape[0], n_s))
    np.add.at(sums.T, sent, values.T)
    counts = np.bincount(sent, minlength=n_s).astype(np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n_s, np.full(n_s, 1.0 / n_s), size=n_bootstrap).astype(np.float64)  # [B, n_s]
    stats = (draws @ sums.T) / np.maximum(draws @ counts, 1e-12)[:, None]  # [B, rows]
    lo, hi = np.percentile(stats, [100 * (1 - ci) / 2, 100 * (1 + ci) / 2], axis=0)
    return point, lo, hi


def excess_over_random(table: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """Per (ranking, selection, k): value minus the random-k value of the same ranking and k."""
    t = table if metric is None else table[table["metric"] == metric]
    rand = t[t["selection"] == "random"][["ranking", "k", "metric", "value"]].rename(columns={"value": "random"})
    out = t[t["selection"] != "random"].merge(rand, on=["ranking", "k", "metric"], how="left")
    out["excess"] = out["value"] - out["random"]
    return out
