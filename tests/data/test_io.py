"""Tests for transmri.data.io: every bad file gives a message naming it."""

from __future__ import annotations

import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tests.conftest import write_nifti
from transmri.data.io import load_mask, load_nifti, read_grid
from transmri.errors import ConfigError, DataFormatError


def _vol(shape: tuple[int, ...] = (16, 18, 20)) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.random(shape) * 100 + 1).astype(np.float32)


def _starts_with(path: Path) -> str:
    return "^" + re.escape(str(path))


def test_load_roundtrip_float32_and_affine(tmp_path: Path) -> None:
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = [-10, 5, 3]
    vol = _vol()
    p = write_nifti(tmp_path / "a.nii.gz", vol, affine=affine)
    data, aff = load_nifti(p)
    assert data.dtype == np.float32 and data.shape == vol.shape
    assert data.flags.c_contiguous
    np.testing.assert_allclose(data, vol)
    np.testing.assert_allclose(aff, affine)


def test_load_uncompressed_and_scaled_integers(tmp_path: Path) -> None:
    img = nib.Nifti1Image(np.arange(1, 16 * 16 * 16 + 1, dtype=np.int16).reshape(16, 16, 16), None)
    img.header.set_slope_inter(0.5, 1.0)
    p = tmp_path / "s.nii"
    nib.save(img, p)
    data, _ = load_nifti(p)
    assert data.dtype == np.float32
    assert data[0, 0, 0] == pytest.approx(1 * 0.5 + 1.0)  # slope applied, stays float


def test_missing_file(tmp_path: Path) -> None:
    p = tmp_path / "nope.nii.gz"
    with pytest.raises(FileNotFoundError, match=_starts_with(p) + ": scan not found"):
        load_nifti(p)


def test_directory(tmp_path: Path) -> None:
    d = tmp_path / "dir.nii"
    d.mkdir()
    with pytest.raises(IsADirectoryError, match=_starts_with(d) + ".*found a directory"):
        load_nifti(d)


def test_zero_byte_file(tmp_path: Path) -> None:
    p = tmp_path / "empty.nii.gz"
    p.write_bytes(b"")
    with pytest.raises(DataFormatError, match=_starts_with(p) + r": empty file \(0 bytes\)"):
        load_nifti(p)


@pytest.mark.parametrize("name", ["junk.nii", "junk.nii.gz", "junk.txt"])
def test_not_a_nifti(tmp_path: Path, name: str) -> None:
    p = tmp_path / name
    p.write_bytes(b"this is not an image " * 50)
    with pytest.raises(DataFormatError, match=_starts_with(p) + ": cannot read as a NIfTI scan"):
        load_nifti(p)


def test_other_nibabel_format_refused(tmp_path: Path) -> None:
    p = tmp_path / "brain.mgz"
    nib.save(nib.MGHImage(_vol(), np.eye(4)), p)
    with pytest.raises(
        DataFormatError, match=_starts_with(p) + ": expected a NIfTI scan, found MGHImage"
    ):
        load_nifti(p)


def test_truncated_gzip(tmp_path: Path) -> None:
    good = write_nifti(tmp_path / "good.nii.gz", _vol((24, 24, 24)))
    raw = good.read_bytes()
    p = tmp_path / "trunc.nii.gz"
    p.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataFormatError, match=_starts_with(p) + ": cannot read the voxel data"):
        load_nifti(p)


def test_truncated_uncompressed(tmp_path: Path) -> None:
    good = write_nifti(tmp_path / "good.nii", _vol())
    raw = good.read_bytes()
    p = tmp_path / "trunc.nii"
    p.write_bytes(raw[: len(raw) - 100])
    with pytest.raises(
        DataFormatError, match=_starts_with(p) + r": header claims shape \(16, 18, 20\)"
    ):
        load_nifti(p)


def _huge_header_file(path: Path) -> Path:
    img = nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4))
    img.header.set_data_shape((2000, 2000, 2000))
    hdr = img.header.binaryblock
    path.write_bytes(hdr + b"\x00" * 4 + np.ones(64, np.float32).tobytes())
    return path


def test_header_claims_huge_size_uncompressed(tmp_path: Path) -> None:
    p = _huge_header_file(tmp_path / "huge.nii")
    with pytest.raises(
        DataFormatError, match=_starts_with(p) + r": header claims shape \(2000, 2000, 2000\)"
    ):
        load_nifti(p)


def test_header_claims_huge_size_gzip(tmp_path: Path) -> None:
    import gzip

    raw = _huge_header_file(tmp_path / "huge.nii").read_bytes()
    p = tmp_path / "huge.nii.gz"
    p.write_bytes(gzip.compress(raw))
    with pytest.raises(
        DataFormatError, match=_starts_with(p) + r": header claims shape .* compressed file"
    ):
        load_nifti(p)


def test_2d_image_refused(tmp_path: Path) -> None:
    p = write_nifti(tmp_path / "flat.nii.gz", np.ones((16, 16), np.float32))
    with pytest.raises(
        DataFormatError, match=_starts_with(p) + r": expected a 3D volume, got shape \(16, 16\)"
    ):
        load_nifti(p)


def test_4d_image_refused(tmp_path: Path) -> None:
    p = write_nifti(tmp_path / "dwi.nii.gz", np.ones((16, 16, 16, 2), np.float32))
    with pytest.raises(
        DataFormatError,
        match=_starts_with(p) + r": expected a 3D volume, got shape \(16, 16, 16, 2\)",
    ):
        load_nifti(p)


