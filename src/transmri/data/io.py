"""Reading NIfTI scans and brain masks, with checks that name the file.

Everything a scan can get wrong is caught here, once, with a message that
starts with the file's path and says what was expected and what was found:
a missing file, a folder, an empty file, a file that is not NIfTI, a
truncated gzip, a header that claims more voxels than the file holds, a 2D or
4D image, NaN/Inf voxels, an all-zero scan, an empty mask and a mask on
another voxel grid than its scan.

A scan path may also be a folder holding one DICOM series: it is converted
once into the DICOM cache (:func:`transmri.data.dicom.convert_dicom_series`,
``$TRANSMRI_DICOM_CACHE``) and the cached NIfTI is read.

Example:
    >>> data, affine = load_nifti("sub-01_T1w.nii.gz")  # doctest: +SKIP
    >>> mask = load_mask("sub-01_mask.nii.gz", like="sub-01_T1w.nii.gz")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, TypeAlias

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError
from nibabel.spatialimages import HeaderDataError

from transmri._validation import check_choice, check_existing_file
from transmri.errors import DataFormatError

__all__ = ["GRID_ATOL_MM", "NanPolicy", "load_mask", "load_nifti", "read_grid"]

NanPolicy: TypeAlias = Literal["error", "zero"]
"""What to do with NaN/Inf voxels: raise (``"error"``) or set them to 0 (``"zero"``)."""

GRID_ATOL_MM = 1e-3
"""Tolerance (mm) when comparing a mask's affine with its scan's."""

# Deflate cannot compress better than about 1032:1, so a .nii.gz whose header
# claims more bytes than this many times its size on disk is certainly broken.
_MAX_DEFLATE_RATIO = 1032
_READ_ERRORS = (EOFError, zlib.error, OSError, ValueError, HeaderDataError, ImageFileError)

PathLike: TypeAlias = str | os.PathLike[str]
Grid: TypeAlias = tuple[tuple[int, ...], np.ndarray]


def _open(path: PathLike, what: str) -> tuple[Path, nib.Nifti1Pair]:
    """Check the file, parse its header (no voxel data read) and check the size."""
    p = check_existing_file(path, what=what)
    size = p.stat().st_size
    if size == 0:
        raise DataFormatError(f"{p}: empty file (0 bytes); expected a NIfTI {what}")
    try:
        img = nib.load(p)
    except _READ_ERRORS as exc:
        raise DataFormatError(
            f"{p}: cannot read as a NIfTI {what} (.nii or .nii.gz): {exc}"
        ) from None
    if not isinstance(img, nib.Nifti1Pair):
        raise DataFormatError(f"{p}: expected a NIfTI {what}, found {type(img).__name__}")
    _check_size(p, img)
    return p, img


def _check_size(p: Path, img: nib.Nifti1Pair) -> None:
    """Refuse a header that claims more voxel bytes than the file can hold.

    nibabel reads voxels lazily, so without this a corrupt header claiming a
    huge image would only fail (or exhaust memory) much later.
    """
    header = img.header
    shape = tuple(int(s) for s in header.get_data_shape())
    itemsize = np.dtype(header.get_data_dtype()).itemsize
    expected = int(np.prod(shape, dtype=np.int64)) * itemsize
    image_file = img.file_map["image"].filename or str(p)
    data_file = Path(image_file)
    if not data_file.exists():
        raise DataFormatError(f"{p}: the image data file {data_file} is missing")
    on_disk = data_file.stat().st_size
    if data_file.name.endswith(".gz"):
        if expected > _MAX_DEFLATE_RATIO * on_disk + 4096:
            raise DataFormatError(
                f"{p}: header claims shape {shape} ({expected} bytes of voxels) but the "
                f"compressed file has only {on_disk} bytes; the header is corrupt"
            )
        return
    # The proxy knows the real offset (a header may say 0 for "right after me").
    offset = int(getattr(img.dataobj, "offset", header.get_data_offset()))
    if offset + expected > on_disk:
        raise DataFormatError(
            f"{p}: header claims shape {shape} and needs {offset + expected} bytes, "
            f"but the file has {on_disk} bytes (truncated or corrupt header)"
        )


def _squeeze_to_3d(p: Path, shape: tuple[int, ...]) -> tuple[int, int, int]:
    dims = list(shape)
    while len(dims) > 3 and dims[-1] == 1:
        dims.pop()
    if len(dims) != 3:
        raise DataFormatError(f"{p}: expected a 3D volume, got shape {tuple(shape)}")
    return (dims[0], dims[1], dims[2])


def _read_voxels(p: Path, img: nib.Nifti1Pair) -> np.ndarray:
    shape3 = _squeeze_to_3d(p, tuple(int(s) for s in img.shape))
    try:
        data = np.asarray(img.dataobj, dtype=np.float32)
    except _READ_ERRORS as exc:
        raise DataFormatError(
            f"{p}: cannot read the voxel data (truncated or corrupt file): "
            f"{type(exc).__name__}: {exc}"
        ) from None
    except MemoryError:
        raise DataFormatError(
            f"{p}: not enough memory for an image of shape {tuple(img.shape)}"
        ) from None
    return np.ascontiguousarray(data.reshape(shape3))


def _check_finite(p: Path, data: np.ndarray, nan_policy: str, what: str) -> np.ndarray:
    bad = ~np.isfinite(data)
    n_bad = int(bad.sum())
    if n_bad == 0:
        return data
    if nan_policy == "zero":
        data[bad] = 0.0
        return data
    raise DataFormatError(
        f"{p}: {n_bad} of {data.size} voxels are NaN or Inf in this {what} "
        f"(expected finite values; to set them to 0, run with "
        f"--set data.preprocessing.nan_policy=zero, or in Python "
        f"PreprocessConfig(nan_policy='zero'))"
    )


def _scan_file(path: PathLike, what: str) -> PathLike:
    """A DICOM series folder's cached NIfTI (converted on first use); a file as it is."""
    if not os.path.isdir(path):
        return path
    if not any(not name.startswith(".") for name in os.listdir(path)):
        raise IsADirectoryError(
            f"{Path(path)}: expected a {what}, found a directory with no files (a folder "
            f"must hold one DICOM series)"
        )
    from transmri.data.dicom import convert_dicom_series

    return convert_dicom_series(path).nifti


