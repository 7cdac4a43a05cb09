"""The scan table: one validated row per scan, the common currency of transmri.

Every adapter (CSV, BIDS, ADNI, PPMI, IXI, synthetic) returns a
:class:`ScanTable`, so every later step (preprocessing, caching, splitting,
training) is shared.

Columns of ``ScanTable.frame``:

- ``path``: absolute path of the scan (str): a NIfTI file, or a folder
  holding one DICOM series (converted and cached when loaded, see
  :mod:`transmri.data.dicom`).
- ``subject``: subject identifier (str); several scans may share a subject.
- ``label``: class label (str) or ``<NA>`` for an unlabelled scan.
- ``mask``: absolute path of a per-scan brain mask (str) or ``<NA>``.
- ``row``: where the row came from (1-based data row of the source table),
  used to name the row in later error messages.
- any extra columns (age, sex, site, ...), kept as they were read.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from transmri._files import atomic_write_text
from transmri.errors import DataFormatError

__all__ = ["REQUIRED_COLUMNS", "ScanTable", "fold_reasons"]

REQUIRED_COLUMNS = ("path", "subject", "label", "mask", "row")


def _empty_skipped() -> pd.DataFrame:
    return pd.DataFrame({"item": pd.Series(dtype=str), "reason": pd.Series(dtype=str)})


@dataclass(frozen=True)
class ScanTable:
    """A validated table of scans, one row per scan.

    Build it with :meth:`from_csv`, :meth:`from_frame` or an adapter such as
    :func:`transmri.datasets.get_ixi`; methods return new tables and never
    change this one.

    Args:
        frame: the rows (see the module docstring for the columns).
        source: where the rows came from, used in error messages.
        skipped: what an adapter or filter dropped, one row per item with a
            ``reason``; nothing is dropped silently.

    Example:
        >>> import pandas as pd
        >>> t = ScanTable.from_frame(
        ...     pd.DataFrame({"path": ["/a.nii"], "subject": ["s1"], "label": ["AD"]}),
        ...     check_files=False)
        >>> t.labels
        ['AD']
    """

    frame: pd.DataFrame
    source: str = "<memory>"
    skipped: pd.DataFrame = field(default_factory=_empty_skipped)

    def __post_init__(self) -> None:
        missing = [c for c in REQUIRED_COLUMNS if c not in self.frame.columns]
        if missing:
            raise DataFormatError(
                f"{self.source}: scan table lacks column(s) {missing}; "
                f"columns found: {list(self.frame.columns)}"
            )

    # ------------------------------------------------------------------ build
    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        path_col: str = "path",
        subject_col: str = "subject",
        label_col: str | None = "label",
        mask_col: str | None = None,
        root: str | os.PathLike[str] | None = None,
        label_map: Mapping[str, str] | None = None,
        keep_labels: Sequence[str] | None = None,
        check_files: bool = True,
        source: str = "<memory>",
    ) -> ScanTable:
        """Validate a pandas table of scans and return a :class:`ScanTable`.

        Args:
            frame: one row per scan.
            path_col: column with the scan's path (relative paths are taken
                relative to ``root``).
            subject_col: column with the subject id.
            label_col: column with the class label; ``None`` for an
                unlabelled table (e.g. pretraining data).
            mask_col: optional column with a per-scan brain-mask path.
            root: folder that relative paths are relative to (default: the
                current directory).
            label_map: renames labels, e.g. ``{"Dementia": "AD"}``; applied
                before ``keep_labels``.
            keep_labels: keep only rows with these labels; the others are
                recorded in ``skipped``. Every label named here must occur.
            check_files: check that every scan and mask file exists (a scan
                may be a non-empty folder: one DICOM series).
            source: name of the table's origin, used in error messages.

        Raises:
            DataFormatError: naming the source, row and column of a missing
                column, an empty cell, a duplicate scan, a missing file or a
                label asked for that never occurs.
        """
        where = source
        if frame.shape[0] == 0:
            raise DataFormatError(f"{where}: the table has no rows")
        needed = [path_col, subject_col] + [c for c in (label_col, mask_col) if c is not None]
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise DataFormatError(
                f"{where}: missing column(s) {missing}; columns found: {list(frame.columns)}"
            )
        base = Path(root) if root is not None else Path.cwd()
        rows = (
            frame["row"].astype(int).tolist()
            if "row" in frame.columns
            else list(range(1, len(frame) + 1))
        )

        def cell_paths(col: str, *, required: bool) -> list[str | None]:
            out: list[str | None] = []
            for row, value in zip(rows, frame[col].tolist()):
                if _is_blank(value):
                    if required:
                        raise DataFormatError(f"{where}, row {row}, column '{col}': empty path")
                    out.append(None)
                    continue
                p = Path(str(value).strip()).expanduser()
                p = p if p.is_absolute() else base / p
                if check_files:
                    if not p.exists():
                        raise DataFormatError(
                            f"{where}, row {row}, column '{col}': file not found: {p}"
                        )
                    if p.is_dir() and (col != path_col or not any(p.iterdir())):
                        # A scan may be a DICOM series folder (converted when
                        # loaded); a mask may not, nor may an empty folder.
                        what = "a file" if col != path_col else "a file or a DICOM series folder"
                        raise DataFormatError(
                            f"{where}, row {row}, column '{col}': expected {what}, "
                            f"found {'an empty' if col == path_col else 'a'} directory: {p}"
                        )
                out.append(str(p.absolute()))
            return out

        paths = cell_paths(path_col, required=True)
        masks = cell_paths(mask_col, required=False) if mask_col else [None] * len(paths)
        subjects: list[str] = []
        for row, value in zip(rows, frame[subject_col].tolist()):
            if _is_blank(value):
                raise DataFormatError(
                    f"{where}, row {row}, column '{subject_col}': empty subject id"
                )
            subjects.append(str(value).strip())
        labels: list[str | None] = []
        if label_col is not None:
            for value in frame[label_col].tolist():
                if _is_blank(value):
                    labels.append(None)
                    continue
                text = str(value).strip()
                labels.append(label_map.get(text, text) if label_map else text)
        else:
            labels = [None] * len(paths)

        seen: dict[str | None, int] = {}  # a required column has no None path
        for row, p in zip(rows, paths):
            if p in seen:
                raise DataFormatError(
                    f"{where}, row {row}, column '{path_col}': duplicate scan {p} "
                    f"(first listed in row {seen[p]})"
                )
            seen[p] = row

        extra = [c for c in frame.columns if c not in {*needed, "row"}]
        out = pd.DataFrame(
            {
                "path": paths,
                "subject": subjects,
                "label": pd.array(labels, dtype="string"),
                "mask": pd.array(masks, dtype="string"),
                "row": rows,
            }
        )
        for c in extra:
            if c in out.columns:
                continue
            out[c] = frame[c].to_numpy()
        table = cls(out, source=source)
        if keep_labels is not None:
            table = table.keep_labels(keep_labels)
        return table

    @classmethod
    def from_csv(
        cls,
        csv_path: str | os.PathLike[str],
        *,
        path_col: str = "path",
        subject_col: str = "subject",
        label_col: str | None = "label",
        mask_col: str | None = None,
        root: str | os.PathLike[str] | None = None,
        label_map: Mapping[str, str] | None = None,
        keep_labels: Sequence[str] | None = None,
        check_files: bool = True,
        sep: str | None = None,
    ) -> ScanTable:
        """Read a CSV/TSV of scans. Relative paths are relative to ``root``
        (default: the CSV's folder).

        The separator is detected (comma, semicolon or tab) unless ``sep`` is
        given; a UTF-8 byte-order mark is accepted.

        Example:
            >>> table = ScanTable.from_csv("scans.csv", label_map={"Dementia": "AD"},
            ...                            keep_labels=["AD", "CN"])  # doctest: +SKIP
        """
        csv_file = Path(csv_path)
        if not csv_file.exists():
            raise FileNotFoundError(f"{csv_file}: scan table not found")
        if csv_file.is_dir():
            raise DataFormatError(f"{csv_file}: expected a CSV file, found a directory")
        try:
            text = csv_file.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            raise DataFormatError(f"{csv_file}: not a UTF-8 text table ({exc.reason})") from None
        if not text.strip():
            raise DataFormatError(f"{csv_file}: the file is empty")
        if sep is None:
            sep = _sniff_separator(text)
        try:
            frame = pd.read_csv(
                csv_file, sep=sep, encoding="utf-8-sig", dtype=str, keep_default_na=False
            )
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise DataFormatError(f"{csv_file}: cannot parse as a table: {exc}") from None
        frame.columns = [str(c).strip() for c in frame.columns]
        return cls.from_frame(
            frame,
            path_col=path_col,
            subject_col=subject_col,
            label_col=label_col,
            mask_col=mask_col,
            root=root if root is not None else csv_file.parent,
            label_map=label_map,
            keep_labels=keep_labels,
            check_files=check_files,
            source=str(csv_file),
        )

    # ------------------------------------------------------------- properties
    def __len__(self) -> int:
        return len(self.frame)

    @property
    def paths(self) -> list[str]:
        """Scan paths, in row order."""
        return [str(p) for p in self.frame["path"].tolist()]

    @property
    def subjects(self) -> list[str]:
        """Subject id of every row, in row order."""
        return [str(s) for s in self.frame["subject"].tolist()]

    @property
    def masks(self) -> list[str | None]:
        """Per-scan mask path of every row (``None`` where there is none)."""
        return [None if pd.isna(m) else str(m) for m in self.frame["mask"].tolist()]

    @property
    def labels(self) -> list[str]:
        """Sorted distinct labels present (unlabelled rows excluded)."""
        return sorted({str(v) for v in self.frame["label"].dropna().tolist()})

    @property
    def is_labelled(self) -> bool:
        """Whether every row has a label."""
        return bool(self.frame["label"].notna().all())

    def label_counts(self) -> dict[str, int]:
        """Number of scans per label."""
        counts = self.frame["label"].dropna().value_counts()
        return {str(k): int(v) for k, v in sorted(counts.items())}

    # ---------------------------------------------------------------- filters
    def keep_labels(self, labels: Iterable[str]) -> ScanTable:
        """Keep only rows whose label is one of ``labels``.

        Dropped rows are recorded in ``skipped``. A label asked for that does
        not occur at all is an error (usually a typo such as 'Dementa').
        """
        wanted = [str(x) for x in labels]
        present = set(self.labels)
        absent = [x for x in wanted if x not in present]
        if absent:
            raise DataFormatError(
                f"{self.source}: label(s) {absent} asked for but not found; "
                f"labels present: {sorted(present)}"
            )
        mask = self.frame["label"].isin(wanted).fillna(False).astype(bool)
        dropped = self.frame.loc[~mask]
        skipped = pd.DataFrame(
            {
                "item": dropped["path"].astype(str).tolist(),
                "reason": [
                    "no label" if pd.isna(v) else f"label {v!r} not kept"
                    for v in dropped["label"].tolist()
                ],
            }
        )
        return self.with_frame(self.frame.loc[mask], skipped=skipped)

    def map_labels(self, mapping: Mapping[str, str]) -> ScanTable:
        """Rename labels (e.g. ``{"Dementia": "AD", "Control": "HC"}``)."""
        frame = self.frame.copy()
        frame["label"] = (
            frame["label"]
            .map(lambda v: v if pd.isna(v) else mapping.get(str(v), str(v)))
            .astype("string")
        )
        return self.with_frame(frame)

    def check_labels(self, allowed: Iterable[str]) -> ScanTable:
        """Raise if any row has a label outside ``allowed``; return ``self``."""
        allowed_set = {str(a) for a in allowed}
        for row, value in zip(self.frame["row"].tolist(), self.frame["label"].tolist()):
            if pd.isna(value):
                raise DataFormatError(f"{self.source}, row {row}, column 'label': missing label")
            if str(value) not in allowed_set:
                raise DataFormatError(
                    f"{self.source}, row {row}, column 'label': unknown label {value!r}; "
                    f"expected one of {sorted(allowed_set)}"
                )
        return self

    def check_subject_labels(self) -> ScanTable:
        """Raise naming the first subject whose scans carry two labels; return ``self``.

        A subject-grouped split keeps a subject's scans together, so they must
        share one label (unlabelled rows are ignored here).
        """
        seen: dict[str, tuple[str, int]] = {}
        for row, subject, value in zip(
            self.frame["row"].tolist(), self.subjects, self.frame["label"].tolist()
        ):
            if pd.isna(value):
                continue
            first = seen.setdefault(subject, (str(value), int(row)))
            if first[0] != str(value):
                raise DataFormatError(
                    f"{self.source}, row {row}, column 'label': subject {subject!r} has scans "
                    f"labelled {first[0]!r} (row {first[1]}) and {str(value)!r}; a subject's "
                    "scans must share one label (a subject-grouped split keeps them together)"
                )
        return self

    def require_labels(self) -> ScanTable:
        """Raise naming the first unlabelled row, if any; return ``self``."""
        missing = self.frame["label"].isna()
        if missing.any():
            row = int(self.frame.loc[missing, "row"].iloc[0])
            path = self.frame.loc[missing, "path"].iloc[0]
            raise DataFormatError(
                f"{self.source}, row {row}, column 'label': missing label for {path} "
                f"({int(missing.sum())} unlabelled row(s) in all)"
            )
        return self

    def subset(self, positions: Sequence[int] | Iterable[int]) -> ScanTable:
        """Rows at these 0-based positions, in the given order."""
        return self.with_frame(self.frame.iloc[list(positions)])

    def with_frame(self, frame: pd.DataFrame, *, skipped: pd.DataFrame | None = None) -> ScanTable:
        """A table with other rows, same source; ``skipped`` adds to what was skipped."""
        all_skipped = (
            self.skipped
            if skipped is None or len(skipped) == 0
            else pd.concat([self.skipped, skipped], ignore_index=True)
        )
        return ScanTable(frame.reset_index(drop=True), source=self.source, skipped=all_skipped)

    def to_csv(self, path: str | os.PathLike[str]) -> None:
        """Write the table as CSV (temp file, then rename).

        Raises:
            OSError: the file cannot be written (read-only folder, disk full),
                naming it; no partial or temporary file is left behind.
        """
        try:
            atomic_write_text(path, self.frame.to_csv(index=False))
        except OSError as exc:
            raise type(exc)(exc.errno, f"scan table: {exc.strerror or exc}") from exc

    def summary(self) -> str:
        """One line: scans, subjects, label counts and what was skipped."""
        parts = [
            f"{len(self)} scans",
            f"{self.frame['subject'].nunique()} subjects",
            f"labels {self.label_counts()}",
        ]
        if len(self.skipped):
            # One count per kind of reason (``table.skipped`` keeps every row's own).
            counts = fold_reasons(self.skipped["reason"].astype(str).tolist())
            parts.append(f"skipped {len(self.skipped)} ({counts})")
        return f"{self.source}: " + ", ".join(parts)


_SLOT = re.compile(r"'[^']*'|\d+(?:\.\d+)?")


def fold_reasons(reasons: Sequence[str]) -> dict[str, int]:
    """Count reasons by kind: reasons that differ only in numbers or quoted values are one.

    A value shared by every reason of a kind is kept as it is; numbers that
    differ become their range and quoted values that differ become ``'...'``,
    so no digit is ever replaced by a placeholder.

    Example:
        >>> fold_reasons(["age 48 between young_max 40 and old_min 60",
        ...               "age 52.5 between young_max 40 and old_min 60", "no scan"])
        {'age 48..52.5 between young_max 40 and old_min 60': 2, 'no scan': 1}
    """
    groups: dict[str, list[list[str]]] = {}
    for reason in reasons:
        template = _SLOT.sub("\0", reason)
        groups.setdefault(template, []).append(_SLOT.findall(reason))
    folded: dict[str, int] = {}
    for template, values in groups.items():
        text = template
        for slot in zip(*values):
            distinct = sorted(set(slot))
            if len(distinct) == 1:
                shown = distinct[0]
            elif slot[0].startswith("'"):
                shown = "'...'"
            else:
                ordered = sorted(distinct, key=float)
                shown = f"{ordered[0]}..{ordered[-1]}"
            text = text.replace("\0", shown, 1)
        folded[text] = folded.get(text, 0) + len(values)
    return dict(sorted(folded.items(), key=lambda kv: (-kv[1], kv[0])))


def _is_blank(value: object) -> bool:
    if value is None:
        return True
    try:
        if pd.isna(value):  # type: ignore[call-overload]
            return True
    except (TypeError, ValueError):
        return False
    return isinstance(value, str) and not value.strip()


def _sniff_separator(text: str) -> str:
    head = "\n".join(text.splitlines()[:20])
    try:
        return csv.Sniffer().sniff(head, delimiters=",;\t").delimiter
    except csv.Error:
        return ","
