"""One DICOM series folder -> one NIfTI volume, checked, cached and described.

:func:`read_dicom_series` reads only the headers of a folder's files (pixel
data stays on disk) and refuses, naming the folder or file, everything that
would give a wrong volume: an empty folder, a file that is not DICOM, a DICOM
object without pixel data, several series in one folder (it lists them and
says how to pick one), missing slices, duplicate slice positions,
inconsistent slice spacing or slice geometry.

:func:`convert_dicom_series` then converts the series with ``dcm2niix`` (the
default; the ``dcm2niix`` package on PyPI ships the binary) or the pure-Python
``dicom2nifti``, into a cache folder keyed by the content hash of the
series' files, with a BIDS-style JSON sidecar (scanner, sequence, voxel size,
series UID, converter and version). Each entry is built in a temp folder and
renamed into place in one step; on any error nothing is left. The DICOM
folder is only read, never written to.

Example:
    >>> series = read_dicom_series("ADNI/002_S_0295/MPRAGE/2006-04-18/I45108")  # doctest: +SKIP
    >>> result = convert_dicom_series(series.folder)  # doctest: +SKIP
    >>> result.nifti.name, result.sidecar["SeriesDescription"]  # doctest: +SKIP
    ('scan.nii.gz', 'MPRAGE')
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeAlias

import numpy as np

from transmri._files import atomic_write_json, replace_path
from transmri._validation import check_choice, check_existing_dir
from transmri.errors import DataFormatError

__all__ = [
    "CONVERTERS",
    "Converter",
    "DicomConversion",
    "DicomSeries",
    "convert_dicom_series",
    "default_dicom_cache",
    "read_dicom_series",
]

Converter: TypeAlias = Literal["dcm2niix", "dicom2nifti"]
#: The converters :func:`convert_dicom_series` knows; the first is the default
#: (chosen by the measurement in docs/BENCHMARKS.md, "DICOM conversion").
CONVERTERS: tuple[Converter, ...] = ("dcm2niix", "dicom2nifti")

PathLike: TypeAlias = str | os.PathLike[str]

#: Names in a series folder that are not slices and are passed over.
_IGNORED_NAMES = frozenset({"DICOMDIR", "Thumbs.db", ".DS_Store"})
#: Bumped when the cache entry layout or the sidecar changes.
_CACHE_FORMAT = "1"
_INSTALL_HINT = 'pip install "transmri[dicom]"'
#: Slice-spacing tolerance: relative to the median spacing, and in mm.
_SPACING_RTOL = 0.01
_SPACING_ATOL_MM = 0.01


@dataclass(frozen=True)
class DicomSeries:
    """The checked headers of one DICOM series (no pixel data read).

    Attributes:
        folder: the series folder.
        files: the slice files, in slice order (along the slice normal).
        series_uid: ``SeriesInstanceUID``.
        description: ``SeriesDescription`` (else ``ProtocolName``, else ``""``).
        positions: each slice's position along the slice normal (mm), in
            the order of ``files``; strictly increasing.
        spacing: the slice spacing (mm); 0 for a single-file series.
        pixel_spacing: in-plane (row, column) spacing in mm.
        header: selected header values of the first slice (for the sidecar).
    """

    folder: Path
    files: tuple[Path, ...]
    series_uid: str
    description: str
    positions: tuple[float, ...]
    spacing: float
    pixel_spacing: tuple[float, float]
    header: Mapping[str, Any]


@dataclass(frozen=True)
class DicomConversion:
    """A converted series in the cache.

    Attributes:
        nifti: the ``.nii.gz`` file.
        sidecar_path: its BIDS-style JSON sidecar.
        sidecar: the sidecar's content.
        key: the cache key (sha256 of the series' files, converter, version).
        cached: whether the entry was already in the cache.
    """

    nifti: Path
    sidecar_path: Path
    sidecar: Mapping[str, Any]
    key: str
    cached: bool


def _pydicom() -> Any:
    try:
        import pydicom
    except ImportError:
        raise ImportError(f"reading DICOM needs the 'pydicom' package: {_INSTALL_HINT}") from None
    return pydicom


# Header values copied into the sidecar, by their DICOM keyword.
_SIDECAR_KEYS = {
    "Manufacturer": "Manufacturer",
    "ManufacturerModelName": "ManufacturersModelName",
    "SeriesDescription": "SeriesDescription",
    "ProtocolName": "ProtocolName",
    "MagneticFieldStrength": "MagneticFieldStrength",
    "SoftwareVersions": "SoftwareVersions",
    "Modality": "Modality",
    "SeriesNumber": "SeriesNumber",
    "FlipAngle": "FlipAngle",
}
# DICOM gives these in ms; BIDS wants seconds.
_SECONDS_KEYS = {
    "RepetitionTime": "RepetitionTime",
    "EchoTime": "EchoTime",
    "InversionTime": "InversionTime",
}


def _plain(value: Any) -> Any:
    """A DICOM value as JSON-able Python (str, float, int or list)."""
    if isinstance(value, bool | str):
        return str(value) if not isinstance(value, bool) else value
    if isinstance(value, int):
        return int(value)  # pydicom's IS is an int subclass
    if isinstance(value, float):
        number = float(value)  # and DS a float subclass
        return int(number) if number.is_integer() else number
    if hasattr(value, "__iter__") and not isinstance(value, bytes):
        return [_plain(v) for v in value]
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return int(number) if number.is_integer() else number


def _header_values(ds: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for keyword, name in _SIDECAR_KEYS.items():
        value = getattr(ds, keyword, None)
        if value not in (None, ""):
            out[name] = _plain(value)
    for keyword, name in _SECONDS_KEYS.items():
        value = getattr(ds, keyword, None)
        if value not in (None, ""):
            out[name] = round(float(value) / 1000.0, 8)
    return out


def _candidate_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.name not in _IGNORED_NAMES
    )


def _read_headers(folder: Path) -> list[tuple[Path, Any]]:
    pydicom = _pydicom()
    files = _candidate_files(folder)
    if not files:
        raise DataFormatError(
            f"{folder}: no DICOM files in this folder; expected the files of one DICOM series"
        )
    out = []
    for f in files:
        try:
            # defer_size: large values (the pixel data) stay on disk.
            ds = pydicom.dcmread(f, defer_size="1 KB")
        except (pydicom.errors.InvalidDicomError, EOFError, OSError, ValueError) as exc:
            raise DataFormatError(
                f"{f}: not a DICOM file ({type(exc).__name__}: {exc}); a series folder "
                f"must hold only the series' DICOM files"
            ) from None
        if "PixelData" not in ds and "FloatPixelData" not in ds:
            sop = getattr(ds, "SOPClassUID", None)
            kind = getattr(sop, "name", str(sop)) if sop is not None else "unknown SOP class"
            raise DataFormatError(
                f"{f}: a DICOM object without pixel data ({kind}); expected image slices "
                f"only; move it out of {folder}"
            )
        out.append((f, ds))
    return out


def _choose_series(folder: Path, headers: list[tuple[Path, Any]], series_uid: str | None) -> str:
    by_uid: dict[str, list[Any]] = {}
    for _, ds in headers:
        by_uid.setdefault(str(getattr(ds, "SeriesInstanceUID", "")), []).append(ds)
    if series_uid is not None:
        if series_uid not in by_uid:
            raise DataFormatError(
                f"{folder}: no series with SeriesInstanceUID {series_uid!r}; found "
                f"{_list_series(by_uid)}"
            )
        return series_uid
    if len(by_uid) > 1:
        raise DataFormatError(
            f"{folder}: {len(by_uid)} DICOM series in one folder: {_list_series(by_uid)}; "
            f"pass series_uid='<SeriesInstanceUID>' to convert one, or move each series "
            f"into its own folder"
        )
    return next(iter(by_uid))


def _list_series(by_uid: Mapping[str, list[Any]]) -> str:
    parts = []
    for uid, items in sorted(by_uid.items()):
        ds = items[0]
        text = str(getattr(ds, "SeriesDescription", "") or getattr(ds, "ProtocolName", ""))
        parts.append(f"{uid or '<no SeriesInstanceUID>'} ({text!r}, {len(items)} files)")
    return "; ".join(parts)


def _geometry(f: Path, ds: Any) -> tuple[np.ndarray, np.ndarray]:
    try:
        orientation = np.asarray([float(v) for v in ds.ImageOrientationPatient])
        position = np.asarray([float(v) for v in ds.ImagePositionPatient])
    except (AttributeError, TypeError, ValueError):
        raise DataFormatError(
            f"{f}: no ImageOrientationPatient/ImagePositionPatient; cannot place the slice"
        ) from None
    if orientation.shape != (6,) or position.shape != (3,):
        raise DataFormatError(f"{f}: malformed ImageOrientationPatient/ImagePositionPatient")
    return orientation, position


def _pixels(f: Path, ds: Any) -> tuple[int, int]:
    try:
        return int(ds.Rows), int(ds.Columns)
    except (AttributeError, TypeError, ValueError):
        raise DataFormatError(f"{f}: no Rows/Columns; cannot size the slice") from None


def _check_slices(folder: Path, chosen: list[tuple[Path, Any]]) -> tuple[list[int], np.ndarray]:
    """Order the slices along the normal; refuse gaps, duplicates and uneven spacing."""
    first_f, first = chosen[0]
    orientation0, _ = _geometry(first_f, first)
    shape0 = _pixels(first_f, first)
    positions = []
    for f, ds in chosen:
        orientation, position = _geometry(f, ds)
        if not np.allclose(orientation, orientation0, atol=1e-4):
            raise DataFormatError(
                f"{f}: slice orientation {orientation.round(4).tolist()} differs from "
                f"{first_f.name}'s {orientation0.round(4).tolist()}; expected one stack"
            )
        if _pixels(f, ds) != shape0:
            raise DataFormatError(
                f"{f}: slice of {int(ds.Rows)}x{int(ds.Columns)} pixels, but "
                f"{first_f.name} has {shape0[0]}x{shape0[1]}"
            )
        positions.append(position)
    normal = np.cross(orientation0[:3], orientation0[3:])
    along = np.asarray(positions) @ normal
    order = [int(i) for i in np.argsort(along, kind="stable")]
    sorted_along = along[order]
    names = [chosen[i][0].name for i in order]
    diffs = np.diff(sorted_along)
    for i, d in enumerate(diffs):
        if d < _SPACING_ATOL_MM:
            raise DataFormatError(
                f"{folder}: slices {names[i]} and {names[i + 1]} lie at the same position "
                f"({sorted_along[i]:.3f} mm along the normal); expected one slice per "
                f"position (several echoes or repeats in one series?)"
            )
    _check_instance_numbers(folder, [chosen[i] for i in order])
    if len(diffs) > 1:
        spacing = float(np.median(diffs))
        tol = max(_SPACING_ATOL_MM, _SPACING_RTOL * spacing)
        for i, d in enumerate(diffs):
            if abs(d - spacing) <= tol:
                continue
            ratio = d / spacing
            if ratio > 1.5 and abs(ratio - round(ratio)) * spacing <= tol:
                raise DataFormatError(
                    f"{folder}: {round(ratio) - 1} slice(s) missing between {names[i]} and "
                    f"{names[i + 1]} (gap of {d:.3f} mm, slice spacing {spacing:.3f} mm)"
                )
            raise DataFormatError(
                f"{folder}: inconsistent slice spacing: {d:.3f} mm between {names[i]} and "
                f"{names[i + 1]}, expected {spacing:.3f} mm (+-{tol:.3f}) as between the others"
            )
    return order, sorted_along


def _check_instance_numbers(folder: Path, ordered: list[tuple[Path, Any]]) -> None:
    numbers = []
    for _, ds in ordered:
        value = getattr(ds, "InstanceNumber", None)
        if value in (None, ""):
            return
        numbers.append(int(value))
    present = sorted(numbers)
    if len(set(present)) != len(present):
        return  # repeated numbers: positions decide (checked above)
    missing = sorted(set(range(present[0], present[-1] + 1)) - set(present))
    if missing:
        shown = ", ".join(str(n) for n in missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise DataFormatError(
            f"{folder}: {len(missing)} slice(s) missing: InstanceNumber {shown} absent "
            f"between {present[0]} and {present[-1]}"
        )


def read_dicom_series(folder: PathLike, *, series_uid: str | None = None) -> DicomSeries:
    """Read and check the headers of the DICOM series in ``folder``.

    Only headers are decoded (pixel data stays on disk), so this is cheap and
    every check runs before any conversion.

    Args:
        folder: a folder holding the files of one DICOM series (hidden files
            and ``DICOMDIR`` are passed over).
        series_uid: the ``SeriesInstanceUID`` to take when the folder holds
            several series.

    Returns:
        The checked series, slices in order along the slice normal.

    Raises:
        FileNotFoundError: the folder does not exist.
        NotADirectoryError: it is a file.
        DataFormatError: naming the folder or file: no files, a file that is
            not DICOM, a DICOM object without pixel data, several series (each
            named by UID, description and file count) and no ``series_uid``,
            missing slices, duplicate positions, uneven spacing, slices of
            another orientation or size.
        ImportError: ``pydicom`` is not installed.
    """
    root = check_existing_dir(folder, what="DICOM series folder")
    headers = _read_headers(root)
    uid = _choose_series(root, headers, series_uid)
    chosen = [(f, ds) for f, ds in headers if str(getattr(ds, "SeriesInstanceUID", "")) == uid]
    first_f, first = chosen[0]
    if len(chosen) == 1:
        order, along, spacing = [0], np.zeros(1), 0.0
    else:
        order, along = _check_slices(root, chosen)
        spacing = float(np.median(np.diff(along)))
    try:
        pixel = tuple(float(v) for v in first.PixelSpacing)
    except (AttributeError, TypeError, ValueError):
        raise DataFormatError(f"{first_f}: no PixelSpacing; cannot size the voxels") from None
    description = str(
        getattr(first, "SeriesDescription", "") or getattr(first, "ProtocolName", "") or ""
    )
    return DicomSeries(
        folder=root,
        files=tuple(chosen[i][0] for i in order),
        series_uid=uid,
        description=description,
        positions=tuple(float(a) for a in along),
        spacing=spacing,
        pixel_spacing=(pixel[0], pixel[1]),
        header=_header_values(first),
    )


# ------------------------------------------------------------------ conversion
def default_dicom_cache() -> Path:
    """The cache folder for converted series.

    ``$TRANSMRI_DICOM_CACHE`` if set, else ``$XDG_CACHE_HOME/transmri/dicom``
    (``~/.cache/transmri/dicom``).
    """
    explicit = os.environ.get("TRANSMRI_DICOM_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "transmri" / "dicom"


def _dcm2niix_binary() -> tuple[str, str]:
    """The ``dcm2niix`` binary (the PyPI package's, else one on PATH) and its version."""
    try:
        import dcm2niix
    except ImportError:
        found = shutil.which("dcm2niix")
        if found is None:
            raise ImportError(
                f"converting DICOM with dcm2niix needs the 'dcm2niix' package: {_INSTALL_HINT}"
            ) from None
        binary = found
    else:
        binary = str(dcm2niix.bin)
    try:
        done = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=60, check=False
        )
    except OSError as exc:
        raise ImportError(f"{binary}: cannot run dcm2niix ({exc}); {_INSTALL_HINT}") from None
    words = (done.stdout + done.stderr).split()
    version = next((w for w in reversed(words) if w.startswith("v1.")), "unknown")
    return binary, version


def _converter_version(converter: Converter) -> str:
    if converter == "dcm2niix":
        return _dcm2niix_binary()[1]
    try:
        import dicom2nifti  # noqa: F401
    except ImportError:
        raise ImportError(
            f"converting DICOM with dicom2nifti needs the 'dicom2nifti' package: {_INSTALL_HINT}"
        ) from None
    from importlib.metadata import version

    return version("dicom2nifti")


def _series_key(series: DicomSeries, converter: Converter, version: str) -> str:
    digest = hashlib.sha256()
    digest.update(f"transmri-dicom {_CACHE_FORMAT} {converter} {version}\n".encode())
    for f in series.files:
        file_digest = hashlib.sha256()
        with open(f, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                file_digest.update(chunk)
        digest.update(file_digest.digest())
    return digest.hexdigest()


def _run_dcm2niix(inputs: Path, out: Path, series: DicomSeries) -> Path:
    binary, _ = _dcm2niix_binary()
    done = subprocess.run(
        [binary, "-z", "y", "-b", "y", "-ba", "y", "-f", "scan", "-o", str(out), str(inputs)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    written = sorted(out.glob("*.nii.gz"))
    if done.returncode != 0 or len(written) != 1:
        tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
        raise DataFormatError(
            f"{series.folder}: dcm2niix (exit {done.returncode}) wrote {len(written)} volume(s) "
            f"instead of one: {' | '.join(tail)}"
        )
    return written[0]


def _run_dicom2nifti(inputs: Path, out: Path, series: DicomSeries) -> Path:
    import dicom2nifti
    import dicom2nifti.exceptions

    target = out / "scan.nii.gz"
    try:
        dicom2nifti.dicom_series_to_nifti(str(inputs), str(target), reorient_nifti=False)
    except (dicom2nifti.exceptions.ConversionError, ValueError) as exc:
        raise DataFormatError(f"{series.folder}: dicom2nifti cannot convert: {exc}") from None
    return target


def _check_volume(nifti: Path, series: DicomSeries) -> dict[str, Any]:
    import nibabel as nib

    img = nib.load(nifti)
    if not isinstance(img, nib.Nifti1Image):
        raise DataFormatError(f"{series.folder}: the converter wrote {type(img).__name__}")
    shape = tuple(int(s) for s in img.shape)
    if len(shape) != 3:
        raise DataFormatError(
            f"{series.folder}: the converted volume has shape {shape}; expected 3D"
        )
    if len(series.files) > 1 and len(series.files) not in shape:
        raise DataFormatError(
            f"{series.folder}: the converted volume has shape {shape} but the series has "
            f"{len(series.files)} slices"
        )
    zooms = [round(float(z), 6) for z in img.header.get_zooms()[:3]]
    return {"VoxelSize": zooms, "Shape": list(shape)}


def convert_dicom_series(
    folder: PathLike,
    *,
    cache_dir: PathLike | None = None,
    converter: Converter = "dcm2niix",
    series_uid: str | None = None,
) -> DicomConversion:
    """Convert one DICOM series to a cached NIfTI volume with a JSON sidecar.

    The series is checked first (:func:`read_dicom_series`); then its files
    are hashed, and an entry already in the cache is returned as it is.
    Otherwise the files are linked into a temp folder inside ``cache_dir``,
    converted there, the volume is checked (3D, one voxel plane per slice),
    the sidecar written, and the temp folder renamed to the entry in one
    step. On any error the temp folder is removed; the DICOM folder is never
    written to.

    Args:
        folder: the series folder.
        cache_dir: the cache folder (default :func:`default_dicom_cache`).
        converter: ``"dcm2niix"`` (default) or ``"dicom2nifti"``.
        series_uid: which series, when the folder holds several.

    Returns:
        The entry: ``<cache_dir>/<key[:2]>/<key>/scan.nii.gz`` and ``scan.json``.
        The sidecar holds ``Manufacturer``, ``ManufacturersModelName``,
        ``SeriesDescription``, ``ProtocolName``, ``MagneticFieldStrength``,
        ``RepetitionTime``/``EchoTime`` (s), ``VoxelSize`` (mm),
        ``SeriesInstanceUID``, ``ConversionSoftware`` and its version,
        ``SourceFolder`` (the folder it was first converted from; the same
        files elsewhere share the entry) and ``SourceFiles``, plus
        dcm2niix's own fields when it converted.

    Raises:
        DataFormatError: as :func:`read_dicom_series`, or the converter did
            not give one 3D volume matching the series.
        ImportError: the converter is not installed (says what to install).
        OSError: the cache folder cannot be written, naming it.
    """
    check_choice("converter", converter, CONVERTERS)
    series = read_dicom_series(folder, series_uid=series_uid)
    version = _converter_version(converter)
    key = _series_key(series, converter, version)
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_dicom_cache()
    entry = root / key[:2] / key
    nifti, sidecar_path = entry / "scan.nii.gz", entry / "scan.json"
    if nifti.is_file() and sidecar_path.is_file():
        return DicomConversion(
            nifti, sidecar_path, json.loads(sidecar_path.read_text("utf-8")), key, True
        )
    entry.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{key[:12]}.", suffix=".tmp", dir=entry.parent))
    try:
        inputs, out = work / "in", work / "out"
        inputs.mkdir()
        out.mkdir()
        for i, f in enumerate(series.files):
            (inputs / f"{i:05d}.dcm").symlink_to(f.absolute())
        run = _run_dcm2niix if converter == "dcm2niix" else _run_dicom2nifti
        produced = run(inputs, out, series)
        # dcm2niix's own sidecar (BIDS spellings, e.g. "Siemens") wins over ours.
        sidecar: dict[str, Any] = dict(series.header)
        produced_json = produced.with_name(produced.name[: -len(".nii.gz")] + ".json")
        if produced_json.is_file():
            sidecar.update(json.loads(produced_json.read_text("utf-8")))
        sidecar.update(_check_volume(produced, series))
        sidecar.update(
            {
                "SeriesInstanceUID": series.series_uid,
                "SliceSpacing": round(series.spacing, 6),
                "ConversionSoftware": converter,
                "ConversionSoftwareVersion": version,
                "SourceFolder": str(series.folder.resolve()),
                "SourceFiles": len(series.files),
                "SourceSha256": key,
            }
        )
        final = work / "entry"
        final.mkdir()
        replace_path(produced, final / "scan.nii.gz")
        atomic_write_json(final / "scan.json", sidecar)
        if entry.exists() and not (nifti.is_file() and sidecar_path.is_file()):
            shutil.rmtree(entry)  # an incomplete entry (files deleted by hand)
        try:
            replace_path(final, entry)
        except OSError:
            if not (nifti.is_file() and sidecar_path.is_file()):
                raise  # not a concurrent writer that finished first
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return DicomConversion(nifti, sidecar_path, sidecar, key, False)
