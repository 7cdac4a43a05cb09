"""Tests of transmri.evaluation.comparison: paired differences of methods."""

from __future__ import annotations

import pandas as pd
import pytest

from transmri.evaluation import paired_differences


def test_paired_differences_pairs_by_repeat() -> None:
    frame = pd.DataFrame(
        {
            "method": ["scratch"] * 3 + ["finetune"] * 3,
            "n_train": [10] * 6,
            "repeat": [0, 1, 2] * 2,
            "auc": [0.5, 0.6, 0.7, 0.6, 0.7, 0.9],
            "balanced_accuracy": [0.5] * 6,
        }
    )
    out = paired_differences(frame, reference="scratch")
    row = out.iloc[0]
    assert row["method"] == "finetune" and row["n_pairs"] == 3
    assert row["auc_diff"] == pytest.approx(0.4 / 3)
    assert row["auc_low"] < row["auc_diff"] < row["auc_high"]
    assert row["auc_wins"] == 1.0 and row["balanced_accuracy_diff"] == 0.0


def test_paired_differences_are_clipped_to_the_range_of_a_difference() -> None:
    # differences of +1.0, +0.1: the t-interval runs from -5 to +6, a difference of AUC in [-1, 1]
    frame = pd.DataFrame(
        {
            "method": ["scratch"] * 2 + ["finetune"] * 2,
            "n_train": [10] * 4,
            "repeat": [0, 1] * 2,
            "auc": [0.0, 0.5, 1.0, 0.6],
            "balanced_accuracy": [0.5] * 4,
        }
    )
    row = paired_differences(frame, reference="scratch").iloc[0]
    assert row["auc_diff"] == pytest.approx(0.55)
    assert (row["auc_low"], row["auc_high"]) == (-1.0, 1.0)


def test_paired_differences_pool_runs_on_several_test_sets() -> None:
    # two test sets, the same repeat numbers: each test set's repeat is its own pair
    frame = pd.DataFrame(
        {
            "method": ["scratch", "scratch", "probe", "probe"] * 2,
            "n_train": [10] * 8,
            "repeat": [0, 1, 0, 1] * 2,
            "test_subjects_hash": ["aaa"] * 4 + ["bbb"] * 4,
            "auc": [0.5, 0.6, 0.6, 0.7, 0.8, 0.8, 0.7, 0.7],
            "balanced_accuracy": [0.5] * 8,
        }
    )
    row = paired_differences(frame, reference="scratch").iloc[0]
    assert row["n_pairs"] == 4  # not 8 cross-test-set pairs
    assert row["auc_diff"] == pytest.approx((0.1 + 0.1 - 0.1 - 0.1) / 4)
    assert row["auc_wins"] == 0.5
