"""Shared fixtures: tiny real NIfTI files written with nibabel, and the IXI sample."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

# Keep tests fast and repeatable on a shared 2-core machine.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

IXI_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ixi"


def write_nifti(path: Path, data: np.ndarray, *, affine: np.ndarray | None = None) -> Path:
    """Write ``data`` as a NIfTI file (gzip if the name ends in .gz)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(data), np.eye(4) if affine is None else affine), path)
    return path


def blob_volume(shape: tuple[int, int, int], *, label: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth 'brain' ellipsoid; class 1 has a darker blob in one corner (learnable)."""
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij"))
    brain = (grid**2).sum(0) < 0.8
    vol = brain * (0.6 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
    if label == 1:
        centre = np.array([0.35, 0.35, 0.0])[:, None, None, None]
        blob = ((grid - centre) ** 2).sum(0) < 0.12
        vol[blob] *= 0.3
    return (vol * 200).astype(np.float32)


@pytest.fixture
def make_cohort(tmp_path: Path) -> Callable[..., Path]:
    """Factory: write ``n`` tiny labelled scans + masks + a CSV; return the CSV path.

    CSV columns: path, subject, label ('CN'/'AD'), mask, age, sex. Paths are
    relative to the CSV's folder.
    """

    def make(
        n: int = 12,
        shape: tuple[int, int, int] = (20, 24, 20),
        *,
        scans_per_subject: int = 1,
        seed: int = 0,
        folder: str = "cohort",
    ) -> Path:
        rng = np.random.default_rng(seed)
        root = tmp_path / folder
        rows = []
        for i in range(n):
            subject = f"sub-{i // scans_per_subject:03d}"
            label = (i // scans_per_subject) % 2
            vol = blob_volume(shape, label=label, rng=rng)
            scan = write_nifti(root / "scans" / f"scan{i:03d}.nii.gz", vol)
            mask = write_nifti(
                root / "masks" / f"scan{i:03d}_mask.nii.gz", (vol > 0).astype(np.uint8)
            )
            rows.append(
                {
                    "path": str(scan.relative_to(root)),
                    "subject": subject,
                    "label": ["CN", "AD"][label],
                    "mask": str(mask.relative_to(root)),
                    "age": float(50 + i),
                    "sex": "MF"[i % 2],
                }
            )
        csv = root / "scans.csv"
        pd.DataFrame(rows).to_csv(csv, index=False)
        return csv

    return make


@pytest.fixture
def ixi_root() -> Path:
    """The real IXI sample, or a skip saying where it was looked for."""
    if not (IXI_ROOT / "participants.csv").exists():
        pytest.skip(f"real IXI sample not found at {IXI_ROOT} (needs ../shared/data/ixi)")
    return IXI_ROOT
