"""Tests for transmri.data.preprocess: config validation and the MONAI pipeline."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import write_nifti
from transmri.data.preprocess import PIPELINE_VERSION, PreprocessConfig, preprocess_scan
from transmri.errors import ConfigError, DataFormatError

RAS_SHAPE = (20, 24, 16)  # (X: L->R, Y: P->A, Z: I->S)


def _ras_volume() -> np.ndarray:
    """A volume in RAS index order, with an asymmetric marker right-anterior-superior."""
    vol = np.full(RAS_SHAPE, 10.0, np.float32)
    vol[15:18, 18:21, 11:14] = 100.0  # marker: right, anterior, superior
    vol[2:4, 2:4, 2:4] = 50.0  # a second, dimmer one: left, posterior, inferior
    return vol


def _save_psr(path: Path, ras: np.ndarray) -> Path:
    """Store a RAS array the way the IXI files are stored: axes P, S, R.

    Voxel (i, j, k) of the file lies at x = k, y = (Y-1) - i, z = j (mm).
    """
    stored = np.ascontiguousarray(np.flip(ras.transpose(1, 2, 0), axis=0))
    y_max = ras.shape[1] - 1
    affine = np.array(
        [[0, 0, 1, 0], [-1, 0, 0, y_max], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=np.float64
    )
    return write_nifti(path, stored, affine=affine)


# ------------------------------------------------------------------ config
def test_config_defaults_and_roundtrip() -> None:
    c = PreprocessConfig()
    assert c.target_shape == (108, 128, 108) and c.scaling == "minmax"
    d = c.to_dict()
    json.dumps(d)  # JSON-able
    assert PreprocessConfig.from_dict(d) == c
    c2 = PreprocessConfig(target_shape=[16, 16, 16], clip_percentiles=[1, 99])  # type: ignore[arg-type]
    assert c2.target_shape == (16, 16, 16) and c2.clip_percentiles == (1.0, 99.0)
    assert PreprocessConfig.from_dict(json.loads(json.dumps(c2.to_dict()))) == c2


def test_config_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        PreprocessConfig().scaling = "zscore"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target_shape": (16, 16)}, r"target_shape: expected three sizes"),
        ({"target_shape": (16, 0, 16)}, r"target_shape\[1\]: expected an integer >= 1, got 0"),
        ({"reorient": "yes"}, r"reorient: expected True or False, got 'yes'"),
        ({"crop_to_mask": 1}, r"crop_to_mask: expected True or False, got 1"),
        ({"mask": ""}, r"mask: expected a file path or None, got ''"),
        ({"mask": 3}, r"mask: expected a file path or None, got 3"),
        (
            {"scaling": "robust"},
            r"scaling: expected one of 'minmax', 'zscore', 'none', got 'robust'",
        ),
        ({"nan_policy": "drop"}, r"nan_policy: expected one of 'error', 'zero', got 'drop'"),
        (
            {"clip_percentiles": (99, 1)},
            r"clip_percentiles: expected \(low, high\) with 0 <= low < high",
        ),
        ({"clip_percentiles": (0, 101)}, r"clip_percentiles: expected"),
        ({"clip_percentiles": 5}, r"clip_percentiles: expected"),
    ],
)
def test_config_rejects_bad_values(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PreprocessConfig(**kwargs)  # type: ignore[arg-type]


def test_from_dict_unknown_key() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown key\(s\) \['zoom'\]; expected some of \['target_shape'"
    ):
        PreprocessConfig.from_dict({"zoom": 0.5})


def test_from_dict_not_a_mapping() -> None:
    with pytest.raises(ConfigError, match="preprocessing: expected a mapping, got list"):
        PreprocessConfig.from_dict([1, 2])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "change",
    [
        {"target_shape": (16, 16, 16)},
        {"target_shape": None},
        {"reorient": False},
        {"mask": "/m.nii.gz"},
        {"crop_to_mask": True},
        {"scaling": "zscore"},
        {"clip_percentiles": (1.0, 99.0)},
        {"nan_policy": "zero"},
    ],
)
def test_fingerprint_changes_with_every_field(change: dict[str, object]) -> None:
    base = PreprocessConfig()
    assert base.fingerprint() != dataclasses.replace(base, **change).fingerprint()  # type: ignore[arg-type]


def test_fingerprint_covers_every_field() -> None:
    # if a field is added, the parametrized test above must grow with it
    assert {f.name for f in dataclasses.fields(PreprocessConfig)} == {
        "target_shape",
        "reorient",
        "mask",
        "crop_to_mask",
        "scaling",
        "clip_percentiles",
        "nan_policy",
    }


def test_fingerprint_is_sha256_of_sorted_json() -> None:
    # defined by content only (no hash(), no id()): the same in every process
    c = PreprocessConfig(target_shape=(32, 32, 32), scaling="zscore")
    payload = {"pipeline_version": PIPELINE_VERSION, **c.to_dict()}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    assert c.fingerprint() == hashlib.sha256(text.encode()).hexdigest()
    assert c.fingerprint() == PreprocessConfig.from_dict(c.to_dict()).fingerprint()
    assert re.fullmatch(r"[0-9a-f]{64}", c.fingerprint())


# ---------------------------------------------------------------- pipeline
def test_reorients_psr_file_to_ras(tmp_path: Path) -> None:
    ras = _ras_volume()
    p = _save_psr(tmp_path / "psr.nii.gz", ras)
    out = preprocess_scan(p, None, PreprocessConfig(target_shape=None, scaling="none"))
    assert out.shape == RAS_SHAPE
    np.testing.assert_array_equal(out, ras)
    bright = np.argwhere(out == 100.0)
    assert bright.min(0).tolist() == [15, 18, 11]  # right, anterior, superior in RAS


def test_without_reorient_keeps_file_order(tmp_path: Path) -> None:
    ras = _ras_volume()
    p = _save_psr(tmp_path / "psr.nii.gz", ras)
    out = preprocess_scan(
        p, None, PreprocessConfig(target_shape=None, reorient=False, scaling="none")
    )
    assert out.shape == (24, 16, 20)


def test_per_scan_mask_is_reoriented_and_applied(tmp_path: Path) -> None:
    ras = _ras_volume()
    mask_ras = np.zeros(RAS_SHAPE, np.uint8)
    mask_ras[10:, :, :] = 1  # the right half only
    scan = _save_psr(tmp_path / "scan.nii.gz", ras)
    mask = _save_psr(tmp_path / "mask.nii.gz", mask_ras)
    out = preprocess_scan(scan, mask, PreprocessConfig(target_shape=None, scaling="none"))
    assert (out[:10] == 0).all()  # left half stripped
    np.testing.assert_array_equal(out[10:], ras[10:])


def test_dataset_mask_used_when_scan_has_none(tmp_path: Path) -> None:
    ras = _ras_volume()
    mask_ras = np.zeros(RAS_SHAPE, np.uint8)
    mask_ras[:, :12, :] = 1  # posterior half
    scan = _save_psr(tmp_path / "scan.nii.gz", ras)
    mask = _save_psr(tmp_path / "mni_mask.nii.gz", mask_ras)
    cfg = PreprocessConfig(target_shape=None, scaling="none", mask=str(mask))
    out = preprocess_scan(scan, None, cfg)
    assert (out[:, 12:] == 0).all() and (out[:, :12] > 0).all()


def test_crop_to_mask_bounding_box(tmp_path: Path) -> None:
    vol = np.full((24, 24, 24), 5.0, np.float32)
    m = np.zeros((24, 24, 24), np.uint8)
    m[4:14, 6:12, 2:22] = 1
    scan = write_nifti(tmp_path / "s.nii.gz", vol)
    mask = write_nifti(tmp_path / "m.nii.gz", m)
    out = preprocess_scan(
        scan, mask, PreprocessConfig(target_shape=None, crop_to_mask=True, scaling="none")
    )
    assert out.shape == (10, 6, 20)
    assert (out == 5.0).all()


def test_resize_to_target_shape_and_minmax(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    vol = (rng.random((40, 36, 32)) * 300 + 20).astype(np.float32)
    m = np.zeros(vol.shape, np.uint8)
    m[5:35, 5:31, 4:28] = 1
    scan = write_nifti(tmp_path / "s.nii.gz", vol)
    mask = write_nifti(tmp_path / "m.nii.gz", m)
    out = preprocess_scan(scan, mask, PreprocessConfig(target_shape=(20, 18, 16)))
    assert out.shape == (20, 18, 16) and out.dtype == np.float32
    assert out.min() == 0.0 and out.max() == pytest.approx(1.0)
    assert out[0, 0, 0] == 0.0  # background stays 0
    inside = out[5:15, 5:13, 5:11]
    assert (inside > 0).mean() > 0.99
    # not rounded to integers (the original code did that)
    assert len(np.unique(out)) > 100


def test_zscore_within_brain_background_zero(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    vol = (rng.random((24, 24, 24)) * 50 + 100).astype(np.float32)
    m = np.zeros(vol.shape, np.uint8)
    m[6:18, 6:18, 6:18] = 1
    scan = write_nifti(tmp_path / "s.nii.gz", vol)
    mask = write_nifti(tmp_path / "m.nii.gz", m)
    out = preprocess_scan(scan, mask, PreprocessConfig(target_shape=None, scaling="zscore"))
    brain = out[6:18, 6:18, 6:18]
    assert brain.mean() == pytest.approx(0.0, abs=1e-5)
    assert brain.std() == pytest.approx(1.0, abs=1e-4)
    out[6:18, 6:18, 6:18] = 0
    assert (out == 0).all()


def test_clip_percentiles_before_scaling(tmp_path: Path) -> None:
    vol = np.full((16, 16, 16), 10.0, np.float32)
    vol[:8] = 20.0
    vol[0, 0, 0] = 1e6  # one outlier would squash everything towards 0
    scan = write_nifti(tmp_path / "s.nii.gz", vol)
    plain = preprocess_scan(scan, None, PreprocessConfig(target_shape=None))
    clipped = preprocess_scan(
        scan, None, PreprocessConfig(target_shape=None, clip_percentiles=(1, 99))
    )
    assert plain[5, 5, 5] < 1e-4
    assert clipped[5, 5, 5] == pytest.approx(1.0) and clipped[12, 5, 5] == pytest.approx(0.0)


def test_no_mask_means_nonzero_voxels_are_brain(tmp_path: Path) -> None:
    vol = np.zeros((16, 16, 16), np.float32)
    vol[4:12, 4:12, 4:12] = np.linspace(1, 2, 512).reshape(8, 8, 8)
    scan = write_nifti(tmp_path / "s.nii.gz", vol)
    out = preprocess_scan(scan, None, PreprocessConfig(target_shape=None, crop_to_mask=True))
    assert out.shape == (8, 8, 8) and out.min() == 0.0 and out.max() == 1.0


def test_constant_brain_cannot_be_scaled(tmp_path: Path) -> None:
    scan = write_nifti(tmp_path / "flat.nii.gz", np.full((16, 16, 16), 3.0, np.float32))
    with pytest.raises(
        DataFormatError, match=re.escape(str(scan)) + r": the brain has constant intensity 3"
    ):
        preprocess_scan(scan, None, PreprocessConfig(target_shape=None))
    with pytest.raises(DataFormatError, match="cannot z-score"):
        preprocess_scan(scan, None, PreprocessConfig(target_shape=None, scaling="zscore"))


def test_mask_not_overlapping_after_resize(tmp_path: Path) -> None:
    vol = np.ones((32, 32, 32), np.float32)
    m = np.zeros(vol.shape, np.uint8)
    m[5, 5, 5] = 1  # a single voxel vanishes when resized to 4^3 with nearest
    scan = write_nifti(tmp_path / "s.nii.gz", vol)
    mask = write_nifti(tmp_path / "m.nii.gz", m)
    with pytest.raises(DataFormatError, match=re.escape(str(scan)) + ": no brain voxel left"):
        preprocess_scan(scan, mask, PreprocessConfig(target_shape=(4, 4, 4)))


def test_nan_policy_is_passed_to_loading(tmp_path: Path) -> None:
    vol = np.ones((16, 16, 16), np.float32)
    vol[:8] = 2.0
    vol[0, 0, 0] = np.nan
    scan = write_nifti(tmp_path / "s.nii.gz", vol)
    with pytest.raises(DataFormatError, match="1 of 4096 voxels are NaN or Inf"):
        preprocess_scan(scan, None, PreprocessConfig(target_shape=None))
    out = preprocess_scan(scan, None, PreprocessConfig(target_shape=None, nan_policy="zero"))
    assert np.isfinite(out).all()


def test_mask_grid_mismatch_names_mask(tmp_path: Path) -> None:
    scan = write_nifti(tmp_path / "s.nii.gz", np.ones((16, 16, 16), np.float32))
    mask = write_nifti(tmp_path / "m.nii.gz", np.ones((16, 16, 15), np.uint8))
    with pytest.raises(DataFormatError, match=re.escape(str(mask)) + ": mask grid differs"):
        preprocess_scan(scan, mask, PreprocessConfig(target_shape=None))


def test_missing_dataset_mask(tmp_path: Path) -> None:
    scan = write_nifti(tmp_path / "s.nii.gz", np.ones((16, 16, 16), np.float32))
    missing = tmp_path / "mni.nii.gz"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing)) + ": mask not found"):
        preprocess_scan(scan, None, PreprocessConfig(mask=str(missing)))


def test_config_type_checked(tmp_path: Path) -> None:
    scan = write_nifti(tmp_path / "s.nii.gz", np.ones((16, 16, 16), np.float32))
    with pytest.raises(TypeError, match="config: expected a PreprocessConfig, got dict"):
        preprocess_scan(scan, None, {"scaling": "minmax"})  # type: ignore[arg-type]


# --------------------------------------------------------------------- IXI
def test_ixi_scan_smoke(ixi_root: Path) -> None:
    scan = sorted((ixi_root / "t1").glob("*_T1.nii.gz"))[0]
    subject = scan.name.removesuffix("_T1.nii.gz")
    mask = ixi_root / "brainmask" / f"{subject}_brainmask.nii.gz"
    out = preprocess_scan(scan, mask, PreprocessConfig(target_shape=(64, 64, 48)))
    assert out.shape == (64, 64, 48) and out.dtype == np.float32
    assert np.isfinite(out).all()
    assert out.min() == 0.0 and out.max() == pytest.approx(1.0)
    assert out[0, 0, 0] == 0.0 and out[-1, -1, -1] == 0.0  # background (skull stripped)
    brain_fraction = float((out > 0).mean())
    assert 0.05 < brain_fraction < 0.6
    # RAS: the brain is roughly centred left-right (a symmetric organ)
    com_x = np.average(np.arange(64), weights=out.sum(axis=(1, 2)))
    assert 20 < com_x < 44
