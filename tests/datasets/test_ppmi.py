"""Tests of transmri.datasets.ppmi."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.datasets.test_adni import HEADER, archive_scan, collection_row
from transmri.datasets import get_ppmi, ppmi_mri_type
from transmri.errors import ConfigError, DataFormatError


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        ("SAG_3D_MPRAGE", "T1"),
        ("MPRAGE GRAPPA", "T1"),
        ("3D T1-weighted", "T1"),
        ("SAG FSPGR 3D", "T1"),
        ("AX T2 FSE", "T2"),
        ("AXIAL PD-T2 TSE", None),  # dual echo: proton density + T2
        ("AX PD/T2", None),
        ("AX T2* GRE", None),  # gradient echo, T2*-weighted
        ("T2 SWI", None),
        ("T2W TSE", "T2"),
        ("T2 FLAIR", None),
        ("DTI_gated", None),
        ("rsfMRI_RL", None),
    ],
)
def test_mri_type_rule(description: str, expected: str | None) -> None:
    assert ppmi_mri_type(description) == expected


@pytest.fixture
def ppmi(tmp_path: Path) -> Path:
    images = [
        ("I100", "3001", "PD", "SAG_3D_MPRAGE"),
        ("I101", "3001", "PD", "AX T2 FSE"),
        ("I200", "3002", "Control", "SAG_3D_MPRAGE"),
        ("I201", "3002", "Control", "AX T2 FSE"),
        ("I300", "3003", "Prodromal", "SAG_3D_MPRAGE"),
        ("I400", "3004", "PD", "T2 FLAIR"),
    ]
    for image_id, subject, _, description in images:
        archive_scan(tmp_path, "PPMI", subject, image_id, description)
    pd.DataFrame([collection_row(*i) for i in images], columns=HEADER).to_csv(
        tmp_path / "PPMI_collection.csv", index=False
    )
    return tmp_path


def test_t1_scans_pd_vs_hc(ppmi: Path) -> None:
    with pytest.warns(UserWarning, match="kept 2 scans"):
        table = get_ppmi(ppmi)
    assert table.label_counts() == {"HC": 1, "PD": 1}
    assert table.frame["image_id"].tolist() == ["I100", "I200"]
    assert table.frame["group"].tolist() == ["PD", "Control"]  # original group kept
    reasons = " | ".join(table.skipped["reason"])
    assert "is a T2 scan, not T1" in reasons
    assert "'T2 FLAIR' is neither T1 nor T2" in reasons
    assert "label 'Prodromal' not kept" in reasons


def test_t2_scans(ppmi: Path) -> None:
    with pytest.warns(UserWarning):
        table = get_ppmi(ppmi, mri_type="T2")
    assert table.frame["image_id"].tolist() == ["I101", "I201"]


def test_other_groups_selectable(ppmi: Path) -> None:
    with pytest.warns(UserWarning):
        table = get_ppmi(ppmi, labels=("Prodromal", "HC"))
    assert table.label_counts() == {"HC": 1, "Prodromal": 1}


def test_bad_mri_type(ppmi: Path) -> None:
    with pytest.raises(ConfigError, match=r"mri_type: expected one of 'T1', 'T2', got 'T3'"):
        get_ppmi(ppmi, mri_type="T3")  # type: ignore[arg-type]


def test_adni_folder_is_not_a_ppmi_download(tmp_path: Path) -> None:
    archive_scan(tmp_path, "ADNI", "002_S_0295", "I1", "MPRAGE")
    with pytest.raises(DataFormatError, match=r"found neither a folder named PPMI nor"):
        get_ppmi(tmp_path)
