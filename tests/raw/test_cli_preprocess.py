from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from transmri.data.table import ScanTable


def test_preprocess_command_on_two_ixi_scans(ixi_csv, tmp_path: Path) -> None:
    csv = ixi_csv(2)
    out = tmp_path / "deriv"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "transmri",
            "preprocess",
            str(csv),
            "--out",
            str(out),
            "--jobs",
            "1",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "2 scans preprocessed" in done.stdout and "0 flagged" in done.stdout
    table = ScanTable.from_csv(out / "scans.csv", mask_col="mask")
    assert len(table) == 2 and all("space-MNI152NLin2009cAsym" in p for p in table.paths)


def test_bad_shard_is_a_usage_error(ixi_csv, tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "transmri",
            "preprocess",
            str(ixi_csv(1)),
            "--out",
            str(tmp_path),
            "--shard",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2 and "--shard: expected I/N" in done.stderr
