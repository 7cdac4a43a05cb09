"""Read anatomical scans and their labels from a BIDS dataset.

Layout read (https://bids-specification.readthedocs.io)::

    root/
      participants.tsv                       participant_id + one column per variable
      sub-<label>/anat/sub-<label>[_acq-<a>][_run-<n>]_T1w.nii[.gz]
      sub-<label>/ses-<s>/anat/sub-<label>_ses-<s>[_acq-<a>][_run-<n>]_T1w.nii[.gz]

Scans whose participant has no row (or an empty label) in ``participants.tsv``,
participants without any scan, sessions not asked for and runs not kept are
recorded in ``ScanTable.skipped`` and reported with counts.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import pandas as pd

from transmri._validation import check_choice, check_existing_dir
from transmri.data import ScanTable
from transmri.datasets._common import (
    finish,
    is_blank,
    read_table,
    require_columns,
)
from transmri.errors import DataFormatError

__all__ = ["from_bids"]

_RESERVED = ("path", "subject", "label", "mask", "row", "session", "run")
_NIFTI = re.compile(r"^(?P<stem>.+)\.nii(\.gz)?$")


def from_bids(
    root: str | os.PathLike[str],
    *,
    label_col: str | None,
    suffix: str = "T1w",
    sessions: Sequence[str] | None = None,
    runs: Literal["all", "first", "last"] = "all",
    participants_col: str = "participant_id",
    mask_pattern: str | None = None,
    label_map: Mapping[str, str] | None = None,
    keep_labels: Sequence[str] | None = None,
) -> ScanTable:
    """Read the anatomical scans of a BIDS dataset as a :class:`ScanTable`.

    Args:
        root: the BIDS dataset folder (holding ``participants.tsv``).
        label_col: ``participants.tsv`` column holding the class label
            (e.g. ``"diagnosis"``); ``None`` for an unlabelled table (e.g.
            pretraining data), where every scan with a participants row is kept.
        suffix: BIDS suffix of the scans to read (``"T1w"``, ``"T2w"``, ...).
        sessions: session labels to keep (``"01"`` or ``"ses-01"``); ``None``
            keeps all. Scans of other sessions are recorded as skipped.
        runs: ``"all"`` keeps every run; ``"first"``/``"last"`` keep the
            lowest/highest run of each subject, session and acquisition (a scan
            without a run entity counts as run 1).
        participants_col: ``participants.tsv`` column with the participant id
            (``sub-01`` or ``01``).
        mask_pattern: where a per-scan brain mask lies, relative to ``root``,
            with placeholders ``{subject}`` (``sub-01``), ``{session}``
            (``ses-01`` or empty) and ``{stem}`` (the scan's file name without
            ``.nii[.gz]``), e.g.
            ``"derivatives/masks/{subject}/{session}/anat/{stem}_mask.nii.gz"``.
            A scan whose mask file is absent gets no mask (counted in the log).
        label_map: renames labels, e.g. ``{"Dementia": "AD"}``, before
            ``keep_labels``.
        keep_labels: keep only these labels; the other scans are recorded as
            skipped.

    Returns:
        One row per scan with columns ``path, subject, label, mask, row``,
        ``session`` (``ses-..`` or empty), ``run`` (an integer or ``<NA>``)
        and every ``participants.tsv`` column (a column whose name clashes with
        one of these is renamed ``participants_<name>``). ``row`` is the
        participants.tsv data row of the scan's participant.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        DataFormatError: no ``participants.tsv``; ``label_col`` or
            ``participants_col`` missing (the columns found are listed); a
            participant listed twice; no scan matching the pattern.

    Example:
        A dataset with two subjects, one with two sessions::

            ds/participants.tsv                      participant_id  diagnosis  age
                                                     sub-01          AD         71
                                                     sub-02          CN         68
            ds/sub-01/ses-bl/anat/sub-01_ses-bl_T1w.nii.gz
            ds/sub-01/ses-m12/anat/sub-01_ses-m12_T1w.nii.gz
            ds/sub-02/anat/sub-02_run-1_T1w.nii.gz
            ds/sub-02/anat/sub-02_run-2_T1w.nii.gz

        >>> table = from_bids("ds", label_col="diagnosis", runs="first")  # doctest: +SKIP
        >>> table.frame[["subject", "session", "run", "label", "age"]]  # doctest: +SKIP
          subject session   run label age
        0  sub-01  ses-bl  <NA>    AD  71
        1  sub-01 ses-m12  <NA>    AD  71
        2  sub-02           1    CN  68
        >>> table.skipped  # doctest: +SKIP
                                            item                              reason
        0  .../sub-02/anat/sub-02_run-2_T1w.nii.gz  run 2 not kept (runs='first')
    """
    base = check_existing_dir(root, what="BIDS dataset folder")
    check_choice("runs", runs, ("all", "first", "last"))
    if not suffix or not re.fullmatch(r"[A-Za-z0-9]+", suffix):
        raise DataFormatError(f"suffix: expected a BIDS suffix such as 'T1w', got {suffix!r}")
    participants_file = base / "participants.tsv"
    if not participants_file.exists():
        raise DataFormatError(
            f"{base}: expected a BIDS dataset with participants.tsv at its root "
            "(and sub-<label>/[ses-<label>/]anat/ folders); participants.tsv not found"
        )
    participants = read_table(participants_file, what="participants table")
    source = str(participants_file)
    require_columns(
        participants, [participants_col] + ([label_col] if label_col else []), source=source
    )

    by_subject: dict[str, int] = {}
    for i, value in enumerate(participants[participants_col].tolist()):
        if is_blank(value):
            raise DataFormatError(
                f"{source}, row {i + 1}, column '{participants_col}': empty participant id"
            )
        sub = _sub(str(value))
        if sub in by_subject:
            raise DataFormatError(
                f"{source}, row {i + 1}, column '{participants_col}': participant {sub} "
                f"listed twice (first in row {by_subject[sub] + 1})"
            )
        by_subject[sub] = i

    wanted_sessions = None if sessions is None else {_ses(s) for s in sessions}
    scans = _find_scans(base, suffix)
    if not scans:
        raise DataFormatError(
            f"{base}: no scans found matching sub-*/anat/sub-*_{suffix}.nii[.gz] or "
            f"sub-*/ses-*/anat/sub-*_ses-*_{suffix}.nii[.gz]"
        )

    skipped: list[tuple[str, str]] = []
    candidates: list[dict[str, object]] = []
    for path, entities in scans:
        sub = "sub-" + entities["sub"]
        ses = "ses-" + entities["ses"] if "ses" in entities else ""
        if wanted_sessions is not None and ses not in wanted_sessions:
            skipped.append((str(path), f"session {ses or '(none)'!r} not selected"))
            continue
        if sub not in by_subject:
            skipped.append((str(path), "no participants.tsv row"))
            continue
        candidates.append(
            {
                "path": path,
                "sub": sub,
                "ses": ses,
                "run": int(entities["run"]) if "run" in entities else None,
                "group": tuple(sorted((k, v) for k, v in entities.items() if k != "run")),
            }
        )
    if runs != "all":
        candidates = _select_runs(candidates, runs, skipped)

    renamed = {c: (f"participants_{c}" if c in _RESERVED else c) for c in participants.columns}
    rows: list[dict[str, object]] = []
    for cand in candidates:
        sub = str(cand["sub"])
        row_index = by_subject[sub]
        record = participants.iloc[row_index]
        label: str | None = None
        if label_col is not None:
            value = record[label_col]
            if is_blank(value):
                skipped.append((str(cand["path"]), f"empty label in column '{label_col}'"))
                continue
            label = str(value).strip()
        path = Path(str(cand["path"]))
        mask = _mask_for(base, mask_pattern, sub=sub, ses=str(cand["ses"]), path=path)
        row: dict[str, object] = {
            "path": str(path),
            "subject": sub,
            "label": label,
            "mask": mask,
            "row": row_index + 1,
            "session": cand["ses"],
            "run": cand["run"],
        }
        for col, new in renamed.items():
            row[new] = record[col]
        rows.append(row)
    found_subjects = {"sub-" + entities["sub"] for _, entities in scans}
    for sub, index in by_subject.items():
        if sub not in found_subjects:
            skipped.append((f"participants.tsv row {index + 1} ({sub})", "no scan"))

    frame = pd.DataFrame(rows)
    if len(frame):
        frame["run"] = pd.array(frame["run"].tolist(), dtype="Int64")
    return finish(
        frame,
        source=str(base),
        adapter="from_bids",
        skipped=skipped,
        keep_labels=keep_labels,
        label_map=label_map,
    )


def _sub(value: str) -> str:
    value = value.strip()
    return value if value.startswith("sub-") else f"sub-{value}"


def _ses(value: str) -> str:
    value = str(value).strip()
    return value if value.startswith("ses-") else f"ses-{value}"


def _find_scans(base: Path, suffix: str) -> list[tuple[Path, dict[str, str]]]:
    """Scans in ``sub-*/anat`` and ``sub-*/ses-*/anat`` whose name ends in ``_<suffix>``."""
    found: list[tuple[Path, dict[str, str]]] = []
    folders = sorted(base.glob("sub-*/anat")) + sorted(base.glob("sub-*/ses-*/anat"))
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            match = _NIFTI.match(path.name)
            if match is None or not path.is_file():
                continue
            parts = match.group("stem").split("_")
            if parts[-1] != suffix:
                continue
            entities = dict(p.split("-", 1) for p in parts[:-1] if "-" in p)
            if "sub" not in entities:
                continue
            found.append((path.absolute(), entities))
    return sorted(found, key=lambda item: str(item[0]))


def _select_runs(
    candidates: list[dict[str, object]],
    runs: str,
    skipped: list[tuple[str, str]],
) -> list[dict[str, object]]:
    groups: dict[object, list[dict[str, object]]] = {}
    for cand in candidates:
        groups.setdefault(cand["group"], []).append(cand)
    kept: list[dict[str, object]] = []
    for members in groups.values():
        ordered = sorted(members, key=_run_number)
        chosen = ordered[0] if runs == "first" else ordered[-1]
        kept.append(chosen)
        for other in members:
            if other is not chosen:
                skipped.append((str(other["path"]), f"run {other['run']} not kept (runs={runs!r})"))
    order = {id(c): i for i, c in enumerate(candidates)}
    return sorted(kept, key=lambda c: order[id(c)])


def _run_number(candidate: dict[str, object]) -> int:
    run = candidate["run"]
    return run if isinstance(run, int) else 1


def _mask_for(base: Path, pattern: str | None, *, sub: str, ses: str, path: Path) -> str | None:
    if pattern is None:
        return None
    match = _NIFTI.match(path.name)
    stem = match.group("stem") if match else path.name
    try:
        relative = pattern.format(subject=sub, session=ses, stem=stem)
    except (KeyError, IndexError) as exc:
        raise DataFormatError(
            f"mask_pattern {pattern!r}: unknown placeholder {exc}; "
            "expected {subject}, {session} and {stem}"
        ) from None
    candidate = base / Path(*[p for p in Path(relative).parts if p])
    return str(candidate.absolute()) if candidate.is_file() else None
