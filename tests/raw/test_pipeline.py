from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from transmri.data.table import ScanTable
from transmri.errors import ConfigError, DataFormatError
from transmri.raw import RawScanConfig, preprocess_table
from transmri.raw.register import template


def _table(csv: Path) -> ScanTable:
    return ScanTable.from_csv(csv, mask_col="mask")


def test_config_is_validated() -> None:
    with pytest.raises(ConfigError, match="skull_strip: expected one of"):
        RawScanConfig(skull_strip="bet")
    with pytest.raises(ConfigError, match="register: expected one of"):
        RawScanConfig(register="flirt")


def test_registered_outputs_resume_and_load(ixi_csv, tmp_path: Path) -> None:
    table = _table(ixi_csv(1))
    out = tmp_path / "derivatives"
    scans = preprocess_table(table, out, RawScanConfig())
    image = Path(scans.loc[0, "path"])
    assert image.name == "sub-IXI012HH1211_ses-1_space-MNI152NLin2009cAsym_desc-preproc_T1w.nii.gz"
    _, brain, affine = template()
    assert nib.load(image).shape == brain.shape
    np.testing.assert_allclose(nib.load(image).affine, affine)
    assert scans.loc[0, "template_mask_dice"] >= 0.9
    assert not scans.loc[0, "qc_flag"]
    assert (out / "qc.html").is_file()
    stamp = image.stat().st_mtime_ns
    again = preprocess_table(table, out, RawScanConfig())
    assert image.stat().st_mtime_ns == stamp
    assert again.loc[0, "registration_ncc"] == scans.loc[0, "registration_ncc"]
    loaded = ScanTable.from_csv(out / "scans.csv", mask_col="mask")
    assert loaded.paths == [str(image)] and loaded.labels == ["M"]
    assert not list(out.rglob("*.tmp")) and not list(out.rglob(".*.nii.gz"))


def test_shards_partition_scans(ixi_csv, tmp_path: Path) -> None:
    table = _table(ixi_csv(3))
    config = RawScanConfig(register="none")
    a = preprocess_table(table, tmp_path, config, shard=(0, 2))
    b = preprocess_table(table, tmp_path, config, shard=(1, 2))
    assert sorted(a["subject"].tolist() + b["subject"].tolist()) == sorted(table.subjects)
    assert not set(a["subject"]) & set(b["subject"])
    assert (tmp_path / "scans-shard-0-of-2.csv").is_file()


def test_skull_strip_none_and_empty_mask(ixi_csv, tmp_path: Path) -> None:
    csv = ixi_csv(1)
    table = _table(csv)
    none = preprocess_table(
        table, tmp_path / "a", RawScanConfig(skull_strip="none", register="none")
    )
    assert none.loc[0, "brain_volume_cc"] > 1000
    empty = tmp_path / "empty_mask.nii.gz"
    ref = nib.load(table.masks[0])
    nib.save(nib.Nifti1Image(np.zeros(ref.shape, np.uint8), ref.affine), str(empty))
    frame = table.frame.copy()
    frame["mask"] = str(empty)
    with pytest.raises(DataFormatError, match="brain mask is empty"):
        preprocess_table(table.with_frame(frame), tmp_path / "b", RawScanConfig(register="none"))
    assert not list((tmp_path / "b").rglob("*.nii.gz"))


def test_deepbet_missing_names_module(ixi_csv, tmp_path: Path) -> None:
    try:
        import transmri.pretrained.deepbet  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"transmri\.pretrained\.deepbet"):
            preprocess_table(_table(ixi_csv(1)), tmp_path, RawScanConfig(skull_strip="deepbet"))
    else:
        pytest.skip("transmri.pretrained.deepbet is installed")
