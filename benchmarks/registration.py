"""Affine registration to MNI152 2 mm on a few IXI scans: header, centre of mass, torchreg, ANTs.

Prints one row per method: seconds a scan, NCC with the template (inside its
mask) and Dice of the warped brain mask with the template's, mean (min).

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/registration.py --scans 5
"""

from __future__ import annotations

import argparse
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from transmri.raw.register import (
    Registration,
    dice,
    header_alignment,
    register_to_template,
    template,
)

IXI = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ixi"

METHODS = ("header only", "header + centre of mass", "torchreg affine", "ANTs affine")


def _align(name: str, volume: np.ndarray, affine: np.ndarray, mask: np.ndarray) -> Registration:
    if name == "header only":
        return header_alignment(volume, affine, mask=mask, centre=False)
    if name == "header + centre of mass":
        return header_alignment(volume, affine, mask=mask)
    method = "ants" if name.startswith("ANTs") else "torchreg"
    return register_to_template(volume, affine, mask=mask, method=method)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ixi", type=Path, default=IXI)
    parser.add_argument("--scans", type=int, default=5)
    args = parser.parse_args()
    _, brain, _ = template()
    subjects = sorted(
        p.name.removesuffix("_T1.nii.gz") for p in (args.ixi / "t1").glob("*_T1.nii.gz")
    )
    rows = []
    for subject in subjects[: args.scans]:
        image = nib.load(args.ixi / "t1" / f"{subject}_T1.nii.gz")
        mask = (
            np.asarray(nib.load(args.ixi / "brainmask" / f"{subject}_brainmask.nii.gz").dataobj) > 0
        )
        volume = np.asarray(image.dataobj, np.float32) * mask
        for name in METHODS:
            result = _align(name, volume, image.affine, mask)
            assert result.mask is not None
            print(f"{subject} {name}: {result.seconds:.1f} s", flush=True)
            rows.append(
                {
                    "method": name,
                    "subject": subject,
                    "seconds": result.seconds,
                    "ncc": result.ncc,
                    "dice": dice(result.mask, brain),
                }
            )
    frame = pd.DataFrame(rows)
    table = frame.groupby("method", sort=False).agg(
        scans=("subject", "size"),
        seconds=("seconds", "mean"),
        ncc=("ncc", "mean"),
        ncc_min=("ncc", "min"),
        dice=("dice", "mean"),
        dice_min=("dice", "min"),
    )
    print(table.round(3).to_string())


if __name__ == "__main__":
    main()
