"""Tests of transmri.data.table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from transmri import DataFormatError, ScanTable


def test_from_csv_resolves_relative_paths_and_keeps_extra_columns(make_cohort) -> None:
    csv = make_cohort(n=6)
    table = ScanTable.from_csv(csv, mask_col="mask")
    assert len(table) == 6
    assert all(Path(p).is_absolute() and Path(p).exists() for p in table.paths)
    assert all(m is not None and Path(m).exists() for m in table.masks)
    assert table.labels == ["AD", "CN"]
    assert {"age", "sex"} <= set(table.frame.columns)
    assert table.frame["row"].tolist() == [1, 2, 3, 4, 5, 6]


def test_missing_column_lists_columns_found(make_cohort) -> None:
    csv = make_cohort(n=4)
    with pytest.raises(DataFormatError, match=r"missing column\(s\) \['DX'\].*columns found"):
        ScanTable.from_csv(csv, label_col="DX")


def test_missing_file_names_row_and_column(make_cohort) -> None:
    csv = make_cohort(n=4)
    frame = pd.read_csv(csv)
    frame.loc[2, "path"] = "scans/nope.nii.gz"
    frame.to_csv(csv, index=False)
    with pytest.raises(DataFormatError, match=r"scans.csv, row 3, column 'path': file not found"):
        ScanTable.from_csv(csv)


def test_duplicate_rows_rejected(make_cohort) -> None:
    csv = make_cohort(n=4)
    frame = pd.read_csv(csv)
    frame = pd.concat([frame, frame.iloc[[0]]])
    frame.to_csv(csv, index=False)
    with pytest.raises(DataFormatError, match=r"row 5.*duplicate scan.*first listed in row 1"):
        ScanTable.from_csv(csv)


def test_label_map_and_keep_labels_record_skipped(make_cohort) -> None:
    csv = make_cohort(n=6)
    table = ScanTable.from_csv(csv, label_map={"AD": "Dementia"}, keep_labels=["Dementia"])
    assert table.labels == ["Dementia"]
    assert len(table) == 3
    assert len(table.skipped) == 3
    assert table.skipped["reason"].str.contains("not kept").all()


def test_keep_unknown_label_is_an_error(make_cohort) -> None:
    csv = make_cohort(n=4)
    with pytest.raises(DataFormatError, match=r"\['Dementa'\] asked for but not found"):
        ScanTable.from_csv(csv, keep_labels=["Dementa"])


def test_check_labels_names_row(make_cohort) -> None:
    table = ScanTable.from_csv(make_cohort(n=4))
    with pytest.raises(DataFormatError, match=r"row 2, column 'label': unknown label 'AD'"):
        table.check_labels(["CN"])


def test_semicolon_csv_with_bom(make_cohort) -> None:
    csv = make_cohort(n=4)
    frame = pd.read_csv(csv)
    text = frame.to_csv(index=False, sep=";")
    csv.write_bytes(b"\xef\xbb\xbf" + text.encode())
    table = ScanTable.from_csv(csv)
    assert len(table) == 4


@pytest.mark.parametrize("content", ["", "   \n"])
def test_empty_csv(tmp_path: Path, content: str) -> None:
    csv = tmp_path / "empty.csv"
    csv.write_text(content)
    with pytest.raises(DataFormatError, match="empty"):
        ScanTable.from_csv(csv)


def test_missing_csv(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="scan table not found"):
        ScanTable.from_csv(tmp_path / "nope.csv")


def test_unlabelled_rows_kept_and_required_labels_raise(make_cohort) -> None:
    csv = make_cohort(n=4)
    frame = pd.read_csv(csv)
    frame.loc[1, "label"] = ""
    frame.to_csv(csv, index=False)
    table = ScanTable.from_csv(csv)
    assert not table.is_labelled
    with pytest.raises(DataFormatError, match=r"row 2, column 'label': missing label"):
        table.require_labels()


def test_summary_counts_skipped_rows_by_kind_of_reason(make_cohort) -> None:
    table = ScanTable.from_csv(make_cohort(n=4))
    skipped = pd.DataFrame(
        {
            "item": ["a", "b", "c"],
            "reason": [
                "age 48.1 between young_max 40 and old_min 60",
                "age 52.53 between young_max 40 and old_min 60",
                "no demographics row",
            ],
        }
    )
    summary = table.with_frame(table.frame, skipped=skipped).summary()
    assert "skipped 3" in summary
    assert "'age 48.1..52.53 between young_max 40 and old_min 60': 2" in summary
    assert "'no demographics row': 1" in summary


def test_folded_reasons_keep_their_digits() -> None:
    from transmri.data.table import fold_reasons

    folded = fold_reasons(
        [
            "description 'AX T2 FSE' is a T2 scan, not T1",
            "description 'T2W TSE' is a T2 scan, not T1",
            "no row in collection CSV for image I1001",
            "no row in collection CSV for image I1300",
            "run 2 not kept",
        ]
    )
    assert folded == {
        "description '...' is a T2 scan, not T1": 2,
        "no row in collection CSV for image I1001..1300": 2,
        "run 2 not kept": 1,
    }
