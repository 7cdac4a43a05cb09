"""Tests of transmri.datasets.idss."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import write_nifti
from transmri.datasets import IDSS_EVALUATION, IDSS_FOLDS, get_idss
from transmri.errors import DataFormatError


@pytest.fixture
def idss_csv(tmp_path: Path) -> Path:
    rows = []
    for i, diagnosis in enumerate(["AD", "CVD", "AD", "CVD", "MCI", ""]):
        write_nifti(tmp_path / "scans" / f"p{i}.nii.gz", np.ones((4, 4, 4), dtype=np.float32))
        rows.append({"path": f"scans/p{i}.nii.gz", "subject": f"p{i}", "diagnosis": diagnosis})
    csv = tmp_path / "idss.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    return csv


def test_reads_ad_vs_cvd_and_records_the_rest(idss_csv: Path) -> None:
    with pytest.warns(UserWarning, match=r"kept 4 scans, skipped 2"):
        table = get_idss(idss_csv)
    assert table.label_counts() == {"AD": 2, "CVD": 2}
    assert sorted(table.skipped["reason"]) == ["label 'MCI' not kept", "no label"]
    assert all(Path(p).is_absolute() for p in table.paths)


def test_kfold_is_the_recommended_evaluation() -> None:
    assert IDSS_EVALUATION == "kfold"
    assert IDSS_FOLDS == 5


def test_missing_label_column_lists_columns(idss_csv: Path) -> None:
    with pytest.raises(
        DataFormatError,
        match=r"missing column\(s\) \['dx'\]; columns found: "
        r"\['path', 'subject', 'diagnosis'\]",
    ):
        get_idss(idss_csv, label_col="dx")


def test_missing_scan_file_names_the_row(idss_csv: Path) -> None:
    (idss_csv.parent / "scans" / "p1.nii.gz").unlink()
    with pytest.raises(DataFormatError, match=r"row 2, column 'path': file not found"):
        get_idss(idss_csv)