def test_trailing_singleton_squeezed(tmp_path: Path) -> None:
    p = write_nifti(tmp_path / "one.nii.gz", _vol((16, 17, 18, 1)))
    data, _ = load_nifti(p)
    assert data.shape == (16, 17, 18)
    assert read_grid(p)[0] == (16, 17, 18)


def test_nan_error_names_count(tmp_path: Path) -> None:
    vol = _vol()
    vol[0, 0, :3] = np.nan
    vol[1, 1, 1] = np.inf
    p = write_nifti(tmp_path / "nan.nii.gz", vol)
    with pytest.raises(
        DataFormatError, match=_starts_with(p) + r": 4 of 5760 voxels are NaN or Inf"
    ):
        load_nifti(p)
    # the hint reads as the CLI / experiment-file user writes it, and as Python
    with pytest.raises(
        DataFormatError,
        match=r"--set data\.preprocessing\.nan_policy=zero, or in Python "
        r"PreprocessConfig\(nan_policy='zero'\)",
    ):
        load_nifti(p)


def test_nan_zero_policy(tmp_path: Path) -> None:
    vol = _vol()
    vol[0, 0, :3] = np.nan
    vol[1, 1, 1] = -np.inf
    p = write_nifti(tmp_path / "nan.nii.gz", vol)
    data, _ = load_nifti(p, nan_policy="zero")
    assert np.isfinite(data).all()
    assert data[0, 0, 0] == 0 and data[1, 1, 1] == 0
    assert data[5, 5, 5] == pytest.approx(vol[5, 5, 5])


def test_bad_nan_policy(tmp_path: Path) -> None:
    p = write_nifti(tmp_path / "a.nii.gz", _vol())
    with pytest.raises(
        ConfigError, match="nan_policy: expected one of 'error', 'zero', got 'skip'"
    ):
        load_nifti(p, nan_policy="skip")  # type: ignore[arg-type]


def test_all_zero_image(tmp_path: Path) -> None:
    p = write_nifti(tmp_path / "zero.nii.gz", np.zeros((16, 16, 16), np.float32))
    with pytest.raises(DataFormatError, match=_starts_with(p) + ": the scan is all zeros"):
        load_nifti(p)


def test_mask_loads_as_bool_and_checks_grid(tmp_path: Path) -> None:
    vol = _vol()
    scan = write_nifti(tmp_path / "scan.nii.gz", vol)
    m = np.zeros(vol.shape, np.uint8)
    m[4:10, 4:10, 4:10] = 1
    mp = write_nifti(tmp_path / "mask.nii.gz", m)
    mask = load_mask(mp, like=scan)
    assert mask.dtype == bool and mask.sum() == 216
    assert load_mask(mp, like=(vol.shape, np.eye(4))).sum() == 216


def test_empty_mask(tmp_path: Path) -> None:
    p = write_nifti(tmp_path / "mask.nii.gz", np.zeros((16, 16, 16), np.uint8))
    with pytest.raises(
        DataFormatError, match=_starts_with(p) + r": the mask is empty \(no voxel > 0"
    ):
        load_mask(p)


def test_mask_shape_differs(tmp_path: Path) -> None:
    scan = write_nifti(tmp_path / "scan.nii.gz", _vol((16, 16, 16)))
    mp = write_nifti(tmp_path / "mask.nii.gz", np.ones((16, 16, 17), np.uint8))
    with pytest.raises(
        DataFormatError,
        match=_starts_with(mp)
        + r": mask grid differs: image .*scan.nii.gz shape \(16, 16, 16\)"
        + r".* vs mask shape \(16, 16, 17\)",
    ):
        load_mask(mp, like=scan)


def test_mask_affine_differs(tmp_path: Path) -> None:
    shifted = np.eye(4)
    shifted[0, 3] = 5.0
    mp = write_nifti(tmp_path / "mask.nii.gz", np.ones((16, 16, 16), np.uint8), affine=shifted)
    with pytest.raises(
        DataFormatError, match=_starts_with(mp) + r": mask grid differs: .*affine.* vs mask"
    ):
        load_mask(mp, like=((16, 16, 16), np.eye(4)))


def test_mask_with_nan_refused(tmp_path: Path) -> None:
    m = np.ones((16, 16, 16), np.float32)
    m[0, 0, 0] = np.nan
    mp = write_nifti(tmp_path / "mask.nii.gz", m)
    with pytest.raises(DataFormatError, match=_starts_with(mp) + r": 1 of 4096 voxels are NaN"):
        load_mask(mp)


def test_bad_like_argument(tmp_path: Path) -> None:
    mp = write_nifti(tmp_path / "mask.nii.gz", np.ones((16, 16, 16), np.uint8))
    with pytest.raises(TypeError, match=r"like: expected a path or a \(shape, affine\) pair"):
        load_mask(mp, like=(1, 2, 3))  # type: ignore[arg-type]


def test_read_grid_reads_no_voxels(tmp_path: Path) -> None:
    # a truncated gzip still has a readable header: read_grid must not touch voxels
    good = write_nifti(tmp_path / "good.nii.gz", _vol((24, 24, 24)))
    raw = good.read_bytes()
    p = tmp_path / "trunc.nii.gz"
    p.write_bytes(raw[: len(raw) // 2])
    shape, affine = read_grid(p)
    assert shape == (24, 24, 24) and affine.shape == (4, 4)
