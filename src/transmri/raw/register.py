"""Affine registration of a brain-extracted T1 to nilearn's MNI152 2 mm template.

Two methods:

- ``"torchreg"`` (default, pure PyTorch): the scan is first resampled into the
  template grid by its header plus a centre-of-mass shift; torchreg's
  ``AffineRegistration`` (which works in normalised grid coordinates and
  ignores voxel sizes) refines it; our own code turns the result into a
  world-space 4x4 affine, so the original image and its mask are resampled
  once, from the original voxels.
- ``"ants"``: ``ants.registration(type_of_transform="Affine")`` as ClinicaDL's
  ``t1-linear`` does.

Example:
    >>> result = register_to_template(volume, affine, mask=mask)  # doctest: +SKIP
    >>> result.ncc > 0.5  # doctest: +SKIP
    True
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import ndimage

__all__ = [
    "REGISTER_METHODS",
    "Registration",
    "dice",
    "header_alignment",
    "ncc",
    "register_to_template",
    "template",
]

REGISTER_METHODS = ("torchreg", "ants")
TEMPLATE_SPACE = "MNI152NLin2009cAsym"
_INSTALL = 'pip install "transmri[register]"'


@lru_cache(maxsize=1)
def _template_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from nilearn import datasets

    image = datasets.load_mni152_template(resolution=2)
    mask = datasets.load_mni152_brain_mask(resolution=2)
    volume = np.asarray(image.get_fdata(), dtype=np.float32)
    brain = np.asarray(mask.get_fdata()) > 0.5
    return volume * brain, brain, np.asarray(image.affine, dtype=np.float64)


def template() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The skull-stripped MNI152 2 mm template, its brain mask and its affine (copies)."""
    volume, brain, affine = _template_arrays()
    return volume.copy(), brain.copy(), affine.copy()


@dataclass(frozen=True)
class Registration:
    """The result of one registration, on the template grid.

    Attributes:
        image: the registered image (float32, template grid).
        mask: the registered brain mask (bool, template grid), or ``None``.
        world: 4x4 map from template world (mm) to the scan's world (mm),
            ``None`` for ANTs (its transform stays in ANTs' own file format).
        ncc: normalised cross-correlation with the template inside its mask.
        seconds: wall time of the registration.
        method: ``"torchreg"``, ``"ants"`` or ``"header"``.
    """

    image: np.ndarray
    mask: np.ndarray | None
    world: np.ndarray | None
    ncc: float
    seconds: float
    method: str


