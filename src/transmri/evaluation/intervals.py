"""Intervals over repeats that respect what a column is: a bounded score, a proportion, a count.

A Student t interval of a mean is right for a score such as AUC, but it can
run past the score's range (0.94 [0.86, 1.01]): :func:`mean_interval` clips
it to :func:`metric_range`. A proportion (``converged``: how many repeats
converged) gets a Wilson score interval, which stays in [0, 1] and is not
degenerate at 0 or 1 of n. A count or a size (``n_test``, ``n_fit``) is a
design fact, not an estimate, and gets no interval.

Example:
    >>> low, high = wilson_interval(2, 3)
    >>> round(low, 3), round(high, 3)
    (0.208, 0.939)
    >>> mean_interval([0.9, 0.99, 1.0], metric="auc")[2]
    1.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from scipy import stats

from transmri._validation import check_fraction

__all__ = [
    "BOUNDED_METRICS",
    "COUNT_COLUMNS",
    "PROPORTION_COLUMNS",
    "as_flags",
    "clip_interval",
    "difference_range",
    "mean_interval",
    "metric_range",
    "wilson_interval",
]

#: Scores that live in [0, 1]: their intervals are clipped to it.
BOUNDED_METRICS: frozenset[str] = frozenset(
    {"auc", "balanced_accuracy", "accuracy", "sensitivity", "specificity", "f1", "ssim"}
)
#: Columns holding one yes/no per repeat: summarised as a share with a Wilson interval.
PROPORTION_COLUMNS: frozenset[str] = frozenset({"converged"})
#: Columns holding counts or sizes: summarised without an interval.
COUNT_COLUMNS: frozenset[str] = frozenset(
    {"n_test", "n_fit", "n_val", "n_train", "n_pairs", "n_repeats", "n_samples", "n_groups"}
)


def metric_range(metric: str) -> tuple[float, float] | None:
    """The range a metric's values (and so its interval) can take; ``None`` if unbounded."""
    return (0.0, 1.0) if metric in BOUNDED_METRICS else None


def difference_range(metric: str) -> tuple[float, float] | None:
    """The range of a difference of two values of ``metric``; ``None`` if unbounded."""
    bounds = metric_range(metric)
    return None if bounds is None else (bounds[0] - bounds[1], bounds[1] - bounds[0])


def clip_interval(
    low: float, high: float, bounds: tuple[float, float] | None
) -> tuple[float, float]:
    """``(low, high)`` clipped to ``bounds`` (``nan`` stays ``nan``; ``None`` clips nothing)."""
    if bounds is None:
        return low, high
    lo, hi = bounds
    return (
        low if math.isnan(low) else min(max(low, lo), hi),
        high if math.isnan(high) else min(max(high, lo), hi),
    )


def mean_interval(
    values: npt.ArrayLike, *, metric: str = "", ci: float = 0.95
) -> tuple[float, float, float]:
    """Mean and Student t interval of the mean, clipped to the metric's range.

    Args:
        values: One value per repeat; ``nan`` values are dropped.
        metric: The column's name; bounded metrics (:data:`BOUNDED_METRICS`) are clipped.
        ci: Coverage of the interval.

    Returns:
        ``(mean, low, high)``; the interval is ``nan`` with fewer than two values.
    """
    ci = check_fraction("ci", ci)
    arr = np.asarray(values, dtype=float)
    arr = arr[~np.isnan(arr)]
    if not arr.size:
        return math.nan, math.nan, math.nan
    mean = float(arr.mean())
    if arr.size < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + ci / 2, arr.size - 1) * stats.sem(arr))
    low, high = clip_interval(mean - half, mean + half, metric_range(metric))
    return mean, low, high


def wilson_interval(successes: int, n: int, *, ci: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``successes / n``; ``nan`` for ``n == 0``."""
    ci = check_fraction("ci", ci)
    if n <= 0:
        return math.nan, math.nan
    z = float(stats.norm.ppf(0.5 + ci / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def as_flags(values: Sequence[object]) -> list[bool]:
    """Yes/no values as written to CSV (``True``, ``"true"``, ``1``) as booleans."""
    return [str(v).strip().lower() in {"true", "1", "1.0", "yes"} for v in values]
