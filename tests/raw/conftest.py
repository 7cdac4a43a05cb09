from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

SUBJECTS = ["IXI012-HH-1211", "IXI013-HH-1212", "IXI014-HH-1236"]


@pytest.fixture
def ixi_csv(ixi_root: Path, tmp_path: Path):
    def make(n: int) -> Path:
        rows = [
            {
                "path": str(ixi_root / "t1" / f"{s}_T1.nii.gz"),
                "subject": s,
                "label": "M",
                "mask": str(ixi_root / "brainmask" / f"{s}_brainmask.nii.gz"),
            }
            for s in SUBJECTS[:n]
        ]
        csv = tmp_path / "scans_in.csv"
        pd.DataFrame(rows).to_csv(csv, index=False)
        return csv

    return make