def ncc(a: np.ndarray, b: np.ndarray, where: np.ndarray | None = None) -> float:
    """Normalised cross-correlation of two same-shape arrays (inside ``where``)."""
    x = a[where] if where is not None else a.ravel()
    y = b[where] if where is not None else b.ravel()
    x = x - x.mean()
    y = y - y.mean()
    denom = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / denom) if denom > 0 else 0.0


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two boolean arrays (0 when both are empty)."""
    total = int(a.sum()) + int(b.sum())
    return 2.0 * float(np.logical_and(a, b).sum()) / total if total else 0.0


def _resample(
    volume: np.ndarray, voxel_map: np.ndarray, shape: tuple[int, ...], order: int
) -> np.ndarray:
    """``out[v] = volume[voxel_map @ v]`` (template voxel -> scan voxel)."""
    return np.asarray(
        ndimage.affine_transform(
            np.asarray(volume, dtype=np.float32),
            voxel_map[:3, :3],
            offset=voxel_map[:3, 3],
            output_shape=shape,
            order=order,
            mode="constant",
            cval=0.0,
        ),
        dtype=np.float32,
    )


def _centre_of_mass_world(volume: np.ndarray, affine: np.ndarray) -> np.ndarray:
    weights = np.clip(np.asarray(volume, dtype=np.float64), 0, None)
    if weights.sum() <= 0:
        return np.asarray(affine[:3, 3], dtype=np.float64)
    com = np.asarray(ndimage.center_of_mass(weights), dtype=np.float64)
    return np.asarray(affine[:3, :3] @ com + affine[:3, 3], dtype=np.float64)


def _com_shift(volume: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """World map template -> scan that moves the template's centre of mass onto the scan's."""
    t_volume, _, t_affine = _template_arrays()
    shift = np.eye(4)
    shift[:3, 3] = _centre_of_mass_world(volume, affine) - _centre_of_mass_world(t_volume, t_affine)
    return shift


def _normalise(volume: np.ndarray) -> np.ndarray:
    inside = volume[volume > 0]
    scale = float(np.percentile(inside, 99)) if inside.size else 1.0
    return np.clip(volume / (scale or 1.0), 0, 1.5).astype(np.float32)


def _finish(
    volume: np.ndarray,
    affine: np.ndarray,
    mask: np.ndarray | None,
    world: np.ndarray,
    seconds: float,
    method: str,
) -> Registration:
    t_volume, t_brain, t_affine = _template_arrays()
    voxel_map = np.linalg.inv(affine) @ world @ t_affine
    image = _resample(volume, voxel_map, t_volume.shape, order=1)
    warped = None
    if mask is not None:
        warped = _resample(mask.astype(np.float32), voxel_map, t_volume.shape, order=1) > 0.5
    return Registration(image, warped, world, ncc(image, t_volume, t_brain), seconds, method)


def header_alignment(
    volume: np.ndarray, affine: np.ndarray, *, mask: np.ndarray | None = None, centre: bool = True
) -> Registration:
    """Resample by the header alone (``centre=False``) or plus a centre-of-mass shift.

    The baselines a registration is measured against.
    """
    start = time.perf_counter()
    world = _com_shift(volume, affine) if centre else np.eye(4)
    return _finish(volume, affine, mask, world, time.perf_counter() - start, "header")


def _grid_to_voxel(shape: tuple[int, ...]) -> np.ndarray:
    """4x4 map from torch normalised coordinates (x, y, z = dims 2, 1, 0) to voxel indices."""
    n = np.zeros((4, 4))
    for axis in range(3):
        size = shape[axis]
        # align_corners=True: -1 and +1 are the centres of the first and last voxel.
        n[axis, 2 - axis] = (size - 1) / 2.0
        n[axis, 3] = (size - 1) / 2.0
    n[3, 3] = 1.0
    return n


def _register_torchreg(
    volume: np.ndarray, affine: np.ndarray, mask: np.ndarray | None, *, iterations: tuple[int, int]
) -> Registration:
    try:
        import torch
        from torchreg import AffineRegistration
    except ImportError as exc:
        raise ImportError(f"register='torchreg' needs torchreg: {_INSTALL}") from exc
    start = time.perf_counter()
    t_volume, _, t_affine = _template_arrays()
    initial = _com_shift(volume, affine)
    moved = _resample(volume, np.linalg.inv(affine) @ initial @ t_affine, t_volume.shape, order=1)
    torch.manual_seed(0)
    reg = AffineRegistration(scales=(4, 2), iterations=iterations, is_3d=True, verbose=False)
    with torch.enable_grad():
        reg(
            torch.from_numpy(_normalise(moved))[None, None],
            torch.from_numpy(_normalise(t_volume))[None, None],
            return_moved=False,
        )
    theta = np.eye(4)
    theta[:3, :] = reg.get_affine()[0].numpy().astype(np.float64)
    n = _grid_to_voxel(t_volume.shape)
    voxel = n @ theta @ np.linalg.inv(n)  # template voxel -> voxel of the CoM-resampled scan
    world = initial @ t_affine @ voxel @ np.linalg.inv(t_affine)
    return _finish(volume, affine, mask, world, time.perf_counter() - start, "torchreg")


def _register_ants(volume: np.ndarray, affine: np.ndarray, mask: np.ndarray | None) -> Registration:
    try:
        import ants
        import nibabel as nib
    except ImportError as exc:
        raise ImportError(f"register='ants' needs antspyx: {_INSTALL}") from exc
    start = time.perf_counter()
    t_volume, t_brain, t_affine = _template_arrays()
    fixed = ants.from_nibabel_nifti(nib.Nifti1Image(t_volume, t_affine))
    moving = ants.from_nibabel_nifti(nib.Nifti1Image(np.asarray(volume, np.float32), affine))
    out: dict[str, Any] = ants.registration(
        fixed=fixed, moving=moving, type_of_transform="Affine", random_seed=0
    )
    image = np.asarray(out["warpedmovout"].numpy(), dtype=np.float32)
    warped = None
    if mask is not None:
        m = ants.from_nibabel_nifti(nib.Nifti1Image(mask.astype(np.float32), affine))
        w = ants.apply_transforms(fixed, m, out["fwdtransforms"], interpolator="linear")
        warped = np.asarray(w.numpy()) > 0.5
    seconds = time.perf_counter() - start
    return Registration(image, warped, None, ncc(image, t_volume, t_brain), seconds, "ants")


def register_to_template(
    volume: np.ndarray,
    affine: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    method: str = "torchreg",
    iterations: tuple[int, int] = (500, 100),
) -> Registration:
    """Register a brain-extracted scan affinely to the MNI152 2 mm template.

    Args:
        volume: the brain-extracted scan (3D).
        affine: its voxel-to-world 4x4 affine.
        mask: its brain mask (same grid), warped along with it.
        method: ``"torchreg"`` or ``"ants"``.
        iterations: torchreg iterations at scale 4 and scale 2.

    Returns:
        The :class:`Registration` on the template grid.

    Raises:
        ValueError: ``method`` is unknown or ``volume`` is not 3D or is empty.
    """
    if method not in REGISTER_METHODS:
        raise ValueError(f"register: expected one of {REGISTER_METHODS}, got {method!r}")
    volume = np.asarray(volume, dtype=np.float32)
    if volume.ndim != 3:
        raise ValueError(f"register: expected a 3D volume, got shape {volume.shape}")
    if not np.any(volume > 0):
        raise ValueError("register: the volume has no positive voxel (empty brain?)")
    if method == "ants":
        return _register_ants(volume, affine, mask)
    return _register_torchreg(volume, affine, mask, iterations=iterations)
