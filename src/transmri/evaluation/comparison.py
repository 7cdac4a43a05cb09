"""Paired comparison of methods measured on the same draws (``comparison.csv`` rows).

:func:`paired_differences` reads rows of method, ``n_train``, repeat and
metrics, as the transfer benchmark (:mod:`transmri.transfer`) writes them;
the report and the benchmarks call it on such a table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd
from scipy import stats

from transmri._validation import check_fraction
from transmri.errors import DataFormatError
from transmri.evaluation.intervals import clip_interval, difference_range

__all__ = ["paired_differences"]


def paired_differences(
    frame: pd.DataFrame,
    *,
    reference: str,
    metrics: Sequence[str] = ("auc", "balanced_accuracy"),
    ci: float = 0.95,
) -> pd.DataFrame:
    """Per method and ``N``: mean difference to ``reference`` over repeats, paired by repeat.

    Within a repeat both methods used the same training and test subjects, so
    the difference removes the draw's luck. Rows are paired on ``n_train``,
    ``repeat`` and, when the column is there, ``test_subjects_hash``: the
    ``comparison.csv`` files of runs on different test sets can be
    concatenated and compared at once (each test set's repeats are pairs).
    The interval is a Student t interval of the mean difference over the
    pairs (``nan`` for one pair): it covers the variation between training
    draws (and between test sets, when several are pooled), not the sampling
    of one fixed test set. It is clipped to the range a difference of the
    metric can take (``[-1, 1]`` for AUC).

    Returns:
        Columns ``method, reference, n_train, n_pairs`` and per metric
        ``<m>_diff, <m>_low, <m>_high, <m>_wins`` (share of repeats where the
        method scored higher).
    """
    check_fraction("ci", ci)
    keys = ["method", "n_train", "repeat"]
    missing = [c for c in [*keys, *metrics] if c not in frame.columns]
    if missing:
        raise DataFormatError(f"comparison: missing column(s) {missing}")
    # Pooled runs of several test sets pair within a test set too.
    pair = ["n_train", "repeat", *(["test_subjects_hash"] if "test_subjects_hash" in frame else [])]
    ref = frame.loc[frame["method"] == reference, [*pair, *metrics]]
    rows = []
    for (method, n), group in frame[frame["method"] != reference].groupby(["method", "n_train"]):
        joined = group.merge(ref, on=pair, suffixes=("", "_ref"))
        row: dict[str, Any] = {"method": method, "reference": reference, "n_train": n}
        for m in metrics:
            d = (joined[m] - joined[f"{m}_ref"]).dropna().to_numpy(dtype=float)
            row["n_pairs"] = int(d.size)
            mean = float(d.mean()) if d.size else math.nan
            half = stats.t.ppf(0.5 + ci / 2, d.size - 1) * stats.sem(d) if d.size > 1 else math.nan
            low, high = clip_interval(mean - half, mean + half, difference_range(m))
            row.update({f"{m}_diff": mean, f"{m}_low": low, f"{m}_high": high})
            row[f"{m}_wins"] = float((d > 0).mean()) if d.size else math.nan
        rows.append(row)
    return pd.DataFrame(rows)
