"""Tests of transmri.datasets.ixi: the real IXI sample and small fake folders."""

from __future__ import annotations

import builtins
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import write_nifti
from transmri.datasets import get_ixi
from transmri.errors import ConfigError, DataFormatError


@pytest.mark.ixi
def test_real_sample_sex_task(ixi_root: Path) -> None:
    with pytest.warns(
        UserWarning,
        match=r"kept 181 scans, skipped 4 item\(s\): "
        r"\{'no demographics row': 4\}",
    ):
        table = get_ixi(ixi_root)
    assert len(table) + len(table.skipped) == 185
    assert table.label_counts() == {"F": 94, "M": 87}
    assert set(table.skipped["reason"]) == {"no demographics row"}
    assert all(m is not None and Path(m).exists() for m in table.masks)
    assert set(table.frame["site"]) == {"HH"}
    assert table.frame["subject"].iloc[0] == "IXI012"
    assert table.frame["age"].between(19, 90).all()


@pytest.mark.ixi
def test_real_sample_age_tasks(ixi_root: Path) -> None:
    with pytest.warns(UserWarning):
        groups = get_ixi(ixi_root, task="age_group")
    ages = groups.frame["age"]
    assert (ages[groups.frame["label"] == "young"] < 40).all()
    assert (ages[groups.frame["label"] == "old"] >= 60).all()
    middle = groups.skipped["reason"].str.contains("between young_max 40 and old_min 60")
    assert len(groups) + middle.sum() == 181
    with pytest.warns(UserWarning):
        ages_only = get_ixi(ixi_root, task="age")
    assert len(ages_only) == 181 and not ages_only.labels
    assert ages_only.frame["age"].notna().all()


@pytest.fixture
def fake_ixi(tmp_path: Path) -> Path:
    """Official download names (dash before T1) and three sites, no masks."""
    for name in [
        "IXI002-Guys-0828-T1.nii.gz",
        "IXI012-HH-1211-T1.nii.gz",
        "IXI013-IOP-0873-T1.nii.gz",
        "IXI099-HH-1999-T1.nii.gz",
    ]:
        write_nifti(tmp_path / "IXI-T1" / name, np.ones((4, 4, 4), dtype=np.float32))
    return tmp_path / "IXI-T1"


def test_official_table_as_csv_with_duplicate_rows(fake_ixi: Path) -> None:
    table_path = fake_ixi / "IXI.csv"
    table_path.write_text(
        'IXI_ID,"SEX_ID (1=m, 2=f)",HEIGHT,WEIGHT,AGE\n'
        "2,2,164,58,35.8\n"
        "12,1,175,70,38.78\n"
        "12,1,175,70,\n"  # the official table repeats some subjects: merged
        "13,2,160,55,25.1\n"
        "14,1,180,80,50.0\n"  # no scan
    )
    with pytest.warns(UserWarning, match="skipped 2"):
        table = get_ixi(fake_ixi, mask_dir=None)
    assert table.frame["subject"].tolist() == ["IXI002", "IXI012", "IXI013"]
    assert table.frame["label"].tolist() == ["F", "M", "F"]
    assert table.frame["site"].tolist() == ["Guys", "HH", "IOP"]
    assert table.frame["age"].tolist() == [35.8, 38.78, 25.1]
    assert sorted(table.skipped["reason"]) == ["no demographics row", "no scan"]
    assert table.masks == [None, None, None]


def test_conflicting_duplicate_rows_are_skipped(fake_ixi: Path) -> None:
    (fake_ixi / "IXI.csv").write_text(
        'IXI_ID,"SEX_ID (1=m, 2=f)",AGE\n2,2,35.8\n2,1,35.8\n12,1,38\n13,2,25\n99,1,70\n'
    )
    with pytest.warns(UserWarning):
        table = get_ixi(fake_ixi)
    assert "IXI002" not in table.subjects
    assert "conflicting demographics rows 1 and 2" in table.skipped["reason"].tolist()


def test_xls_without_reader_says_what_to_install(
    fake_ixi: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (fake_ixi / "IXI.xls").write_bytes(b"\xd0\xcf\x11\xe0")
    real_import = builtins.__import__

    def no_xlrd(name: str, *args: object, **kwargs: object) -> object:
        if name == "xlrd":
            raise ImportError("No module named 'xlrd'")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_xlrd)
    with pytest.raises(ImportError, match=r"IXI.xls: reading a \.xls .*pip install xlrd"):
        get_ixi(fake_ixi)


def test_unknown_table_lists_columns(fake_ixi: Path) -> None:
    (fake_ixi / "IXI.csv").write_text("id,gender,years\n2,F,30\n")
    with pytest.raises(
        DataFormatError,
        match=r"expected IXI demographics with columns MRID, Age, "
        r"Sex .*columns found: \['id', 'gender', 'years'\]",
    ):
        get_ixi(fake_ixi)


def test_bad_sex_value_names_row_and_column(fake_ixi: Path) -> None:
    (fake_ixi / "participants.csv").write_text("MRID,Age,Sex\nIXI002-Guys-0828,30,X\n")
    with pytest.raises(DataFormatError, match=r"row 1, column 'Sex': expected F or M, got 'X'"):
        get_ixi(fake_ixi)


def test_not_an_ixi_folder(tmp_path: Path) -> None:
    write_nifti(tmp_path / "t1" / "brain.nii.gz", np.ones((4, 4, 4)))
    with pytest.raises(
        DataFormatError,
        match=r"expected IXI T1 scans named "
        r"IXI<id>-<site>-<n>_T1\.nii\[\.gz\]",
    ):
        get_ixi(tmp_path)


def test_no_demographics_table(fake_ixi: Path) -> None:
    with pytest.raises(DataFormatError, match=r"no demographics table found .*participants\.csv"):
        get_ixi(fake_ixi)


def test_bad_options(fake_ixi: Path) -> None:
    with pytest.raises(ConfigError, match="task: expected one of 'sex', 'age_group', 'age'"):
        get_ixi(fake_ixi, task="height")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"young_max: expected a value <= old_min \(30.0\)"):
        get_ixi(fake_ixi, young_max=40, old_min=30)
