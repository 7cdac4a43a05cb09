"""IXI T1 scans (healthy adults, three London sites) with their demographics.

Layout read::

    root/
      t1/IXI<id>-<site>-<n>_T1.nii.gz            (or IXI<id>-<site>-<n>-T1.nii.gz, the
                                                   official download's name; the files
                                                   may also lie directly in root)
      brainmask/IXI<id>-<site>-<n>_brainmask.nii.gz   optional per-scan masks
      participants.csv  (MRID,Age,Sex)  or  IXI.xls / IXI.csv (the official table)

Sites (parsed from the file name): ``HH`` Hammersmith Hospital (Philips 3T),
``Guys`` Guy's Hospital (Philips 1.5T), ``IOP`` Institute of Psychiatry (GE 1.5T).

The demographics table is either the one distributed with IXI (``IXI.xls``,
columns ``IXI_ID, "SEX_ID (1=m, 2=f)", AGE, ...``; read as CSV, or as .xls
with ``xlrd`` installed) or a CSV with columns ``MRID,Age,Sex`` (``MRID`` like
``IXI012-HH-1211``, ``Sex`` F/M). Rows are matched to scans by the numeric IXI
id. IXI data is CC BY-SA 3.0: attribute "IXI dataset, brain-development.org".
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from transmri._validation import check_choice, check_existing_dir, check_positive_float
from transmri.data import ScanTable
from transmri.datasets._common import finish, is_blank, read_table
from transmri.errors import ConfigError, DataFormatError

__all__ = ["IXI_SITES", "get_ixi"]

#: IXI acquisition sites, as abbreviated in the file names.
IXI_SITES = {
    "HH": "Hammersmith Hospital (Philips 3T)",
    "Guys": "Guy's Hospital (Philips 1.5T)",
    "IOP": "Institute of Psychiatry (GE 1.5T)",
}

_NAME = re.compile(r"^(?P<stem>IXI(?P<id>\d+)-(?P<site>[A-Za-z]+)-(?P<num>\d+))[-_]T1\.nii(\.gz)?$")
_DEMOGRAPHICS_NAMES = ("participants.csv", "IXI.xls", "IXI.xlsx", "IXI.csv")


@dataclass
class _Person:
    row: int
    sex: str | None
    age: float | None
    conflict: str = ""


def get_ixi(
    root: str | os.PathLike[str],
    *,
    task: Literal["sex", "age_group", "age"] = "sex",
    demographics: str | os.PathLike[str] | None = None,
    mask_dir: str | os.PathLike[str] | None = "brainmask",
    young_max: float = 40.0,
    old_min: float = 60.0,
) -> ScanTable:
    """Read the IXI T1 scans as a :class:`ScanTable` labelled for ``task``.

    Args:
        root: the IXI folder (with ``t1/``, or holding the T1 files itself).
        task: ``"sex"`` labels ``F``/``M``; ``"age_group"`` labels ``young``
            (age < ``young_max``) and ``old`` (age >= ``old_min``) and skips
            the ages between; ``"age"`` leaves scans unlabelled (for
            regression or pretraining) and keeps every scan with an age.
        demographics: the demographics table; ``None`` uses the first of
            ``participants.csv``, ``IXI.xls``, ``IXI.xlsx``, ``IXI.csv`` in ``root``.
        mask_dir: folder of per-scan masks ``<stem>_brainmask.nii[.gz]``
            (relative to ``root`` unless absolute); scans without one get no
            mask. ``None`` ignores masks.
        young_max: upper age bound (exclusive) of the ``young`` group.
        old_min: lower age bound (inclusive) of the ``old`` group.

    Returns:
        One row per scan with ``path, subject`` (``IXI012``), ``label, mask,
        row`` (the demographics data row), ``site``, ``age`` (float years or
        NaN), ``sex`` (``F``/``M`` or empty) and ``scan_id`` (e.g.
        ``IXI012-HH-1211``). Scans without a demographics row or without the
        value the task needs, ages between the groups and demographics rows
        without a scan are in ``table.skipped``.

    Raises:
        DataFormatError: ``root`` holds no IXI T1 files; no demographics table;
            a table of neither known format (the columns found are listed);
            a sex or age value that cannot be read (row and column named).
        ImportError: an ``.xls`` table and ``xlrd`` is not installed.
        ConfigError: ``task`` unknown, or ``young_max > old_min``.

    Example:
        >>> table = get_ixi("../shared/data/ixi", task="sex")  # doctest: +SKIP
        >>> table.label_counts()  # doctest: +SKIP
        {'F': 94, 'M': 87}
    """
    base = check_existing_dir(root, what="IXI folder")
    check_choice("task", task, ("sex", "age_group", "age"))
    young_max = check_positive_float("young_max", young_max)
    old_min = check_positive_float("old_min", old_min)
    if young_max > old_min:
        raise ConfigError(f"young_max: expected a value <= old_min ({old_min}), got {young_max}")
    scan_dir = base / "t1" if (base / "t1").is_dir() else base
    found = [
        (p, m)
        for p in sorted(scan_dir.iterdir())
        if (m := _NAME.match(p.name)) is not None and p.is_file()
    ]
    if not found:
        raise DataFormatError(
            f"{base}: expected IXI T1 scans named IXI<id>-<site>-<n>_T1.nii[.gz] in "
            f"{base / 't1'} or {base}; found none"
        )
    table_path = _find_demographics(base, demographics)
    people = _read_demographics(table_path)
    mask_root = None if mask_dir is None else base / Path(mask_dir)

    skipped: list[tuple[str, str]] = []
    rows: list[dict[str, object]] = []
    seen_ids: set[int] = set()
    for path, match in found:
        ixi_id = int(match.group("id"))
        seen_ids.add(ixi_id)
        person = people.get(ixi_id)
        if person is None:
            skipped.append((str(path), "no demographics row"))
            continue
        if person.conflict:
            skipped.append((str(path), person.conflict))
            continue
        label: str | None
        if task == "sex":
            if person.sex is None:
                skipped.append((str(path), "no sex in demographics"))
                continue
            label = person.sex
        else:
            if person.age is None:
                skipped.append((str(path), "no age in demographics"))
                continue
            if task == "age":
                label = None
            elif person.age < young_max:
                label = "young"
            elif person.age >= old_min:
                label = "old"
            else:
                skipped.append(
                    (
                        str(path),
                        f"age {person.age:g} between young_max {young_max:g} and "
                        f"old_min {old_min:g}",
                    )
                )
                continue
        stem = match.group("stem")
        rows.append(
            {
                "path": str(path.absolute()),
                "subject": f"IXI{ixi_id:03d}",
                "label": label,
                "mask": _mask_for(mask_root, stem),
                "row": person.row,
                "site": match.group("site"),
                "age": math.nan if person.age is None else person.age,
                "sex": person.sex or "",
                "scan_id": stem,
            }
        )
    for ixi_id, person in sorted(people.items()):
        if ixi_id not in seen_ids:
            skipped.append((f"{table_path} row {person.row} (IXI{ixi_id:03d})", "no scan"))
    frame = pd.DataFrame(rows)
    if len(frame):
        frame["age"] = frame["age"].astype(float)
    return finish(frame, source=str(base), adapter="get_ixi", skipped=skipped, keep_labels=None)


def _find_demographics(base: Path, demographics: str | os.PathLike[str] | None) -> Path:
    if demographics is not None:
        return Path(demographics)
    for name in _DEMOGRAPHICS_NAMES:
        if (base / name).is_file():
            return base / name
    raise DataFormatError(
        f"{base}: no demographics table found (looked for {', '.join(_DEMOGRAPHICS_NAMES)}); "
        "pass demographics="
    )


def _read_demographics(path: Path) -> dict[int, _Person]:
    frame = read_table(path, what="IXI demographics table")
    source = str(path)
    columns = list(frame.columns)
    if "IXI_ID" in columns:
        sex_cols = [c for c in columns if c.upper().startswith("SEX")]
        if not sex_cols or "AGE" not in columns:
            raise DataFormatError(
                f"{source}: official IXI table needs columns IXI_ID, 'SEX_ID (1=m, 2=f)' "
                f"and AGE; columns found: {columns}"
            )
        id_col, sex_col, age_col, official = "IXI_ID", sex_cols[0], "AGE", True
    elif {"MRID", "Age", "Sex"} <= set(columns):
        id_col, sex_col, age_col, official = "MRID", "Sex", "Age", False
    else:
        raise DataFormatError(
            f"{source}: expected IXI demographics with columns MRID, Age, Sex (participants "
            f"CSV) or IXI_ID, 'SEX_ID (1=m, 2=f)', AGE (official IXI.xls); "
            f"columns found: {columns}"
        )
    people: dict[int, _Person] = {}
    for i, record in enumerate(frame.to_dict("records")):
        row = i + 1
        raw_id = str(record[id_col]).strip()
        if not raw_id:
            continue  # trailing empty lines of spreadsheets
        id_match = re.search(r"(\d+)", raw_id)
        if id_match is None:
            raise DataFormatError(
                f"{source}, row {row}, column '{id_col}': expected an IXI id such as "
                f"{'12' if official else 'IXI012-HH-1211'}, got {raw_id!r}"
            )
        ixi_id = int(id_match.group(1))
        sex = _parse_sex(
            record[sex_col], official=official, where=f"{source}, row {row}, column '{sex_col}'"
        )
        age = _parse_age(record[age_col], where=f"{source}, row {row}, column '{age_col}'")
        previous = people.get(ixi_id)
        if previous is None:
            people[ixi_id] = _Person(row, sex, age)
            continue
        # The official table lists some subjects twice; merge rows that agree.
        if (sex and previous.sex and sex != previous.sex) or (
            age is not None and previous.age is not None and abs(age - previous.age) > 0.01
        ):
            previous.conflict = f"conflicting demographics rows {previous.row} and {row}"
        previous.sex = previous.sex or sex
        previous.age = previous.age if previous.age is not None else age
    return people


def _parse_sex(value: object, *, official: bool, where: str) -> str | None:
    if is_blank(value):
        return None
    text = str(value).strip().lower()
    if official:
        codes = {"1": "M", "1.0": "M", "2": "F", "2.0": "F"}
        if text in codes:
            return codes[text]
        raise DataFormatError(f"{where}: expected 1 (male) or 2 (female), got {value!r}")
    words = {"f": "F", "female": "F", "m": "M", "male": "M"}
    if text in words:
        return words[text]
    raise DataFormatError(f"{where}: expected F or M, got {value!r}")


def _parse_age(value: object, *, where: str) -> float | None:
    if is_blank(value):
        return None
    try:
        age = float(str(value).strip())
    except ValueError:
        raise DataFormatError(f"{where}: expected an age in years, got {value!r}") from None
    if not math.isfinite(age) or age <= 0 or age > 130:
        raise DataFormatError(f"{where}: expected an age in years (0-130), got {value!r}")
    return age


def _mask_for(mask_root: Path | None, stem: str) -> str | None:
    if mask_root is None:
        return None
    for suffix in ("_brainmask.nii.gz", "_brainmask.nii"):
        candidate = mask_root / f"{stem}{suffix}"
        if candidate.is_file():
            return str(candidate.absolute())
    return None
