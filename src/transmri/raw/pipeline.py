"""Raw-scan steps, once per scan: brain extraction, N4, affine registration to MNI152, QC.

:func:`preprocess_table` runs them over a :class:`~transmri.data.ScanTable`:
resumable (a scan whose outputs and sidecar exist for the same config is
skipped), parallel (joblib), shardable (``shard=(i, n)`` processes rows at
positions ``p % n == i``, as the cache fill does), with a tqdm bar. Outputs
follow BIDS derivatives::

    sub-X/ses-Y/anat/sub-X_ses-Y_space-MNI152NLin2009cAsym_desc-preproc_T1w.nii.gz
    sub-X/ses-Y/anat/sub-X_ses-Y_space-MNI152NLin2009cAsym_desc-brain_mask.nii.gz
    sub-X/ses-Y/anat/sub-X_ses-Y_space-MNI152NLin2009cAsym_desc-preproc_T1w.json

plus ``scans.csv`` (the input columns, ``path``/``mask`` pointing to the
outputs, QC columns) and ``qc.html``.
"""

from __future__ import annotations

import importlib
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from transmri._files import atomic_path, atomic_write_json
from transmri.errors import ConfigError, DataFormatError

__all__ = ["RawScanConfig", "preprocess_table"]

SKULL_STRIP = ("deepbet", "mask", "none")
REGISTER = ("torchreg", "ants", "none")
_SPACE = "MNI152NLin2009cAsym"


@dataclass(frozen=True)
class RawScanConfig:
    """Which raw-scan steps to run.

    Args:
        skull_strip: ``"deepbet"`` (network), ``"mask"`` (the table's mask column) or ``"none"``.
        bias_correct: N4 bias-field correction (ANTsPy) before registration.
        register: ``"torchreg"`` (default), ``"ants"`` or ``"none"``.
        min_ncc: a registration NCC below this is flagged as diverged.
        fail_on_diverged: raise instead of flagging a diverged registration.
    """

    skull_strip: str = "mask"
    bias_correct: bool = False
    register: str = "torchreg"
    min_ncc: float = 0.3
    fail_on_diverged: bool = False

    def __post_init__(self) -> None:
        if self.skull_strip not in SKULL_STRIP:
            raise ConfigError(
                f"skull_strip: expected one of {SKULL_STRIP}, got {self.skull_strip!r}"
            )
        if self.register not in REGISTER:
            raise ConfigError(f"register: expected one of {REGISTER}, got {self.register!r}")
        if not isinstance(self.bias_correct, bool):
            raise ConfigError(f"bias_correct: expected a bool, got {self.bias_correct!r}")
        if not 0.0 <= float(self.min_ncc) < 1.0:
            raise ConfigError(f"min_ncc: expected a value in [0, 1), got {self.min_ncc!r}")


def _label(value: object, fallback: str) -> str:
    text = re.sub(r"[^A-Za-z0-9]", "", str(value)) if value is not None else ""
    return text or fallback


def _outputs(out_dir: Path, subject: str, session: str, registered: bool) -> dict[str, Path]:
    stem = f"sub-{subject}_ses-{session}" + (f"_space-{_SPACE}" if registered else "")
    anat = out_dir / f"sub-{subject}" / f"ses-{session}" / "anat"
    return {
        "image": anat / f"{stem}_desc-preproc_T1w.nii.gz",
        "mask": anat / f"{stem}_desc-brain_mask.nii.gz",
        "sidecar": anat / f"{stem}_desc-preproc_T1w.json",
    }


def _save_nifti(target: Path, data: np.ndarray, affine: np.ndarray) -> None:
    import nibabel as nib

    with atomic_path(target, suffix=".tmp.nii.gz") as tmp:
        nib.save(nib.Nifti1Image(data, affine), str(tmp))


def _versions(config: RawScanConfig) -> dict[str, str]:
    from importlib import metadata

    names = ["transmri", "nibabel", "nilearn", "scipy"]
    if config.register == "torchreg":
        names += ["torchreg", "torch"]
    if config.register == "ants" or config.bias_correct:
        names.append("antspyx")
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "unknown"
    return versions


def _skull_strip(
    volume: np.ndarray, affine: np.ndarray, mask_path: object, config: RawScanConfig, where: str
) -> np.ndarray:
    import nibabel as nib

    if config.skull_strip == "none":
        return np.asarray(volume > 0)
    if config.skull_strip == "deepbet":
        try:
            module = importlib.import_module("transmri.pretrained.deepbet")
        except ImportError as exc:
            raise ImportError(
                "skull_strip='deepbet' needs the module transmri.pretrained.deepbet, not found"
            ) from exc
        mask = np.asarray(module.brain_mask(volume, affine), dtype=bool)
    else:
        if not isinstance(mask_path, str) or not mask_path:
            raise DataFormatError(f"{where}: skull_strip='mask' needs a mask, the row has none")
        loaded: Any = nib.load(mask_path)
        mask = np.asarray(loaded.dataobj) > 0
        if mask.shape != volume.shape:
            raise DataFormatError(
                f"{mask_path}: mask shape {mask.shape} != scan shape {volume.shape}"
            )
    if not mask.any():
        raise DataFormatError(f"{where}: the brain mask is empty")
    return mask


