from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from transmri.raw.register import dice, header_alignment, register_to_template, template


def _scan(ixi_root: Path, subject: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    image = nib.load(ixi_root / "t1" / f"{subject}_T1.nii.gz")
    mask = np.asarray(nib.load(ixi_root / "brainmask" / f"{subject}_brainmask.nii.gz").dataobj) > 0
    return np.asarray(image.dataobj, np.float32) * mask, image.affine, mask


def test_torchreg_warped_mask_matches_template_and_beats_header(ixi_root: Path) -> None:
    volume, affine, mask = _scan(ixi_root, "IXI012-HH-1211")
    _, brain, _ = template()
    result = register_to_template(volume, affine, mask=mask, iterations=(200, 50))
    baseline = header_alignment(volume, affine, mask=mask)
    assert result.mask is not None and baseline.mask is not None
    assert dice(result.mask, brain) >= 0.9
    assert dice(result.mask, brain) > dice(baseline.mask, brain)
    assert result.ncc > baseline.ncc
    assert result.world is not None and result.world.shape == (4, 4)


def test_torchreg_is_deterministic(ixi_root: Path) -> None:
    volume, affine, _ = _scan(ixi_root, "IXI013-HH-1212")
    a = register_to_template(volume, affine, iterations=(50, 10))
    b = register_to_template(volume, affine, iterations=(50, 10))
    np.testing.assert_array_equal(a.world, b.world)


def test_empty_volume_and_bad_method_are_refused() -> None:
    with pytest.raises(ValueError, match="no positive voxel"):
        register_to_template(np.zeros((8, 8, 8), np.float32), np.eye(4))
    with pytest.raises(ValueError, match="expected one of"):
        register_to_template(np.ones((8, 8, 8), np.float32), np.eye(4), method="elastix")
