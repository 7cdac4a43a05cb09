"""Tests of transmri.datasets.bids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import write_nifti
from transmri.datasets import from_bids
from transmri.errors import ConfigError, DataFormatError


def scan(root: Path, relative: str) -> Path:
    return write_nifti(root / relative, np.ones((4, 4, 4), dtype=np.float32))


@pytest.fixture
def bids(tmp_path: Path) -> Path:
    """sub-01: two sessions; sub-02: two runs; sub-03: label n/a; sub-04: no scan;
    sub-05: a scan but no participants row; plus a T2w and a derivative file."""
    root = tmp_path / "ds"
    (root).mkdir()
    (root / "participants.tsv").write_text(
        "participant_id\tdiagnosis\tage\tsex\n"
        "sub-01\tAD\t71\tF\n"
        "sub-02\tCN\t68\tM\n"
        "sub-03\tn/a\t70\tM\n"
        "sub-04\tCN\t66\tF\n"
    )
    scan(root, "sub-01/ses-bl/anat/sub-01_ses-bl_T1w.nii.gz")
    scan(root, "sub-01/ses-m12/anat/sub-01_ses-m12_T1w.nii.gz")
    scan(root, "sub-02/anat/sub-02_run-1_T1w.nii.gz")
    scan(root, "sub-02/anat/sub-02_run-2_T1w.nii.gz")
    scan(root, "sub-02/anat/sub-02_T2w.nii.gz")
    scan(root, "sub-03/anat/sub-03_acq-mprage_T1w.nii")
    scan(root, "sub-05/anat/sub-05_T1w.nii.gz")
    (root / "sub-01" / "ses-bl" / "anat" / "sub-01_ses-bl_T1w.json").write_text("{}")
    return root


def test_reads_scans_and_participants_columns(bids: Path) -> None:
    with pytest.warns(UserWarning, match=r"kept 4 scans, skipped 3"):
        table = from_bids(bids, label_col="diagnosis")
    frame = table.frame
    assert frame["subject"].tolist() == ["sub-01", "sub-01", "sub-02", "sub-02"]
    assert frame["session"].tolist() == ["ses-bl", "ses-m12", "", ""]
    assert frame["run"].isna().tolist() == [True, True, False, False]
    assert frame["run"].iloc[2:].tolist() == [1, 2]
    assert frame["label"].tolist() == ["AD", "AD", "CN", "CN"]
    assert {"participant_id", "diagnosis", "age", "sex"} <= set(frame.columns)
    assert frame.loc[frame["subject"] == "sub-01", "row"].tolist() == [1, 1]
    skipped = dict(zip(table.skipped["reason"], table.skipped["item"]))
    assert skipped["no participants.tsv row"].endswith("sub-05_T1w.nii.gz")
    assert skipped["empty label in column 'diagnosis'"].endswith("sub-03_acq-mprage_T1w.nii")
    assert skipped["no scan"] == "participants.tsv row 4 (sub-04)"


def test_runs_first_and_last(bids: Path) -> None:
    with pytest.warns(UserWarning):
        first = from_bids(bids, label_col="diagnosis", runs="first")
    with pytest.warns(UserWarning):
        last = from_bids(bids, label_col="diagnosis", runs="last")
    sub02 = first.frame[first.frame["subject"] == "sub-02"]
    assert sub02["run"].tolist() == [1]
    assert last.frame[last.frame["subject"] == "sub-02"]["run"].tolist() == [2]
    assert "run 2 not kept (runs='first')" in first.skipped["reason"].tolist()
    # Sessions are not runs: both sessions of sub-01 stay.
    assert (first.frame["subject"] == "sub-01").sum() == 2


def test_sessions_filter(bids: Path) -> None:
    with pytest.warns(UserWarning):
        table = from_bids(bids, label_col="diagnosis", sessions=["bl"])
    assert table.frame["session"].tolist() == ["ses-bl"]
    assert "session 'ses-m12' not selected" in table.skipped["reason"].tolist()


def test_suffix_t2w(bids: Path) -> None:
    with pytest.warns(UserWarning):
        table = from_bids(bids, label_col="diagnosis", suffix="T2w")
    assert [Path(p).name for p in table.paths] == ["sub-02_T2w.nii.gz"]


def test_mask_pattern(bids: Path) -> None:
    mask = scan(bids, "derivatives/masks/sub-01/ses-bl/anat/sub-01_ses-bl_T1w_mask.nii.gz")
    with pytest.warns(UserWarning):
        table = from_bids(
            bids,
            label_col="diagnosis",
            mask_pattern="derivatives/masks/{subject}/{session}/anat/{stem}_mask.nii.gz",
        )
    masks = dict(zip([Path(p).name for p in table.paths], table.masks))
    assert masks["sub-01_ses-bl_T1w.nii.gz"] == str(mask.absolute())
    assert masks["sub-01_ses-m12_T1w.nii.gz"] is None


def test_label_map_and_keep_labels(bids: Path) -> None:
    with pytest.warns(UserWarning, match="skipped 5"):
        table = from_bids(
            bids, label_col="diagnosis", label_map={"AD": "Dementia"}, keep_labels=["Dementia"]
        )
    assert table.label_counts() == {"Dementia": 2}
    assert table.skipped["reason"].tolist().count("label 'CN' not kept") == 2


def test_unlabelled_table(bids: Path) -> None:
    with pytest.warns(UserWarning):
        table = from_bids(bids, label_col=None)
    assert len(table) == 5  # sub-03 kept: no label needed
    assert not table.labels


def test_no_participants_tsv(tmp_path: Path) -> None:
    scan(tmp_path, "sub-01/anat/sub-01_T1w.nii.gz")
    with pytest.raises(DataFormatError, match=r"expected a BIDS dataset with participants\.tsv"):
        from_bids(tmp_path, label_col="diagnosis")


def test_label_column_missing_lists_columns(bids: Path) -> None:
    with pytest.raises(
        DataFormatError,
        match=r"missing column\(s\) \['group'\]; columns found: "
        r"\['participant_id', 'diagnosis', 'age', 'sex'\]",
    ):
        from_bids(bids, label_col="group")


def test_no_scans_names_the_pattern(bids: Path) -> None:
    with pytest.raises(DataFormatError, match=r"no scans found matching sub-\*/anat/sub-\*_FLAIR"):
        from_bids(bids, label_col="diagnosis", suffix="FLAIR")


def test_duplicate_participant(bids: Path) -> None:
    with (bids / "participants.tsv").open("a") as f:
        f.write("sub-01\tCN\t50\tF\n")
    with pytest.raises(
        DataFormatError,
        match=r"row 5, column 'participant_id': participant "
        r"sub-01 listed twice \(first in row 1\)",
    ):
        from_bids(bids, label_col="diagnosis")


def test_bad_runs_option(bids: Path) -> None:
    with pytest.raises(ConfigError, match="runs: expected one of"):
        from_bids(bids, label_col="diagnosis", runs="middle")  # type: ignore[arg-type]


def test_warning_points_at_the_callers_line(bids: Path) -> None:
    with pytest.warns(UserWarning) as record:
        from_bids(bids, label_col="diagnosis")
    assert record[0].filename == __file__


def test_mask_pattern_matching_some_scans_warns_with_counts(bids: Path) -> None:
    scan(bids, "derivatives/masks/sub-01/ses-bl/anat/sub-01_ses-bl_T1w_mask.nii.gz")
    with pytest.warns(UserWarning, match=r"mixed masking: 1 of \d+ scans have a brain mask"):
        from_bids(
            bids,
            label_col="diagnosis",
            mask_pattern="derivatives/masks/{subject}/{session}/anat/{stem}_mask.nii.gz",
        )
