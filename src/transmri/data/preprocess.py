"""From a NIfTI file to a model-ready float32 volume, with MONAI transforms.

The pipeline, in order (each step optional as the config says):

1. load and check the scan (and its mask) with :mod:`transmri.data.io`;
2. reorient to RAS (``monai.transforms.Orientation``) using the affine;
3. skull-strip: multiply by the binary brain mask (the dataset-wide
   ``config.mask`` or the per-scan mask), reoriented identically;
4. crop to the mask's bounding box (``CropForeground`` with the mask as source);
5. resize to ``target_shape`` (``Resize``: trilinear for the image, nearest
   for the mask);
6. clip to intensity percentiles inside the brain, then scale inside the
   brain (min-max to [0, 1] or z-score); the background stays 0.

Intensities stay floating point throughout. Without any mask the scan is
taken as already skull-stripped: its nonzero voxels are the brain.

Example:
    >>> config = PreprocessConfig(target_shape=(64, 64, 48), scaling="minmax")
    >>> volume = preprocess_scan("t1.nii.gz", "mask.nii.gz", config)  # doctest: +SKIP
    >>> volume.shape, volume.dtype
    ((64, 64, 48), dtype('float32'))
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, TypeAlias

import numpy as np
import torch

from transmri._validation import check_choice, check_config_keys, check_shape3d, number_pair
from transmri.data.io import NanPolicy, load_mask, load_nifti
from transmri.errors import ConfigError, DataFormatError

__all__ = ["PIPELINE_VERSION", "PreprocessConfig", "Scaling", "preprocess_scan"]

PIPELINE_VERSION = "1"
"""Bumped whenever the pipeline's output changes for the same config; part of
:meth:`PreprocessConfig.fingerprint`, so caches built by older code are not reused."""

Scaling: TypeAlias = Literal["minmax", "zscore", "none"]

_SCALINGS = ("minmax", "zscore", "none")
_NAN_POLICIES = ("error", "zero")
# nibabel's convention: the affine maps voxels to RAS+ world coordinates.
_NIBABEL_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))


@dataclass(frozen=True)
class PreprocessConfig:
    """How every scan of a dataset is turned into a volume.

    Args:
        target_shape: output (D, H, W) after reorientation; ``None`` keeps the
            (reoriented, cropped) size.
        reorient: reorient to RAS using the affine.
        mask: dataset-wide brain mask (a NIfTI on the scans' grid, e.g. an
            MNI mask for registered scans); used where a scan has no mask.
        crop_to_mask: crop to the bounding box of the mask before resizing.
        scaling: ``"minmax"`` to [0, 1] inside the brain, ``"zscore"`` (mean 0,
            std 1 inside the brain) or ``"none"``; the background stays 0.
        clip_percentiles: ``(low, high)`` percentiles (0-100) of the brain's
            intensities to clip to before scaling, e.g. ``(0.5, 99.5)``.
        nan_policy: ``"error"`` raises on NaN/Inf voxels; ``"zero"`` sets them to 0.

    Raises:
        ConfigError: naming the field, what was expected and what was found.

    Example:
        >>> PreprocessConfig(target_shape=(64, 64, 48)).scaling
        'minmax'
    """

    target_shape: tuple[int, int, int] | None = (108, 128, 108)
    reorient: bool = True
    mask: str | None = None
    crop_to_mask: bool = False
    scaling: Scaling = "minmax"
    clip_percentiles: tuple[float, float] | None = None
    nan_policy: NanPolicy = "error"

    def __post_init__(self) -> None:
        if self.target_shape is not None:
            object.__setattr__(
                self, "target_shape", check_shape3d("target_shape", self.target_shape)
            )
        for name in ("reorient", "crop_to_mask"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name}: expected True or False, got {getattr(self, name)!r}")
        if self.mask is not None:
            if not isinstance(self.mask, str | os.PathLike) or not str(self.mask).strip():
                raise ConfigError(f"mask: expected a file path or None, got {self.mask!r}")
            object.__setattr__(self, "mask", os.fspath(self.mask))
        check_choice("scaling", self.scaling, _SCALINGS)
        check_choice("nan_policy", self.nan_policy, _NAN_POLICIES)
        if self.clip_percentiles is not None:
            object.__setattr__(self, "clip_percentiles", _check_percentiles(self.clip_percentiles))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (tuples become lists)."""
        out = asdict(self)
        for key in ("target_shape", "clip_percentiles"):
            if out[key] is not None:
                out[key] = list(out[key])
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PreprocessConfig:
        """Rebuild a config from :meth:`to_dict`'s output.

        Raises:
            ConfigError: an unknown key (naming it and the known ones) or a bad value.
        """
        values = check_config_keys("preprocessing", data, cls)
        for key in ("target_shape", "clip_percentiles"):
            if isinstance(values.get(key), list):
                values[key] = tuple(values[key])
        return cls(**values)

    def fingerprint(self) -> str:
        """A stable sha256 (hex) of the config and :data:`PIPELINE_VERSION`.

        Equal configs give equal fingerprints in any process; any field change
        gives another one. Used in cache keys.
        """
        payload = {"pipeline_version": PIPELINE_VERSION, **self.to_dict()}
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _check_percentiles(value: object) -> tuple[float, float]:
    pair = number_pair(value)
    if pair is None or not 0.0 <= pair[0] < pair[1] <= 100.0:
        raise ConfigError(
            f"clip_percentiles: expected (low, high) with 0 <= low < high <= 100, got {value!r}"
        )
    return pair


