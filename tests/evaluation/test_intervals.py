"""Tests of transmri.evaluation.intervals: bounded, proportion and count intervals."""

from __future__ import annotations

import math

import pytest

from transmri.errors import ConfigError
from transmri.evaluation.intervals import (
    as_flags,
    clip_interval,
    difference_range,
    mean_interval,
    metric_range,
    wilson_interval,
)


def test_wilson_interval_stays_in_range_at_the_edges() -> None:
    assert wilson_interval(2, 3) == pytest.approx((0.2077, 0.9385), abs=1e-4)
    low, high = wilson_interval(3, 3)
    assert high == 1.0 and 0.4 < low < 0.5  # not degenerate at 3 of 3
    low, high = wilson_interval(0, 5)
    assert low == 0.0 and 0.4 < high < 0.5
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
    with pytest.raises(ConfigError, match="ci: expected"):
        wilson_interval(1, 2, ci=1.5)


def test_mean_interval_clips_bounded_metrics_only() -> None:
    mean, low, high = mean_interval([0.88, 0.99, 1.0], metric="auc")
    assert mean == pytest.approx(0.9567, abs=1e-4) and high == 1.0 and low < mean
    assert mean_interval([0.88, 0.99, 1.0], metric="seconds")[2] > 1.1  # unbounded
    assert math.isnan(mean_interval([0.7], metric="auc")[1])
    assert all(math.isnan(v) for v in mean_interval([], metric="auc"))


def test_ranges_and_flags() -> None:
    assert metric_range("auc") == (0.0, 1.0) and metric_range("loss") is None
    assert difference_range("balanced_accuracy") == (-1.0, 1.0)
    assert clip_interval(-1.3, 0.2, (-1.0, 1.0)) == (-1.0, 0.2)
    low, high = clip_interval(math.nan, 2.0, (0.0, 1.0))
    assert math.isnan(low) and high == 1.0
    assert as_flags([True, "False", "true", 0, 1.0, "1"]) == [True, False, True, False, True, True]
