from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from transmri.raw.qc import brain_volume_cc, flag_outliers, write_qc_page
from transmri.raw.register import template


def test_brain_volume_uses_voxel_size() -> None:
    mask = np.ones((10, 10, 10), bool)
    assert abs(brain_volume_cc(mask, np.diag([2.0, 2.0, 2.0, 1.0])) - 8.0) < 1e-9


def test_low_ncc_and_volume_outlier_are_flagged_by_name() -> None:
    metrics = pd.DataFrame(
        {
            "path": [f"s{i}" for i in range(6)],
            "brain_volume_cc": [1500, 1510, 1490, 1505, 1495, 3000],
            "registration_ncc": [0.45, 0.44, 0.1, 0.46, 0.45, 0.44],
        }
    )
    out = flag_outliers(metrics)
    assert out["qc_flag"].tolist() == [False, False, True, False, False, True]
    assert "registration NCC 0.100 < 0.3" in out.loc[2, "qc_reason"]
    assert "brain_volume_cc robust z" in out.loc[5, "qc_reason"]


def test_qc_page_embeds_flagged_scan(tmp_path: Path) -> None:
    import nibabel as nib

    volume, _, affine = template()
    scan = tmp_path / "a.nii.gz"
    nib.save(nib.Nifti1Image(volume, affine), str(scan))
    table = pd.DataFrame({"path": [str(scan)], "qc_flag": [True], "qc_reason": ["test reason"]})
    page = write_qc_page(table, tmp_path / "qc.html").read_text()
    assert "FLAGGED: test reason" in page and "data:image/png;base64," in page
