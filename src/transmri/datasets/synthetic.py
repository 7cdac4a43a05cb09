"""SYNTHETIC brain MRI cohorts built from the MNI152 template (no real subjects).

:func:`make_synthetic_cohort` writes a folder of synthetic T1- or T2-like
scans of controls and of a simulated disease, with per-scan brain masks and
a ``participants.csv``; :func:`load_synthetic_cohort` reads it back as a
:class:`~transmri.data.ScanTable`. It is what ``transmri demo`` pretrains and
fine-tunes on, and what tests use when they need brain-like volumes.

Every scan is the MNI152 (ICBM 2009a) template's grey-matter, white-matter
and CSF maps, as shipped inside nilearn's wheel (nothing is downloaded), put
through, per subject (see ``transmri.datasets._anatomy.simulate_subject``):

1. a smooth random deformation (``deformation`` mm) and head-size scaling;
2. ageing: grey matter and periventricular tissue slowly turn into CSF;
3. for the disease class, regional atrophy of ``effect_size`` x a random
   severity (mean 1, sd 0.25, clipped to 0.3-1.7) in the condition's regions
   (:data:`SYNTHETIC_REGIONS`, MNI coordinates): grey matter there becomes
   CSF and, for ``alzheimer``, the lateral ventricles enlarge;
4. tissue intensities for the contrast (T1: CSF < GM < WM; T2: WM < GM < CSF),
   skull and scalp shells, a smooth bias field, Rician noise, and a random
   global intensity scale.

How strong the default effect is (``benchmarks/synthetic_effects.py``: the
``ridge`` method's model, standardised voxels average-pooled by 2 and
``RidgeClassifier`` with alpha chosen by inner CV, mean outer 5-fold
subject-grouped AUC; 40 scans: mean of 5 random balanced subsets of the 300;
T1, seed 0; ``docs/synthetic.md`` has the full table):

=============  ===========  ==========  ==========
condition      effect_size  300 scans   40 scans
=============  ===========  ==========  ==========
``alzheimer``  0.4 (old)    0.78, 6 mm  0.47, 6 mm
``alzheimer``  0.6          0.87, 6 mm  0.50, 6 mm
``alzheimer``  0.7          0.90, 6 mm  0.52, 6 mm
``alzheimer``  0.8          0.92, 6 mm  0.55, 6 mm
``alzheimer``  0.7          0.91, 4 mm  0.56, 4 mm
=============  ===========  ==========  ==========

So whole-brain voxels need hundreds of scans to find the disease (a
pretraining source), and a small study cannot (where transfer should help).
Within the atrophy regions (:func:`region_mask`) the effect is plain: a
logistic regression on those voxels of 40 scans at 8 mm gives AUC ~0.95 at
0.7 (0.5-0.74 at 0.4), which ``tests/datasets/test_synthetic.py`` checks.

Labels (:data:`SYNTHETIC_LABELS`): ``alzheimer`` -> ``CN`` / ``AD``;
``second`` (a made-up frontal + basal-ganglia atrophy) -> ``HC`` / ``PD-like``
(it is not a model of Parkinson's disease; it is a second, different pattern
for transfer experiments); ``none`` -> every scan ``CN``.
Patients are older on average (ages drawn from a Beta(2.5, 1.5) over
``age_range`` vs uniform for controls), so age is a plausible confounder.

Folder written::

    out_dir/
      README.txt              says the data are SYNTHETIC
      participants.csv        path, subject, label, age, sex, site, mask, severity,
                              condition, contrast, synthetic (always True)
      scans/sub-0001.nii.gz   float32, RAS affine with voxel_size mm voxels
                              (``subject_prefix`` + a 4-digit number)
      masks/sub-0001_mask.nii.gz   per-scan brain mask (uint8): the deformation moves
                              each brain, so one mask cannot fit all
      brain_mask.nii.gz       union of the per-scan masks (a dataset-wide mask)
      cohort.json             the config, label names and transmri version
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import nibabel as nib
import numpy as np
import pandas as pd

from transmri._files import atomic_path, atomic_write_text
from transmri._validation import (
    check_choice,
    check_fraction,
    check_positive_float,
    check_positive_int,
)
from transmri._version import __version__
from transmri.data import ScanTable
from transmri.datasets._anatomy import (
    SYNTHETIC_REGIONS,
    SubjectParameters,
    load_template,
    region_mask,
    simulate_subject,
)
from transmri.errors import ConfigError, DataFormatError, OutputExistsError

__all__ = [
    "SYNTHETIC_LABELS",
    "SYNTHETIC_REGIONS",
    "SyntheticCohortConfig",
    "load_synthetic_cohort",
    "make_synthetic_cohort",
    "region_mask",
]

#: (control label, disease label) of each condition.
SYNTHETIC_LABELS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {"alzheimer": ("CN", "AD"), "second": ("HC", "PD-like"), "none": ("CN", "CN")}
)

#: A subject prefix that is safe in file names on every platform.
_PREFIX = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}")

_README = """\
SYNTHETIC DATA - NOT FROM REAL PEOPLE.

