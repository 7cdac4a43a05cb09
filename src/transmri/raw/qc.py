"""Quality control of raw-scan preprocessing: per-scan metrics, outlier flags, an HTML page.

Flagging rule (both applied): an absolute threshold (registration NCC below
``min_ncc``, an empty mask) and a robust z-score (|x - median| / (1.4826 MAD)
above ``z_max``) of brain volume and NCC across the table.
"""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from transmri._files import atomic_write_text

__all__ = ["brain_volume_cc", "flag_outliers", "write_qc_page"]


def brain_volume_cc(mask: np.ndarray, affine: np.ndarray) -> float:
    """Brain volume in cubic centimetres from a boolean mask and its affine."""
    voxel_mm3 = abs(float(np.linalg.det(np.asarray(affine)[:3, :3])))
    return float(mask.sum()) * voxel_mm3 / 1000.0


def _robust_z(values: pd.Series) -> pd.Series:
    x = pd.to_numeric(values, errors="coerce")
    mad = float((x - x.median()).abs().median()) * 1.4826
    if not np.isfinite(mad) or mad == 0:
        return pd.Series(0.0, index=x.index)
    return (x - x.median()) / mad


def flag_outliers(
    metrics: pd.DataFrame, *, min_ncc: float = 0.3, z_max: float = 3.5
) -> pd.DataFrame:
    """Add ``qc_flag`` (bool) and ``qc_reason`` (str) to a table of per-scan metrics.

    Args:
        metrics: columns ``brain_volume_cc`` and, where registered, ``registration_ncc``.
        min_ncc: NCC below this flags the registration as diverged.
        z_max: robust z-score beyond this flags an outlier (needs >= 5 scans).
    """
    out = metrics.copy()
    reasons: list[list[str]] = [[] for _ in range(len(out))]
    if "registration_ncc" in out:
        for i, value in enumerate(out["registration_ncc"]):
            if pd.notna(value) and float(value) < min_ncc:
                reasons[i].append(f"registration NCC {float(value):.3f} < {min_ncc}")
    if len(out) >= 5:
        for column in ("brain_volume_cc", "registration_ncc"):
            if column in out:
                for i, z in enumerate(_robust_z(out[column])):
                    if np.isfinite(z) and abs(z) > z_max:
                        reasons[i].append(f"{column} robust z {z:+.1f}")
    out["qc_reason"] = ["; ".join(r) for r in reasons]
    out["qc_flag"] = [bool(r) for r in reasons]
    return out


def _mid_slices_png(image: np.ndarray, outline: np.ndarray, title: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(9, 3))
    for axis, ax in enumerate(axes):
        index = image.shape[axis] // 2
        ax.imshow(np.take(image, index, axis=axis).T, cmap="gray", origin="lower")
        ax.contour(np.take(outline, index, axis=axis).T.astype(float), levels=[0.5], colors="r")
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=70)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def write_qc_page(
    table: pd.DataFrame, out: str | os.PathLike[str], *, sample: int = 6, seed: int = 0
) -> Path:
    """Write a QC page: metrics, then mid-slices with the template's outline.

    Shows every flagged scan and a seeded sample of ``sample`` others.

    Args:
        table: the output scan table (``path``, ``qc_flag``, ``qc_reason``, metrics).
        out: the HTML file to write.
    """
    import nibabel as nib

    from transmri.raw.register import template

    _, brain, _ = template()
    flagged = table[table["qc_flag"].astype(bool)]
    rest = table[~table["qc_flag"].astype(bool)]
    shown = pd.concat([flagged, rest.sample(min(sample, len(rest)), random_state=seed)])
    parts = [
        "<html><head><meta charset='utf-8'><title>transmri QC</title></head><body>",
        f"<h1>Raw-scan QC</h1><p>{len(table)} scans, {len(flagged)} flagged.</p>",
        table.drop(columns=["row"], errors="ignore").to_html(index=False),
    ]
    for _, row in shown.iterrows():
        loaded: Any = nib.load(str(row["path"]))
        image = np.asarray(loaded.dataobj, dtype=np.float32)
        flag = f"FLAGGED: {row['qc_reason']}" if row["qc_flag"] else ""
        title = f"{Path(str(row['path'])).name}  {flag}"
        if image.shape == brain.shape:
            png = _mid_slices_png(image, brain, title)
            parts.append(f"<h3>{html.escape(title)}</h3><img src='data:image/png;base64,{png}'>")
    parts.append("</body></html>")
    return atomic_write_text(out, "\n".join(parts))
