"""Scans as downloaded from the LONI Image and Data Archive (ADNI, PPMI).

The archive's zip files unpack to::

    <root>/<STUDY>/<subject>/<description>/<date>/<image id>/<file>.nii[.gz]

e.g. ``ADNI/002_S_0295/MPR__GradWarp__B1_Correction__N3__Scaled/
2006-04-18_08_20_30.0/I45108/ADNI_002_S_0295_MR_..._I45108.nii``, and come
with a collection CSV (``Image Data ID,Subject,Group,Sex,Age,Visit,Modality,
Description,Type,Acq Date,Format,Downloaded``) that gives each image id its
group. :func:`read_archive` matches the two by image id.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from transmri._validation import check_existing_dir, check_existing_file
from transmri.data import ScanTable
from transmri.datasets._common import (
    finish,
    is_blank,
    read_table,
    require_columns,
    snake_case,
)
from transmri.errors import DataFormatError

__all__ = ["ArchiveScan", "find_archive", "list_archive_scans", "read_archive"]

_NIFTI = re.compile(r"\.nii(\.gz)?$", re.IGNORECASE)
_IMAGE_ID = re.compile(r"^I\d+$")
_IMAGE_ID_IN_NAME = re.compile(r"_(I\d+)\.nii(\.gz)?$", re.IGNORECASE)
_RESERVED = ("path", "subject", "label", "mask", "row", "image_id")

#: Decides whether a scan is kept from its description: ``None`` keeps it, a
#: string is the reason it is skipped.
Selector = Callable[[str], str | None]


@dataclass(frozen=True)
class ArchiveScan:
    """One NIfTI file found in the archive layout."""

    path: Path
    subject: str
    description: str
    date: str
    image_id: str


def find_archive(root: str | os.PathLike[str], study: str) -> Path:
    """Return the ``<study>/`` folder: ``root`` itself or ``root/<study>``.

    Raises:
        DataFormatError: neither is a folder, saying which layout was expected.
    """
    base = check_existing_dir(root, what=f"{study} download folder")
    if base.name == study:
        return base
    if (base / study).is_dir():
        return base / study
    raise DataFormatError(
        f"{base}: expected the folder downloaded from the image archive, laid out as "
        f"{study}/<subject>/<description>/<date>/<image id>/*.nii[.gz]; found neither a "
        f"folder named {study} nor {base / study}"
    )


def normalise_image_id(value: str) -> str:
    """``"I123456"``, ``"i123456"`` and ``"123456"`` -> ``"I123456"``."""
    text = str(value).strip().upper()
    return f"I{text}" if text.isdigit() else text


def list_archive_scans(
    archive: Path, *, study: str
) -> tuple[list[ArchiveScan], list[tuple[str, str]]]:
    """Every scan under ``archive`` in the expected layout, and what was skipped.

    A scan is a NIfTI file, or (a DICOM download) the image-id folder holding
    the ``.dcm`` slices of one series, which :func:`transmri.data.load_nifti`
    converts on first read.

    Raises:
        DataFormatError: no NIfTI or DICOM at all, or one image id in several files.
    """
    scans: list[ArchiveScan] = []
    skipped: list[tuple[str, str]] = []
    files = [p for p in archive.rglob("*") if _NIFTI.search(p.name) and p.is_file()]
    dicom_folders = {p.parent for p in archive.rglob("*.dcm") if p.is_file()}
    files = sorted([*files, *dicom_folders])
    if not files:
        raise DataFormatError(
            f"{archive}: no .nii/.nii.gz files found (nor a .dcm series); expected "
            f"{study}/<subject>/<description>/<date>/<image id>/*.nii[.gz] (or *.dcm)"
        )
    for path in files:
        parts = path.relative_to(archive).parts
        if path in dicom_folders:
            parts = (*parts, "")  # the folder stands where a NIfTI file would
        if len(parts) != 5:
            skipped.append(
                (
                    str(path),
                    f"not in {study}/<subject>/<description>/<date>/<image id>/ layout",
                )
            )
            continue
        subject, description, date, folder, _ = parts
        image_id = folder.upper() if _IMAGE_ID.match(folder.upper()) else ""
        if not image_id:
            match = _IMAGE_ID_IN_NAME.search(path.name)
            image_id = match.group(1).upper() if match else ""
        if not image_id:
            skipped.append((str(path), f"no image id (I<digits>) in folder {folder!r} or name"))
            continue
        scans.append(ArchiveScan(path.absolute(), subject, description, date, image_id))
    by_id: dict[str, list[Path]] = {}
    for scan in scans:
        by_id.setdefault(scan.image_id, []).append(scan.path)
    duplicates = {k: v for k, v in by_id.items() if len(v) > 1}
    if duplicates:
        listed = "; ".join(
            f"{k}: {', '.join(str(p) for p in v)}" for k, v in sorted(duplicates.items())[:5]
        )
        raise DataFormatError(
            f"{archive}: {len(duplicates)} image id(s) found in several files, expected one "
            f"file per image id: {listed}"
        )
    return scans, skipped


def find_collection_csv(archive: Path, study: str) -> Path:
    """The single ``*.csv`` beside ``archive`` (or inside it)."""
    candidates = sorted(set(archive.parent.glob("*.csv")) | set(archive.glob("*.csv")))
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise DataFormatError(
            f"{archive}: no collection CSV found in {archive.parent} or {archive}; "
            f"download it with the {study} images or pass collection_csv="
        )
    raise DataFormatError(
        f"{archive}: several CSV files could be the collection CSV "
        f"({', '.join(str(c) for c in candidates)}); pass collection_csv="
    )


def read_archive(
    root: str | os.PathLike[str],
    *,
    study: str,
    adapter: str,
    collection_csv: str | os.PathLike[str] | None,
    image_id_col: str,
    subject_col: str,
    label_col: str,
    label_map: Mapping[str, str] | None,
    keep_labels: Sequence[str] | None,
    mask: str | os.PathLike[str] | None,
    select: Selector | None,
    description_col: str = "Description",
) -> ScanTable:
    """Match the archive's NIfTI files to the collection CSV by image id.

    See :func:`transmri.datasets.get_adni` for the arguments and the result.
    """
    archive = find_archive(root, study)
    scans, skipped = list_archive_scans(archive, study=study)
    mask_path = (
        str(check_existing_file(mask, what="brain mask").absolute()) if mask is not None else None
    )
    csv_path = (
        find_collection_csv(archive, study)
        if collection_csv is None
        else check_existing_file(collection_csv, what="collection CSV")
    )
    table = read_table(csv_path, what="collection CSV")
    source = str(csv_path)
    require_columns(table, [image_id_col, subject_col, label_col], source=source)

    by_id: dict[str, int] = {}
    duplicates: dict[str, list[int]] = {}
    for i, value in enumerate(table[image_id_col].tolist()):
        if is_blank(value):
            raise DataFormatError(f"{source}, row {i + 1}, column '{image_id_col}': empty image id")
        image_id = normalise_image_id(str(value))
        if image_id in by_id:
            duplicates.setdefault(image_id, [by_id[image_id] + 1]).append(i + 1)
        else:
            by_id[image_id] = i
    if duplicates:
        listed = "; ".join(f"{k} (rows {v})" for k, v in sorted(duplicates.items())[:10])
        raise DataFormatError(
            f"{source}, column '{image_id_col}': {len(duplicates)} duplicate image id(s), "
            f"expected each once: {listed}"
        )

    extras = {
        c: (f"csv_{snake_case(c)}" if snake_case(c) in _RESERVED else snake_case(c))
        for c in table.columns
        if c not in (image_id_col, subject_col)
    }
    rows: list[dict[str, object]] = []
    matched: set[str] = set()
    for scan in scans:
        index = by_id.get(scan.image_id)
        if index is None:
            skipped.append((str(scan.path), f"no row in collection CSV for image {scan.image_id}"))
            continue
        matched.add(scan.image_id)
        record = table.iloc[index]
        csv_subject = str(record[subject_col]).strip()
        if csv_subject != scan.subject:
            raise DataFormatError(
                f"{source}, row {index + 1}, column '{subject_col}': image {scan.image_id} "
                f"belongs to subject {csv_subject!r} but lies in folder {scan.subject!r} "
                f"({scan.path})"
            )
        description = (
            str(record[description_col]).strip()
            if description_col in table.columns and not is_blank(record[description_col])
            else scan.description
        )
        if select is not None:
            reason = select(description)
            if reason is not None:
                skipped.append((str(scan.path), reason))
                continue
        raw_label = record[label_col]
        if is_blank(raw_label):
            skipped.append((str(scan.path), f"empty label in column '{label_col}'"))
            continue
        text = str(raw_label).strip()
        row: dict[str, object] = {
            "path": str(scan.path),
            "subject": scan.subject,
            "label": label_map.get(text, text) if label_map else text,
            "mask": mask_path,
            "row": index + 1,
            "image_id": scan.image_id,
        }
        for col, new in extras.items():
            row[new] = record[col]
        if "description" not in row:
            row["description"] = description
        rows.append(row)
    for image_id, index in by_id.items():
        if image_id not in matched:
            skipped.append((f"{source} row {index + 1} (image {image_id})", "no scan downloaded"))
    return finish(
        pd.DataFrame(rows),
        source=str(archive),
        adapter=adapter,
        skipped=skipped,
        keep_labels=keep_labels,
        stacklevel=5,
    )