These brain volumes were generated by transmri {version}
(transmri.datasets.make_synthetic_cohort) from the MNI152 template shipped with
nilearn, with random deformations, simulated {condition!r} atrophy, {contrast}-like
contrast, bias field and noise. Labels, ages and sexes are simulated. Use them to
test and demonstrate software, never to draw conclusions about disease.
Settings: cohort.json.
"""


@dataclass(frozen=True)
class SyntheticCohortConfig:
    """Settings of a SYNTHETIC cohort (see the module docstring for the model).

    Attributes:
        n_subjects: number of subjects (one scan each).
        disease_fraction: fraction of subjects in the disease class (rounded
            to the nearest count); ignored for ``condition="none"``.
        condition: ``"alzheimer"``, ``"second"`` or ``"none"``.
        effect_size: mean fraction of grey matter lost at the centre of a
            disease region (0-1; for ``alzheimer`` also the fraction of
            periventricular tissue turned into CSF); 0 makes the classes
            indistinguishable. The default 0.7 is calibrated so that ridge on
            the voxels of 300 ``alzheimer`` scans at 6 mm reaches about 0.9
            AUC while 40 scans stay near chance (see the module docstring).
        contrast: ``"T1"`` or ``"T2"`` (CSF bright, white matter dark).
        voxel_size: isotropic voxel size of the scans, mm (>= 1; 4 mm gives
            50x59x48 voxels, 2 mm 99x117x95).
        bias_field: strength of the multiplicative bias field (0 = none;
            0.15 gives about +-15 %).
        noise_std: Rician noise standard deviation, relative to the T1
            white-matter intensity.
        intensity_scale: range of the random global intensity factor.
        deformation: standard deviation of the smooth random displacement, mm.
        head_scale: range of the random head-size factor (males x1.02,
            females /1.02 on top).
        age_range: range of ages, years.
        site: value of the ``site`` column (name a cohort's scanner/site).
        subject_prefix: start of every subject id and file name
            (``subject_prefix + "0001"``...). Give two cohorts that are used
            together different prefixes, or their subjects look like the same
            people to leakage checks. Letters, digits, ``-``, ``_`` and ``.``;
            not starting with ``.``; at most 64 characters.
        seed: random seed; the same config gives identical data.

    Example:
        >>> config = SyntheticCohortConfig(n_subjects=40, contrast="T2", seed=1)
        >>> config.voxel_size
        4.0
    """

    n_subjects: int = 100
    disease_fraction: float = 0.5
    condition: Literal["alzheimer", "second", "none"] = "alzheimer"
    effect_size: float = 0.7
    contrast: Literal["T1", "T2"] = "T1"
    voxel_size: float = 4.0
    bias_field: float = 0.15
    noise_std: float = 0.03
    intensity_scale: tuple[float, float] = (0.8, 1.25)
    deformation: float = 3.0
    head_scale: tuple[float, float] = (0.92, 1.08)
    age_range: tuple[float, float] = (55.0, 90.0)
    site: str = "synthetic-A"
    subject_prefix: str = "sub-"
    seed: int = 0

    def __post_init__(self) -> None:
        check_positive_int("n_subjects", self.n_subjects)
        check_fraction("disease_fraction", self.disease_fraction, inclusive=True)
        check_choice("condition", self.condition, tuple(SYNTHETIC_LABELS))
        check_fraction("effect_size", self.effect_size, inclusive=True)
        check_choice("contrast", self.contrast, ("T1", "T2"))
        voxel = check_positive_float("voxel_size", self.voxel_size)
        if not 1.0 <= voxel <= 16.0:
            raise ConfigError(f"voxel_size: expected a size in [1, 16] mm, got {self.voxel_size!r}")
        check_positive_float("bias_field", self.bias_field, allow_zero=True)
        check_positive_float("noise_std", self.noise_std, allow_zero=True)
        check_positive_float("deformation", self.deformation, allow_zero=True)
        for name in ("intensity_scale", "head_scale", "age_range"):
            _check_range(name, getattr(self, name))
        if not isinstance(self.site, str) or not self.site.strip():
            raise ConfigError(f"site: expected a non-empty name, got {self.site!r}")
        if not isinstance(self.subject_prefix, str) or not _PREFIX.fullmatch(self.subject_prefix):
            raise ConfigError(
                "subject_prefix: expected 1-64 filename-safe characters (letters, digits, "
                f"'-', '_', '.'; not starting with '.'), got {self.subject_prefix!r}"
            )
        check_positive_int("seed", self.seed, minimum=0)
        # Normalise lists (e.g. from JSON) to tuples and ints to floats.
        for name in ("intensity_scale", "head_scale", "age_range"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        object.__setattr__(self, "voxel_size", voxel)

    @property
    def labels(self) -> tuple[str, str]:
        """(control label, disease label) of this condition."""
        return SYNTHETIC_LABELS[self.condition]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of the settings."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SyntheticCohortConfig:
        """Rebuild a config from :meth:`to_dict` output; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"SyntheticCohortConfig: unknown key(s) {unknown}; expected some of {sorted(known)}"
            )
        values: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in data.items()
        }
        return cls(**values)


