"""PPMI scans as downloaded from the LONI Image and Data Archive.

A PPMI download has the same layout as an ADNI one::

    <root>/PPMI/<subject>/<description>/<date>/<image id>/PPMI_<subject>_MR_..._<image id>.nii

next to a collection CSV (``Image Data ID,Subject,Group,Sex,Age,Visit,Modality,
Description,Type,Acq Date,Format,Downloaded``) whose Group is one of ``PD``,
``Control``, ``Prodromal``, ``SWEDD``; ``Control`` is renamed ``HC``.

T1 or T2 (``mri_type``) is decided from the scan's description (the CSV
``Description``, else the description folder), upper-cased with punctuation
turned into spaces (see :func:`ppmi_mri_type`):

1. a description containing ``FLAIR`` is neither (FLAIR is skipped);
2. a word ``T2``/``T2W`` (e.g. ``AX T2 FSE``, ``T2W TSE``) makes it T2, except
   a T2* gradient echo (``AX T2* GRE``, ``T2 SWI``) or a dual-echo proton
   density / T2 series (``PD-T2 TSE``, ``AX PD/T2``, ``DUAL ECHO``): neither;
3. otherwise a word ``T1``/``T1W``, or ``MPRAGE``, ``MP RAGE``, ``SPGR``
   (also FSPGR), ``SAG 3D`` (e.g. ``SAG_3D_MPRAGE``, ``3D T1``) makes it T1;
4. anything else (DTI, rsfMRI, localizers, ...) is neither, and skipped.

The archive's ``Modality`` column says ``MRI`` for both and cannot tell them apart.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Literal

from transmri._validation import check_choice
from transmri.data import ScanTable
from transmri.datasets._archive import read_archive
from transmri.datasets._common import label_names

__all__ = ["PPMI_LABEL_MAP", "get_ppmi", "ppmi_mri_type"]

#: PPMI Group values renamed; the others (PD, Prodromal, SWEDD) are kept as they are.
PPMI_LABEL_MAP: Mapping[str, str] = MappingProxyType(
    {"Control": "HC", "Healthy Control": "HC", "Parkinson's Disease": "PD"}
)

_T2 = re.compile(r"\bT2(W|WI)?\b")
# T2* gradient echo / susceptibility, and dual-echo PD + T2: not a T2-weighted spin echo.
_NOT_T2 = re.compile(r"\bGRE\b|\bSWI\b|\bSWAN\b|\bSTAR\b|\bPD\b|\bDUAL\b")
_T1 = re.compile(r"\bT1(W|WI)?\b|MPRAGE|\bMP RAGE\b|SPGR\b|\bSAG 3D\b")


def ppmi_mri_type(description: str) -> Literal["T1", "T2"] | None:
    """Classify a PPMI series description as ``"T1"``, ``"T2"`` or ``None`` (neither).

    Example:
        >>> ppmi_mri_type("SAG_3D_MPRAGE"), ppmi_mri_type("AX T2 FSE"), ppmi_mri_type("DTI_gated")
        ('T1', 'T2', None)
        >>> ppmi_mri_type("AX T2* GRE"), ppmi_mri_type("PD-T2 TSE")
        (None, None)
    """
    text = " ".join(re.sub(r"[^0-9A-Z]+", " ", description.upper()).split())
    if "FLAIR" in text:
        return None
    if _T2.search(text):
        star = re.search(r"T2\s*\*", description.upper()) is not None
        return None if star or _NOT_T2.search(text) else "T2"
    if _T1.search(text):
        return "T1"
    return None


def get_ppmi(
    root: str | os.PathLike[str],
    *,
    mri_type: Literal["T1", "T2"] = "T1",
    collection_csv: str | os.PathLike[str] | None = None,
    labels: str | Sequence[str] | None = ("PD", "HC"),
    label_map: Mapping[str, str] | None = PPMI_LABEL_MAP,
    mask: str | os.PathLike[str] | None = None,
    image_id_col: str = "Image Data ID",
    subject_col: str = "Subject",
    label_col: str = "Group",
) -> ScanTable:
    """Read a PPMI download (image-archive layout + collection CSV) as a :class:`ScanTable`.

    Matching by image id and the result are as in
    :func:`transmri.datasets.get_adni`; the subject is the PPMI patient
    number (e.g. ``3001``).

    Args:
        root: the folder holding ``PPMI/``, or the ``PPMI/`` folder itself.
        mri_type: ``"T1"`` or ``"T2"``; scans of the other type (by the rule in
            the module docstring) are recorded as skipped.
        collection_csv: the archive's collection CSV or your own table;
            ``None`` uses the only ``*.csv`` beside (or inside) ``PPMI/``.
        labels: labels kept after ``label_map`` (default PD vs HC; e.g.
            ``("Prodromal", "HC")``); ``None`` keeps every group.
        label_map: renames groups (default ``Control -> HC``).
        mask: one brain-mask file for every scan.
        image_id_col: CSV column with the image id.
        subject_col: CSV column with the subject id.
        label_col: CSV column with the group.

    Raises:
        ConfigError: ``mri_type`` is not T1/T2.
        DataFormatError: as :func:`transmri.datasets.get_adni`.

    Example:
        >>> t2 = get_ppmi("/data/ppmi_download", mri_type="T2")  # doctest: +SKIP
        >>> t2.label_counts()  # doctest: +SKIP
        {'HC': 104, 'PD': 225}
    """
    check_choice("mri_type", mri_type, ("T1", "T2"))

    def select(description: str) -> str | None:
        found = ppmi_mri_type(description)
        if found == mri_type:
            return None
        kind = "neither T1 nor T2" if found is None else f"a {found} scan"
        return f"description {description!r} is {kind}, not {mri_type}"

    return read_archive(
        root,
        study="PPMI",
        adapter="get_ppmi",
        collection_csv=collection_csv,
        image_id_col=image_id_col,
        subject_col=subject_col,
        label_col=label_col,
        label_map=label_map,
        keep_labels=label_names(labels),
        mask=mask,
        select=select,
    )