def read_grid(path: PathLike, *, what: str = "scan") -> Grid:
    """Read only the header: the 3D shape and the 4x4 affine.

    Cheap (no voxel data is decoded), so tables can report input shapes
    without loading scans; a DICOM folder is converted first (once, cached).

    Args:
        path: a ``.nii`` or ``.nii.gz`` file, or a DICOM series folder.
        what: what the file is, used in messages (``"scan"``, ``"mask"``).

    Returns:
        ``(shape, affine)``, the shape squeezed to 3D as :func:`load_nifti` does.

    Raises:
        FileNotFoundError: the file does not exist.
        IsADirectoryError: the path is an empty folder.
        DataFormatError: the file is empty, not NIfTI, not 3D, or its header
            claims more data than the file holds; a folder that is not one
            DICOM series.
    """
    p, img = _open(_scan_file(path, what), what)
    shape = _squeeze_to_3d(p, tuple(int(s) for s in img.shape))
    return shape, np.asarray(img.affine, dtype=np.float64)


def load_nifti(
    path: PathLike, *, what: str = "scan", nan_policy: NanPolicy = "error"
) -> tuple[np.ndarray, np.ndarray]:
    """Load a 3D NIfTI image as float32 voxels and its affine.

    The NIfTI scaling (slope/intercept) is applied; a trailing singleton 4th
    dimension (shape ``(X, Y, Z, 1)``) is squeezed.

    Args:
        path: a ``.nii`` or ``.nii.gz`` file, or a folder holding one DICOM
            series (converted once into the DICOM cache, then read from it).
        what: what the file is, used in messages.
        nan_policy: ``"error"`` raises on NaN/Inf voxels (naming how many);
            ``"zero"`` sets them to 0.

    Returns:
        ``(data, affine)``: a C-contiguous float32 array of shape (X, Y, Z)
        and the 4x4 float64 voxel-to-world (RAS mm) affine.

    Raises:
        FileNotFoundError: the file does not exist.
        IsADirectoryError: the path is an empty folder.
        DataFormatError: empty file, not NIfTI, truncated gzip, header larger
            than the file, not 3D, NaN/Inf voxels, or an all-zero image. The
            message starts with the file's path. For a folder, also what
            :func:`transmri.data.dicom.read_dicom_series` refuses (not
            DICOM, several series, missing slices, ...), naming the folder.

    Example:
        >>> data, affine = load_nifti("scan.nii.gz")  # doctest: +SKIP
        >>> data.dtype, data.ndim
        (dtype('float32'), 3)
    """
    check_choice("nan_policy", nan_policy, ("error", "zero"))
    p, img = _open(_scan_file(path, what), what)
    data = _check_finite(p, _read_voxels(p, img), nan_policy, what)
    if not data.any():
        raise DataFormatError(
            f"{p}: the {what} is all zeros (shape {data.shape}); expected some signal"
        )
    return data, np.asarray(img.affine, dtype=np.float64)