def _check_range(name: str, value: object) -> None:
    ok = (
        isinstance(value, tuple | list)
        and len(value) == 2
        and all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            for v in value
        )
        and 0 < value[0] <= value[1]
    )
    if not ok:
        raise ConfigError(f"{name}: expected (low, high) with 0 < low <= high, got {value!r}")


def make_synthetic_cohort(
    out_dir: str | os.PathLike[str],
    config: SyntheticCohortConfig | None = None,
    *,
    overwrite: bool = False,
) -> Path:
    """Write a SYNTHETIC cohort to ``out_dir``; return its ``participants.csv``.

    If ``out_dir`` already holds a complete cohort made with the same config,
    it is reused as is (the data would be identical). A cohort made with
    another config is an error unless ``overwrite``.

    Args:
        out_dir: the folder to write (created if needed).
        config: the settings; default :class:`SyntheticCohortConfig()`.
        overwrite: replace a cohort made with a different config.

    Returns:
        Path of ``participants.csv``, loadable with
        ``ScanTable.from_csv(path, mask_col="mask")`` or
        :func:`load_synthetic_cohort`.

    Raises:
        OutputExistsError: ``out_dir`` holds a cohort with another config.

    Example:
        >>> csv = make_synthetic_cohort(tmp / "source",
        ...     SyntheticCohortConfig(n_subjects=20, seed=0))  # doctest: +SKIP
        >>> load_synthetic_cohort(tmp / "source").label_counts()  # doctest: +SKIP
        {'AD': 10, 'CN': 10}
    """
    config = SyntheticCohortConfig() if config is None else config
    out = Path(out_dir)
    csv_path = out / "participants.csv"
    manifest_path = out / "cohort.json"
    if manifest_path.exists() and not overwrite:
        same = _same_config(_read_manifest(manifest_path).get("config"), config)
        if same and _complete(csv_path):
            return csv_path
        if not same:
            raise OutputExistsError(
                f"{out}: holds a synthetic cohort made with another config "
                f"({manifest_path}); pass overwrite=True or choose another folder"
            )
    (out / "scans").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    manifest_path.unlink(missing_ok=True)

    template = load_template(config.voxel_size, config.condition)
    control, disease = config.labels
    n = config.n_subjects
    n_disease = 0 if config.condition == "none" else round(n * config.disease_fraction)
    is_disease = np.zeros(n, dtype=bool)
    is_disease[np.random.default_rng([config.seed, 0]).permutation(n)[:n_disease]] = True
    low_age, high_age = config.age_range
    union = np.zeros(template.out_shape, dtype=np.uint8)
    rows = []
    for i in range(n):
        rng = np.random.default_rng([config.seed, 1, i])
        sex = "F" if rng.random() < 0.5 else "M"
        unit_age = rng.beta(2.5, 1.5) if is_disease[i] else rng.random()
        age = round(low_age + (high_age - low_age) * float(unit_age), 1)
        severity = (
            config.effect_size * float(np.clip(rng.normal(1.0, 0.25), 0.3, 1.7))
            if is_disease[i]
            else 0.0
        )
        head = float(rng.uniform(*config.head_scale)) * (1.02 if sex == "M" else 1 / 1.02)
        params = SubjectParameters(
            severity=severity,
            age=age,
            head_scale=head,
            intensity_scale=float(rng.uniform(*config.intensity_scale)),
        )
        image, mask = simulate_subject(
            template,
            params,
            rng=rng,
            contrast=config.contrast,
            deformation=config.deformation,
            bias_field=config.bias_field,
            noise_std=config.noise_std,
        )
        subject = f"{config.subject_prefix}{i + 1:04d}"
        scan_rel = f"scans/{subject}.nii.gz"
        mask_rel = f"masks/{subject}_mask.nii.gz"
        _save_nifti(out / scan_rel, image, template.out_affine)
        _save_nifti(out / mask_rel, mask, template.out_affine)
        union |= mask
        rows.append(
            {
                "path": scan_rel,
                "subject": subject,
                "label": disease if is_disease[i] else control,
                "age": age,
                "sex": sex,
                "site": config.site,
                "mask": mask_rel,
                "severity": round(severity, 4),
                "condition": config.condition,
                "contrast": config.contrast,
                "synthetic": True,
            }
        )
    _save_nifti(out / "brain_mask.nii.gz", union, template.out_affine)
    atomic_write_text(
        out / "README.txt",
        _README.format(version=__version__, condition=config.condition, contrast=config.contrast),
    )
    atomic_write_text(csv_path, pd.DataFrame(rows).to_csv(index=False))
    manifest = {
        "synthetic": True,
        "generator": "transmri.datasets.make_synthetic_cohort",
        "transmri_version": __version__,
        "config": config.to_dict(),
        "labels": {"control": control, "disease": disease},
        "regions": [
            {"name": r.name, "centre_mm": list(r.centre), "sigma_mm": list(r.sigma), "kind": r.kind}
            for r in SYNTHETIC_REGIONS[config.condition]
        ],
        "shape": list(template.out_shape),
        "affine": template.out_affine.tolist(),
    }
    atomic_write_text(manifest_path, json.dumps(manifest, indent=2) + "\n")
    return csv_path


