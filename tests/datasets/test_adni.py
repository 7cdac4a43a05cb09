"""Tests of transmri.datasets.adni (and the shared image-archive reader)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import write_nifti
from transmri.data import load_nifti
from transmri.datasets import get_adni
from transmri.errors import DataFormatError

HEADER = [
    "Image Data ID",
    "Subject",
    "Group",
    "Sex",
    "Age",
    "Visit",
    "Modality",
    "Description",
    "Type",
    "Acq Date",
    "Format",
    "Downloaded",
]
MPRAGE = "MPR; GradWarp; B1 Correction; N3; Scaled"


def archive_scan(root: Path, study: str, subject: str, image_id: str, description: str) -> Path:
    """Write one tiny NIfTI where the image archive puts it."""
    folder = description.replace(";", "_").replace(" ", "_")
    name = f"{study}_{subject}_MR_{folder}_Br_20070101_S1234_{image_id}.nii"
    path = root / study / subject / folder / "2006-04-18_08_20_30.0" / image_id / name
    return write_nifti(path, np.ones((4, 4, 4), dtype=np.float32))


def collection_row(image_id: str, subject: str, group: str, description: str = MPRAGE) -> dict:
    return {
        "Image Data ID": image_id,
        "Subject": subject,
        "Group": group,
        "Sex": "F",
        "Age": "74",
        "Visit": "1",
        "Modality": "MRI",
        "Description": description,
        "Type": "Processed",
        "Acq Date": "4/18/2006",
        "Format": "NiFTI",
        "Downloaded": "1/02/2020",
    }


@pytest.fixture
def adni(tmp_path: Path) -> Path:
    """Five downloaded images (two visits of one AD subject, one CN, one MCI, one
    without a CSV row) and a CSV with one extra row whose image was not downloaded."""
    rows = [
        ("I1001", "002_S_0295", "AD"),
        ("I1002", "002_S_0295", "AD"),
        ("I2001", "011_S_0002", "CN"),
        ("I3001", "011_S_0003", "MCI"),
        ("I4001", "022_S_0004", "CN"),  # in the CSV, not downloaded
    ]
    for image_id, subject, _ in rows[:4]:
        archive_scan(tmp_path, "ADNI", subject, image_id, MPRAGE)
    archive_scan(tmp_path, "ADNI", "033_S_0005", "I5001", MPRAGE)  # no CSV row
    pd.DataFrame([collection_row(*r) for r in rows], columns=HEADER).to_csv(
        tmp_path / "ADNI1_Screening_1.5T_1_02_2020.csv", index=False
    )
    return tmp_path


def test_matches_by_image_id_and_reports_what_it_skipped(adni: Path) -> None:
    with pytest.warns(UserWarning, match=r"kept 3 scans, skipped 3"):
        table = get_adni(adni)
    assert table.label_counts() == {"AD": 2, "CN": 1}
    assert sorted(table.frame["image_id"]) == ["I1001", "I1002", "I2001"]
    # Splits group by the ADNI subject: both visits share one subject id.
    assert table.subjects.count("002_S_0295") == 2
    assert set(table.frame.columns) >= {"group", "sex", "age", "visit", "acq_date"}
    reasons = dict(zip(table.skipped["reason"], table.skipped["item"]))
    assert "I5001" in " ".join(table.skipped["reason"])  # no CSV row
    assert "no scan downloaded" in reasons
    assert "label 'MCI' not kept" in reasons


def test_root_may_be_the_adni_folder_itself(adni: Path) -> None:
    with pytest.warns(UserWarning):
        table = get_adni(adni / "ADNI", collection_csv=next(adni.glob("*.csv")))
    assert len(table) == 3


def test_other_labels_can_be_selected(adni: Path) -> None:
    with pytest.warns(UserWarning):
        table = get_adni(adni, labels=("MCI", "CN"))
    assert table.label_counts() == {"CN": 1, "MCI": 1}


def test_one_string_is_one_label(adni: Path) -> None:
    with pytest.warns(UserWarning):
        table = get_adni(adni, labels="AD")
    assert table.label_counts() == {"AD": 2}


def test_all_groups_kept_with_labels_none(adni: Path) -> None:
    with pytest.warns(UserWarning):
        table = get_adni(adni, labels=None)
    assert table.label_counts() == {"AD": 2, "CN": 1, "MCI": 1}


def test_user_csv_with_own_columns_and_label_map(tmp_path: Path) -> None:
    archive_scan(tmp_path, "ADNI", "002_S_0295", "I1001", MPRAGE)
    archive_scan(tmp_path, "ADNI", "011_S_0002", "I2001", MPRAGE)
    csv = tmp_path / "mine.csv"
    pd.DataFrame(
        {"image": ["1001", "I2001"], "PTID": ["002_S_0295", "011_S_0002"], "DX": ["Dementia", "CN"]}
    ).to_csv(csv, index=False)
    table = get_adni(
        tmp_path, collection_csv=csv, image_id_col="image", subject_col="PTID", label_col="DX"
    )
    assert table.label_counts() == {"AD": 1, "CN": 1}
    assert table.frame["dx"].tolist() == ["Dementia", "CN"]


def test_description_filter(tmp_path: Path) -> None:
    archive_scan(tmp_path, "ADNI", "002_S_0295", "I1001", MPRAGE)
    archive_scan(tmp_path, "ADNI", "002_S_0295", "I1002", "MT1; N3m")
    pd.DataFrame(
        [
            collection_row("I1001", "002_S_0295", "AD"),
            collection_row("I1002", "002_S_0295", "AD", "MT1; N3m"),
        ]
    ).to_csv(tmp_path / "c.csv", index=False)
    with pytest.warns(UserWarning, match="skipped 1"):
        table = get_adni(tmp_path, description="mpr gradwarp", labels=("AD",))
    assert table.frame["image_id"].tolist() == ["I1001"]
    assert "does not match" in table.skipped["reason"].iloc[0]


def test_mask_for_every_scan(adni: Path, tmp_path: Path) -> None:
    mask = write_nifti(tmp_path / "mask.nii.gz", np.ones((4, 4, 4), dtype=np.uint8))
    with pytest.warns(UserWarning):
        table = get_adni(adni, mask=mask)
    assert set(table.masks) == {str(mask)}


def test_wrong_root_says_which_layout_was_expected(tmp_path: Path) -> None:
    (tmp_path / "scans").mkdir()
    with pytest.raises(DataFormatError, match=r"ADNI/<subject>/<description>/<date>/<image id>"):
        get_adni(tmp_path)


def test_empty_archive_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "ADNI" / "002_S_0295").mkdir(parents=True)
    with pytest.raises(DataFormatError, match=r"no \.nii/\.nii\.gz files found"):
        get_adni(tmp_path)


def test_missing_column_lists_columns_found(adni: Path) -> None:
    csv = next(adni.glob("*.csv"))
    pd.read_csv(csv).drop(columns=["Group"]).to_csv(csv, index=False)
    with pytest.raises(
        DataFormatError,
        match=r"missing column\(s\) \['Group'\]; columns found: "
        r"\['Image Data ID', 'Subject', 'Sex'",
    ):
        get_adni(adni)


def test_duplicate_image_ids_in_csv_are_named(adni: Path) -> None:
    csv = next(adni.glob("*.csv"))
    frame = pd.read_csv(csv, dtype=str)
    pd.concat([frame, frame.iloc[[0]]]).to_csv(csv, index=False)
    with pytest.raises(DataFormatError, match=r"duplicate image id.*I1001 \(rows \[1, 6\]\)"):
        get_adni(adni)


def test_duplicate_image_ids_in_files_are_named(adni: Path) -> None:
    archive_scan(adni, "ADNI", "002_S_0295", "I1001", "MT1; N3m")
    with pytest.raises(DataFormatError, match=r"image id\(s\) found in several files.*I1001"):
        get_adni(adni)


def test_collection_csv_must_be_unique_or_given(adni: Path) -> None:
    (adni / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataFormatError, match=r"several CSV files.*pass collection_csv="):
        get_adni(adni)
    for csv in adni.glob("*.csv"):
        csv.unlink()
    with pytest.raises(DataFormatError, match="no collection CSV found"):
        get_adni(adni)


def test_subject_differing_from_folder_is_an_error(adni: Path) -> None:
    csv = next(adni.glob("*.csv"))
    frame = pd.read_csv(csv, dtype=str)
    frame.loc[0, "Subject"] = "999_S_9999"
    frame.to_csv(csv, index=False)
    with pytest.raises(
        DataFormatError,
        match=r"row 1, column 'Subject': image I1001 belongs "
        r"to subject '999_S_9999' but lies in folder '002_S_0295'",
    ):
        get_adni(adni)


def test_file_outside_the_layout_is_skipped(adni: Path) -> None:
    write_nifti(adni / "ADNI" / "002_S_0295" / "stray.nii", np.ones((4, 4, 4)))
    with pytest.warns(UserWarning):
        table = get_adni(adni)
    assert any("layout" in r for r in table.skipped["reason"])
    assert len(table) == 3


def test_no_match_at_all_is_an_error_with_counts(adni: Path) -> None:
    csv = next(adni.glob("*.csv"))
    frame = pd.read_csv(csv, dtype=str)
    frame["Image Data ID"] = [f"I9{i}" for i in range(len(frame))]
    frame.to_csv(csv, index=False)
    with pytest.raises(DataFormatError, match=r"no scan could be matched to a row \(10 item"):
        get_adni(adni)


def test_warning_points_at_the_callers_line(adni: Path) -> None:
    with pytest.warns(UserWarning) as record:
        get_adni(adni)
    assert record[0].filename == __file__


DICOM_SERIES = (
    Path(__file__).resolve().parents[2].parent / "shared" / "data" / "dicom_t1" / "t1_mprage"
)


def test_dicom_download_rows_point_at_the_image_id_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not (DICOM_SERIES / "00001.dcm").exists():
        pytest.skip(
            f"real DICOM series not found at {DICOM_SERIES} (needs ../shared/data/dicom_t1)"
        )
    monkeypatch.setenv("TRANSMRI_DICOM_CACHE", str(tmp_path / "cache"))
    series = tmp_path / "dl" / "ADNI" / "002_S_0295" / "MPRAGE" / "2006-04-18_08_20_30.0" / "I45108"
    series.mkdir(parents=True)
    for n in (1, 2, 3):
        shutil.copy(DICOM_SERIES / f"{n:05d}.dcm", series / f"ADNI_002_S_0295_MR_MPRAGE_{n}.dcm")
    pd.DataFrame([collection_row("I45108", "002_S_0295", "AD", "MPRAGE")]).to_csv(
        tmp_path / "dl" / "collection.csv", index=False
    )
    table = get_adni(tmp_path / "dl", labels=None)
    assert table.paths == [str(series)]
    assert table.frame["image_id"].tolist() == ["I45108"]
    data, _ = load_nifti(table.paths[0])
    assert data.shape == (3, 256, 256)