def preprocess_scan(
    path: str | os.PathLike[str],
    mask_path: str | os.PathLike[str] | None,
    config: PreprocessConfig,
) -> np.ndarray:
    """Load one scan and apply the preprocessing pipeline of ``config``.

    Args:
        path: the scan (``.nii`` / ``.nii.gz``).
        mask_path: its brain mask on the same grid, or ``None`` to use
            ``config.mask`` (or no mask at all).
        config: the preprocessing settings.

    Returns:
        A C-contiguous float32 array of shape ``config.target_shape`` (or the
        reoriented, cropped shape when that is ``None``).

    Raises:
        FileNotFoundError: the scan or a mask does not exist.
        DataFormatError: from :func:`~transmri.data.io.load_nifti` /
            :func:`~transmri.data.io.load_mask` (naming the file), or a brain
            with constant intensity that cannot be scaled.
    """
    if not isinstance(config, PreprocessConfig):
        raise TypeError(f"config: expected a PreprocessConfig, got {type(config).__name__}")
    # MONAI takes seconds to import: load it only when a scan is preprocessed,
    # so that `import transmri.data` (and the command line) stay fast.
    from monai.data import MetaTensor
    from monai.transforms import CropForeground, Orientation, Resize

    data, affine = load_nifti(path, nan_policy=config.nan_policy)
    source_mask = mask_path if mask_path is not None else config.mask
    mask = None
    if source_mask is not None:
        mask = load_mask(source_mask, like=(data.shape, affine))

    brain_from_image = mask is None
    mask_arr = (data != 0) if mask is None else mask
    # Image and mask travel as two channels of one MetaTensor, so that the
    # reorientation and the crop move them identically.
    stacked: torch.Tensor = MetaTensor(
        torch.from_numpy(np.stack([data, mask_arr.astype(np.float32)])),
        affine=torch.as_tensor(affine, dtype=torch.float64),
    )
    if config.reorient:
        stacked = Orientation(axcodes="RAS", labels=_NIBABEL_LABELS)(stacked)
    if not brain_from_image:
        stacked[0] = stacked[0] * stacked[1]
    if config.crop_to_mask:
        stacked = CropForeground(select_fn=_is_positive, channel_indices=1, margin=0)(stacked)
    image = stacked[0:1]
    brain = stacked[1:2]
    if config.target_shape is not None and tuple(image.shape[1:]) != config.target_shape:
        image = Resize(config.target_shape, mode="trilinear", anti_aliasing=True)(image)
        brain = Resize(config.target_shape, mode="nearest")(brain)
        image = image * brain
    volume = np.asarray(_as_array(image)[0], dtype=np.float32)
    inside = np.asarray(_as_array(brain)[0]) > 0.5
    volume = _scale(volume, inside, config, path)
    return np.ascontiguousarray(volume, dtype=np.float32)


def _is_positive(x: torch.Tensor) -> torch.Tensor:
    return x > 0.5


def _as_array(t: torch.Tensor) -> np.ndarray:
    # A MetaTensor is a torch.Tensor subclass; drop its metadata without importing MONAI.
    return t.as_subclass(torch.Tensor).detach().cpu().numpy()


def _scale(
    volume: np.ndarray, inside: np.ndarray, config: PreprocessConfig, path: object
) -> np.ndarray:
    if not inside.any():
        raise DataFormatError(
            f"{path}: no brain voxel left after preprocessing (shape {volume.shape}); "
            f"expected a mask overlapping the scan"
        )
    out = np.where(inside, volume, np.float32(0.0)).astype(np.float32)
    values = out[inside]
    if config.clip_percentiles is not None:
        lo, hi = np.percentile(values, config.clip_percentiles)
        out[inside] = np.clip(values, lo, hi)
        values = out[inside]
    if config.scaling == "none":
        return out
    if config.scaling == "minmax":
        low, high = float(values.min()), float(values.max())
        if high <= low:
            raise DataFormatError(
                f"{path}: the brain has constant intensity {low:g}; cannot scale to [0, 1]"
            )
        out[inside] = (values - low) / (high - low)
        return out
    mean, std = float(values.mean(dtype=np.float64)), float(values.std(dtype=np.float64))
    if std == 0.0:
        raise DataFormatError(f"{path}: the brain has constant intensity {mean:g}; cannot z-score")
    out[inside] = (values - mean) / std
    return out