def load_mask(path: PathLike, *, like: PathLike | Grid | None = None) -> np.ndarray:
    """Load a binary brain mask (voxels > 0 are inside) and check its grid.

    Args:
        path: a ``.nii`` or ``.nii.gz`` mask.
        like: the scan the mask belongs to, as a path (only its header is
            read) or a ``(shape, affine)`` pair; the mask must have the same
            shape and (within ``GRID_ATOL_MM`` mm) the same affine.

    Returns:
        A boolean array of shape (X, Y, Z).

    Raises:
        DataFormatError: as :func:`load_nifti`, plus an empty mask (no voxel
            > 0), NaN/Inf voxels, or a grid that differs from ``like``'s.

    Example:
        >>> mask = load_mask("mask.nii.gz", like="scan.nii.gz")  # doctest: +SKIP
    """
    p, img = _open(path, "mask")
    data = _check_finite(p, _read_voxels(p, img), "error", "mask")
    mask = data > 0
    if not mask.any():
        raise DataFormatError(
            f"{p}: the mask is empty (no voxel > 0, shape {mask.shape}); "
            f"expected a brain mask with at least one voxel inside"
        )
    if like is not None:
        _check_same_grid(p, (mask.shape, np.asarray(img.affine, dtype=np.float64)), like)
    return mask


def _check_same_grid(mask_path: Path, mask_grid: Grid, like: PathLike | Grid) -> None:
    """Raise if a mask's (shape, affine) differs from an image's."""
    if isinstance(like, str | os.PathLike):
        image_name = f"image {Path(like)}"
        shape, affine = read_grid(like)
    else:
        image_name = "image"
        shape, affine = _as_grid(like)
    m_shape, m_affine = mask_grid
    same_shape = tuple(shape) == tuple(m_shape)
    same_affine = np.allclose(affine, m_affine, rtol=0.0, atol=GRID_ATOL_MM)
    if not (same_shape and same_affine):
        with np.printoptions(precision=3, suppress=True):
            raise DataFormatError(
                f"{mask_path}: mask grid differs: {image_name} shape {tuple(shape)}, "
                f"affine {_affine_text(affine)} vs mask shape {tuple(m_shape)}, "
                f"affine {_affine_text(m_affine)}"
            )


def _as_grid(like: Grid | Sequence[object]) -> Grid:
    if not isinstance(like, tuple | list) or len(like) != 2:
        raise TypeError(f"like: expected a path or a (shape, affine) pair, got {like!r}")
    try:
        shape = tuple(int(s) for s in like[0])  # type: ignore[union-attr]
    except TypeError:
        raise TypeError(f"like: expected a (shape, affine) pair, got {like!r}") from None
    affine = np.asarray(like[1], dtype=np.float64)
    if affine.shape != (4, 4):
        raise TypeError(f"like: expected a 4x4 affine, got shape {affine.shape}")
    return shape, affine


def _affine_text(affine: np.ndarray) -> str:
    return np.array2string(np.asarray(affine)[:3], separator=",").replace("\n", "")
