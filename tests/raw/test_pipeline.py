from __future__ import annotations

import json
import sys
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


def test_deepbet_missing_names_module(
    ixi_csv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "transmri.pretrained.deepbet", None)  # as if not installed
    with pytest.raises(ImportError, match=r"transmri\.pretrained\.deepbet"):
        preprocess_table(_table(ixi_csv(1)), tmp_path, RawScanConfig(skull_strip="deepbet"))
    assert not list(tmp_path.rglob("*.nii.gz"))


def test_deepbet_skull_strip_matches_the_ixi_mask(ixi_csv, tmp_path: Path) -> None:
    pytest.importorskip("deepbet", reason="skull_strip='deepbet' needs the deepbet extra")
    table = _table(ixi_csv(1))
    config = RawScanConfig(skull_strip="deepbet", register="none")
    scans = preprocess_table(table, tmp_path, config)
    ours = np.asarray(nib.load(scans.loc[0, "mask"]).dataobj) > 0
    theirs = np.asarray(nib.load(table.masks[0]).dataobj) > 0
    dice = 2 * (ours & theirs).sum() / (ours.sum() + theirs.sum())
    assert dice > 0.95, dice
    image = np.asarray(nib.load(scans.loc[0, "path"]).dataobj)
    assert not image[~ours].any()  # skull-stripped with the network's mask
    sidecar = json.loads(Path(scans.loc[0, "path"].replace(".nii.gz", ".json")).read_text())
    assert sidecar["steps"] == ["skull_strip:deepbet"] and sidecar["space"] == "native"


def test_n4_removes_a_bias_field(ixi_csv, tmp_path: Path) -> None:
    pytest.importorskip("ants", reason="N4 needs antspyx")
    table = _table(ixi_csv(1))
    img = nib.load(table.paths[0])
    clean = np.asarray(img.dataobj, dtype=np.float32)
    brain = np.asarray(nib.load(table.masks[0]).dataobj) > 0
    ramp = np.linspace(0.6, 1.4, clean.shape[0], dtype=np.float32)[:, None, None]
    biased = tmp_path / "biased.nii.gz"
    nib.save(nib.Nifti1Image(clean * ramp, img.affine), str(biased))
    frame = table.frame.copy()
    frame["path"] = str(biased)
    scans = preprocess_table(
        table.with_frame(frame), tmp_path / "out", RawScanConfig(register="none", bias_correct=True)
    )
    corrected = np.asarray(nib.load(scans.loc[0, "path"]).dataobj, dtype=np.float32)
    inside = brain & (clean > 0)

    def ramp_left(volume: np.ndarray) -> float:
        """Correlation of (volume / clean) with the ramp's axis, inside the brain."""
        ratio = volume[inside] / clean[inside]
        axis = np.broadcast_to(ramp, clean.shape)[inside]
        return float(np.corrcoef(ratio, axis)[0, 1])

    assert ramp_left(clean * ramp) > 0.99
    assert ramp_left(corrected) < 0.5  # N4 takes most of the field out
    sidecar = json.loads(Path(scans.loc[0, "path"].replace(".nii.gz", ".json")).read_text())
    assert sidecar["steps"] == ["skull_strip:mask", "n4:antspyx"]
    assert "antspyx" in sidecar["versions"]


def test_fail_on_diverged_raises_and_writes_nothing(ixi_csv, tmp_path: Path) -> None:
    table = _table(ixi_csv(1))
    strict = RawScanConfig(min_ncc=0.99, fail_on_diverged=True)  # no real registration reaches it
    with pytest.raises(DataFormatError, match=r"IXI012-HH-1211_T1.*registration diverged \(NCC"):
        preprocess_table(table, tmp_path, strict)
    assert not list(tmp_path.rglob("*.nii.gz")) and not (tmp_path / "scans.csv").exists()
