"""The voxel size preprocessing produces, from the header (and the crop box)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import write_nifti
from transmri.data import PreprocessConfig
from transmri.data.voxel_size import output_voxel_size


def test_reorders_to_ras_and_scales_by_the_resize(tmp_path: Path) -> None:
    # voxel axes: 3 mm along S, 2 mm along R (flipped), 1 mm along A
    affine = np.array([[0, -2.0, 0, 0], [0, 0, 1.0, 0], [3.0, 0, 0, 0], [0, 0, 0, 1]])
    scan = write_nifti(tmp_path / "scan.nii.gz", np.ones((10, 20, 40), np.float32), affine=affine)
    assert output_voxel_size(scan, None, PreprocessConfig(target_shape=None)) == (2.0, 1.0, 3.0)
    resized = output_voxel_size(scan, None, PreprocessConfig(target_shape=(40, 20, 20)))
    assert resized == (1.0, 2.0, 1.5)
    kept = output_voxel_size(scan, None, PreprocessConfig(target_shape=None, reorient=False))
    assert kept == (3.0, 2.0, 1.0)


def test_crop_to_mask_uses_the_mask_box(tmp_path: Path) -> None:
    scan = write_nifti(tmp_path / "scan.nii.gz", np.ones((20, 20, 20), np.float32))
    mask = np.zeros((20, 20, 20), np.uint8)
    mask[5:15, 0:20, 2:7] = 1
    mask_file = write_nifti(tmp_path / "mask.nii.gz", mask)
    config = PreprocessConfig(target_shape=(10, 10, 10), crop_to_mask=True)
    assert output_voxel_size(scan, mask_file, config) == pytest.approx((1.0, 2.0, 0.5))
