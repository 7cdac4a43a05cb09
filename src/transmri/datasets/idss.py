"""The iDSS cohort: a small clinical set of T1 scans, AD vs cerebrovascular disease.

In the original study the iDSS (ICA iDSS) cohort gave 40 scans (17 AD, 23 CVD)
and served as a transfer-learning target. It has no public layout, so it is
read from a plain CSV with one row per scan (path, subject, diagnosis).

With 40 scans a 10 % test set holds 4 scans: one error moves accuracy by 25
points, so a single split says nothing. Evaluate it with stratified,
subject-grouped k-fold cross-validation (5 folds, repeated where time allows)
and report the spread over folds: see :data:`IDSS_EVALUATION` and
``transmri.data.kfold_splits``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from transmri.data import ScanTable
from transmri.datasets._common import label_names, report

__all__ = ["IDSS_EVALUATION", "IDSS_FOLDS", "get_idss"]

#: Recommended evaluation for iDSS: k-fold cross-validation, not a hold-out split.
IDSS_EVALUATION = "kfold"
#: Number of folds recommended for iDSS (5 folds of about 8 scans each).
IDSS_FOLDS = 5


def get_idss(
    csv: str | os.PathLike[str],
    *,
    path_col: str = "path",
    subject_col: str = "subject",
    label_col: str = "diagnosis",
    labels: str | Sequence[str] | None = ("AD", "CVD"),
    label_map: Mapping[str, str] | None = None,
    mask_col: str | None = None,
    root: str | os.PathLike[str] | None = None,
) -> ScanTable:
    """Read the iDSS cohort from a CSV as a :class:`ScanTable`.

    Args:
        csv: the table, one row per scan (comma, semicolon or tab separated).
        path_col: column with the scan path (relative paths are relative to
            ``root``, default the CSV's folder).
        subject_col: column with the subject id.
        label_col: column with the diagnosis.
        labels: diagnoses to keep (default AD vs CVD); other rows and rows
            without a diagnosis are recorded as skipped. ``None`` keeps all.
        label_map: renames diagnoses first, e.g. ``{"vascular": "CVD"}``.
        mask_col: optional column with a per-scan brain mask.
        root: folder that relative paths are relative to.

    Raises:
        FileNotFoundError: the CSV does not exist.
        DataFormatError: a missing column (the columns found are listed), a
            missing scan file, an empty subject, a label asked for that never
            occurs.

    Example:
        >>> table = get_idss("idss/scans.csv")  # doctest: +SKIP
        >>> table.label_counts()  # doctest: +SKIP
        {'AD': 17, 'CVD': 23}
    """
    table = ScanTable.from_csv(
        csv,
        path_col=path_col,
        subject_col=subject_col,
        label_col=label_col,
        mask_col=mask_col,
        root=root,
        label_map=label_map,
    )
    if labels is not None:
        table = table.keep_labels(label_names(labels) or [])
    report(table, adapter="get_idss")
    return table