def load_synthetic_cohort(out_dir: str | os.PathLike[str]) -> ScanTable:
    """Read a cohort written by :func:`make_synthetic_cohort` as a :class:`ScanTable`.

    Raises:
        FileNotFoundError: ``out_dir`` has no ``participants.csv``.
        DataFormatError: a listed scan or mask file is missing.
    """
    csv_path = Path(out_dir) / "participants.csv"
    if not csv_path.exists():
        raise FileNotFoundError(
            f"{csv_path}: synthetic cohort table not found; run make_synthetic_cohort first"
        )
    return ScanTable.from_csv(csv_path, mask_col="mask")


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataFormatError(f"{path}: unreadable cohort manifest ({exc})") from None
    if not isinstance(data, dict):
        raise DataFormatError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _same_config(previous: object, config: SyntheticCohortConfig) -> bool:
    """Whether a manifest's config is ``config`` (settings added since default as now)."""
    if not isinstance(previous, dict):
        return False
    try:
        return SyntheticCohortConfig.from_dict(previous) == config
    except (ConfigError, TypeError, ValueError):
        return False


def _complete(csv_path: Path) -> bool:
    if not csv_path.exists():
        return False
    frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    return all((csv_path.parent / p).exists() for p in [*frame["path"], *frame["mask"]])


def _save_nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> None:
    image = nib.Nifti1Image(data, affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    image.header.set_xyzt_units("mm")
    with atomic_path(path, suffix=".tmp.nii.gz") as tmp:
        nib.save(image, tmp)