def _process_one(row: dict[str, Any], out_dir: Path, config: RawScanConfig) -> dict[str, Any]:
    import nibabel as nib

    from transmri.raw.qc import brain_volume_cc
    from transmri.raw.register import dice, register_to_template, template

    path = str(row["path"])
    subject, session = _label(row["subject"], "unknown"), _label(row.get("session"), "1")
    where = f"{path} (row {row.get('row')})"
    files = _outputs(out_dir, subject, session, config.register != "none")
    settings = asdict(config)
    if files["sidecar"].is_file() and files["image"].is_file() and files["mask"].is_file():
        meta = json.loads(files["sidecar"].read_text(encoding="utf-8"))
        if meta.get("config") == settings and meta.get("source") == path:
            return {"files": files, "qc": meta["qc"], "skipped": True}
    image: Any = nib.load(path)
    volume = np.asarray(image.dataobj, dtype=np.float32)
    if volume.ndim != 3:
        raise DataFormatError(f"{path}: expected a 3D volume, got shape {volume.shape}")
    affine = np.asarray(image.affine, dtype=np.float64)
    mask = _skull_strip(volume, affine, row.get("mask"), config, where)
    steps = [f"skull_strip:{config.skull_strip}"]
    if config.bias_correct:
        from transmri.raw.bias import n4_correct

        volume = n4_correct(volume, affine, mask)
        steps.append("n4:antspyx")
    volume = volume * mask
    qc: dict[str, Any] = {"brain_volume_cc": brain_volume_cc(mask, affine)}
    if config.register != "none":
        result = register_to_template(volume, affine, mask=mask, method=config.register)
        _, t_brain, t_affine = template()
        if result.ncc < config.min_ncc and config.fail_on_diverged:
            raise DataFormatError(
                f"{where}: registration diverged (NCC {result.ncc:.3f} < min_ncc {config.min_ncc})"
            )
        volume, affine = result.image, t_affine
        mask = result.mask if result.mask is not None else volume > 0
        qc |= {
            "registration_ncc": result.ncc,
            "template_mask_dice": dice(mask, t_brain),
            "registration_seconds": result.seconds,
        }
        steps.append(f"register:{config.register}")
    sidecar = {
        "source": path,
        "source_mask": row["mask"] if isinstance(row.get("mask"), str) else None,
        "config": settings,
        "steps": steps,
        "versions": _versions(config),
        "space": _SPACE if config.register != "none" else "native",
        "qc": qc,
    }
    _save_nifti(files["image"], volume.astype(np.float32), affine)
    _save_nifti(files["mask"], mask.astype(np.uint8), affine)
    atomic_write_json(files["sidecar"], sidecar)  # last: its presence marks the scan done
    return {"files": files, "qc": qc, "skipped": False}


def preprocess_table(
    table: Any,
    out_dir: str | os.PathLike[str],
    config: RawScanConfig | None = None,
    *,
    jobs: int = 1,
    shard: tuple[int, int] = (0, 1),
    progress: bool = False,
) -> pd.DataFrame:
    """Run the raw-scan steps on every scan of ``table`` (this shard's rows).

    Args:
        table: a :class:`~transmri.data.ScanTable`.
        out_dir: the derivatives folder.
        config: the steps (default :class:`RawScanConfig()`).
        jobs: parallel worker processes (joblib).
        shard: ``(i, n)``: process rows at positions ``p % n == i``.
        progress: show a tqdm bar.

    Returns:
        The output scan table (also written to ``out_dir/scans.csv``, or
        ``scans-shard-i-of-n.csv`` when sharded) with columns ``path``,
        ``mask`` pointing to the outputs, ``source_path`` and the QC columns.

    Raises:
        ConfigError: bad ``jobs`` or ``shard``.
        DataFormatError: an unreadable scan or an empty mask, naming it.
    """
    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    from transmri.data.cache import _check_n_jobs, _check_shard
    from transmri.raw.qc import flag_outliers, write_qc_page

    config = config or RawScanConfig()
    jobs = _check_n_jobs(jobs)
    index, count = _check_shard(shard)
    out = Path(out_dir)
    frame = table.frame
    rows = [frame.iloc[p].to_dict() for p in range(len(frame)) if p % count == index]
    tasks = (delayed(_process_one)(row, out, config) for row in rows)
    iterator = Parallel(n_jobs=jobs, return_as="generator")(tasks)
    results = list(tqdm(iterator, total=len(rows), disable=not progress, desc="preprocess"))
    records = []
    for row, result in zip(rows, results, strict=True):
        record = dict(row)
        record["source_path"] = str(row["path"])
        record["path"] = str(result["files"]["image"].absolute())
        record["mask"] = str(result["files"]["mask"].absolute())
        record.update(result["qc"])
        records.append(record)
    scans = pd.DataFrame(records)
    if len(scans):
        scans = flag_outliers(scans, min_ncc=config.min_ncc)
    name = "scans.csv" if count == 1 else f"scans-shard-{index}-of-{count}.csv"
    out.mkdir(parents=True, exist_ok=True)
    from transmri._files import atomic_write_text

    atomic_write_text(out / name, scans.drop(columns=["row"], errors="ignore").to_csv(index=False))
    if len(scans) and config.register != "none":
        write_qc_page(scans, out / name.replace("scans", "qc").replace(".csv", ".html"))
    return scans
