"""The voxel size of a preprocessed volume, in mm, without running the pipeline.

An encoder pretrained on 1 mm scans (SFCN) sees other anatomy per voxel
when given 2 mm scans, or scans resized to a smaller ``target_shape``.
:func:`output_voxel_size` says what voxel size
:func:`~transmri.data.preprocess.preprocess_scan` produces for one scan:
the header's voxel size, in RAS axis order when the config reorients,
times the (cropped) extent over ``target_shape``.

Example:
    >>> output_voxel_size("t1.nii.gz", None, PreprocessConfig(target_shape=None))  # doctest: +SKIP
    (2.0, 2.0, 2.0)
"""

from __future__ import annotations

import os

import numpy as np

from transmri.data.io import load_mask, load_nifti, read_grid
from transmri.data.preprocess import PreprocessConfig

__all__ = ["output_voxel_size"]


def _box_extent(mask: np.ndarray) -> np.ndarray:
    nonzero = np.argwhere(mask)
    if nonzero.size == 0:
        return np.asarray(mask.shape, dtype=float)
    return (nonzero.max(axis=0) - nonzero.min(axis=0) + 1).astype(float)


def output_voxel_size(
    path: str | os.PathLike[str],
    mask_path: str | os.PathLike[str] | None,
    config: PreprocessConfig,
) -> tuple[float, float, float]:
    """The voxel size (mm, output axis order) of ``preprocess_scan(path, mask_path, config)``.

    Reads the header only, unless ``config.crop_to_mask`` (then the mask, or
    the scan's nonzero voxels where there is no mask, gives the box).

    Raises:
        FileNotFoundError, DataFormatError: as :func:`~transmri.data.io.read_grid`.
    """
    import nibabel as nib

    shape, affine = read_grid(path)
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    extent = np.asarray(shape, dtype=float)
    if config.crop_to_mask:
        source = mask_path if mask_path is not None else config.mask
        if source is not None:
            region = load_mask(source, like=(shape, affine))
        else:
            region = load_nifti(path, nan_policy=config.nan_policy)[0] != 0
        extent = _box_extent(region)
    if config.reorient:
        order = np.argsort(nib.orientations.io_orientation(affine)[:, 0].astype(int))
        zooms, extent = zooms[order], extent[order]
    if config.target_shape is not None:
        zooms = zooms * extent / np.asarray(config.target_shape, dtype=float)
    size = tuple(float(round(z, 4)) for z in zooms)
    return (size[0], size[1], size[2])
