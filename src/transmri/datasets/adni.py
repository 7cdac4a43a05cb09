"""ADNI scans as downloaded from the LONI Image and Data Archive.

An ADNI download unpacks to::

    <root>/ADNI/<subject>/<description>/<date>/<image id>/ADNI_<subject>_..._<image id>.nii

e.g. ``ADNI/002_S_0295/MPR__GradWarp__B1_Correction__N3__Scaled/
2006-04-18_08_20_30.0/I45108/ADNI_002_S_0295_MR_MPR__GradWarp__..._I45108.nii``,
next to the collection CSV exported from the archive
(``Image Data ID,Subject,Group,Sex,Age,Visit,Modality,Description,Type,Acq Date,
Format,Downloaded``, Group one of ``AD, CN, MCI, EMCI, LMCI, SMC``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType

from transmri.data import ScanTable
from transmri.datasets._archive import Selector as _Selector
from transmri.datasets._archive import read_archive
from transmri.datasets._common import label_names

__all__ = ["ADNI_LABEL_MAP", "get_adni"]

#: Diagnosis spellings found in ADNI tables (ADNIMERGE ``DX``, older exports),
#: mapped to the archive's Group codes.
ADNI_LABEL_MAP: Mapping[str, str] = MappingProxyType(
    {"Dementia": "AD", "AD": "AD", "Control": "CN", "Normal": "CN", "NL": "CN", "CN": "CN"}
)


def get_adni(
    root: str | os.PathLike[str],
    *,
    collection_csv: str | os.PathLike[str] | None = None,
    labels: str | Sequence[str] | None = ("AD", "CN"),
    label_map: Mapping[str, str] | None = ADNI_LABEL_MAP,
    mask: str | os.PathLike[str] | None = None,
    description: str | Sequence[str] | None = None,
    image_id_col: str = "Image Data ID",
    subject_col: str = "Subject",
    label_col: str = "Group",
) -> ScanTable:
    """Read an ADNI download (image-archive layout + collection CSV) as a :class:`ScanTable`.

    Scans are matched to CSV rows by image id: the ``I<digits>`` folder name
    (or, failing that, the ``_I<digits>.nii`` end of the file name) against
    the CSV's ``Image Data ID``. The ``subject`` column is the ADNI subject
    (e.g. ``002_S_0295``), so splits keep all visits of a subject together.

    Args:
        root: the folder holding ``ADNI/``, or the ``ADNI/`` folder itself.
        collection_csv: the archive's collection CSV, or your own table with
            the same kind of columns (see ``image_id_col`` and the others).
            ``None`` uses the only ``*.csv`` beside (or inside) ``ADNI/``.
        labels: labels to keep, after ``label_map``; default AD vs CN. Pass
            e.g. ``("MCI", "CN")`` for other tasks, ``None`` to keep every
            group. Scans of other groups are recorded as skipped.
        label_map: renames labels before ``labels`` is applied; the default
            maps ``Dementia -> AD``, ``Normal``/``NL``/``Control -> CN``.
        mask: one brain-mask file for every scan (e.g. for images registered
            to a template); stored in the ``mask`` column.
        description: keep only scans whose description (CSV ``Description``,
            else the folder name) contains this text, or one of these texts,
            ignoring case and punctuation (``"MPR; GradWarp"`` matches the
            folder ``MPR__GradWarp__B1_Correction``). Others are skipped.
        image_id_col: CSV column with the image id.
        subject_col: CSV column with the subject id (must match the folder).
        label_col: CSV column with the diagnosis group.

    Returns:
        One row per matched scan with ``path, subject, label, mask, row``
        (the CSV data row), ``image_id`` and every other CSV column in
        snake case (``group``, ``sex``, ``age``, ``visit``, ``description``,
        ``acq_date``, ...). Files without a CSV row, CSV rows without a file,
        empty groups and groups not kept are in ``table.skipped``.

    Raises:
        DataFormatError: ``root`` is not in the archive layout; a CSV column is
            missing (the columns found are listed); an image id is listed
            twice or found in two files (the ids are named); a CSV subject
            differs from the scan's folder.

    Example:
        >>> table = get_adni("/data/adni_download")  # doctest: +SKIP
        >>> table.label_counts()  # doctest: +SKIP
        {'AD': 475, 'CN': 494}
        >>> mci = get_adni("/data/adni_download", labels=("MCI", "CN"))  # doctest: +SKIP
    """
    return read_archive(
        root,
        study="ADNI",
        adapter="get_adni",
        collection_csv=collection_csv,
        image_id_col=image_id_col,
        subject_col=subject_col,
        label_col=label_col,
        label_map=label_map,
        keep_labels=label_names(labels),
        mask=mask,
        select=None if description is None else _description_filter(description),
    )


def _normalise(text: str) -> str:
    return re.sub(r"[^0-9a-z]+", " ", text.lower()).strip()


def _description_filter(description: str | Sequence[str]) -> _Selector:
    wanted = [description] if isinstance(description, str) else list(description)
    keys = [_normalise(w) for w in wanted]

    def select(text: str) -> str | None:
        if any(k in _normalise(text) for k in keys):
            return None
        return f"description {text!r} does not match {wanted}"

    return select
