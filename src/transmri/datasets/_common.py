"""Helpers shared by the dataset adapters: reading tables, checking columns,
recording and reporting what was matched and what was skipped.

Every adapter ends with :func:`finish`, so that what was dropped is both in
``ScanTable.skipped`` and in a log line / warning with counts; nothing is
dropped silently.
"""

from __future__ import annotations

import csv
import logging
import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from transmri.data import ScanTable
from transmri.data.table import fold_reasons
from transmri.errors import DataFormatError

__all__ = [
    "BLANKS",
    "finish",
    "is_blank",
    "label_names",
    "read_table",
    "require_columns",
    "skipped_frame",
    "snake_case",
]

logger = logging.getLogger("transmri.datasets")

#: Cell values read as "missing" (BIDS writes ``n/a``).
BLANKS = frozenset({"", "n/a", "na", "nan", "none", "null"})


def is_blank(value: object) -> bool:
    """Whether a table cell is empty or one of the usual missing-value markers."""
    if value is None:
        return True
    try:
        if pd.isna(value):  # type: ignore[call-overload]
            return True
    except (TypeError, ValueError):
        return False
    return str(value).strip().lower() in BLANKS


def label_names(labels: str | Sequence[str] | None) -> list[str] | None:
    """``labels`` as a list of names: one string is one label (``"AD"``, not ``A``, ``D``)."""
    if labels is None:
        return None
    return [labels] if isinstance(labels, str) else [str(x) for x in labels]


def snake_case(name: str) -> str:
    """``"Image Data ID"`` -> ``"image_data_id"``; ``"Acq Date"`` -> ``"acq_date"``."""
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_") or "column"


def read_table(path: str | os.PathLike[str], *, what: str = "table") -> pd.DataFrame:
    """Read a CSV/TSV (separator detected) or an Excel sheet, every cell as text.

    Args:
        path: the file; ``.xls``/``.xlsx`` are read with pandas' Excel reader.
        what: what the table is, for messages ("participants table", ...).

    Raises:
        FileNotFoundError: the file does not exist.
        ImportError: an Excel file and its reader is not installed (says
            what to ``pip install``).
        DataFormatError: the file is empty or cannot be parsed.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: {what} not found")
    if p.is_dir():
        raise DataFormatError(f"{p}: expected a {what} file, found a directory")
    suffix = p.suffix.lower()
    if suffix in (".xls", ".xlsx"):
        engine, package = ("xlrd", "xlrd") if suffix == ".xls" else ("openpyxl", "openpyxl")
        try:
            __import__(engine)
        except ImportError:
            raise ImportError(
                f"{p}: reading a {suffix} {what} needs the '{package}' package: "
                f"pip install {package} (or save the sheet as CSV)"
            ) from None
        frame = pd.read_excel(p, dtype=str, engine=engine)  # type: ignore[call-overload]
        frame = frame.fillna("")
    else:
        try:
            text = p.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            raise DataFormatError(f"{p}: {what} is not UTF-8 text ({exc.reason})") from None
        if not text.strip():
            raise DataFormatError(f"{p}: the {what} is empty")
        if suffix == ".tsv":
            sep = "\t"
        else:
            head = "\n".join(text.splitlines()[:20])
            try:
                sep = csv.Sniffer().sniff(head, delimiters=",;\t").delimiter
            except csv.Error:
                sep = ","
        try:
            frame = pd.read_csv(p, sep=sep, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise DataFormatError(f"{p}: cannot parse the {what}: {exc}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def require_columns(frame: pd.DataFrame, columns: Iterable[str], *, source: str) -> None:
    """Raise naming the missing columns and listing the columns found."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataFormatError(
            f"{source}: missing column(s) {missing}; columns found: {list(frame.columns)}"
        )


def skipped_frame(items: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """A ``skipped`` table (columns ``item``, ``reason``) from ``(item, reason)`` pairs."""
    return pd.DataFrame(
        {
            "item": pd.Series([i for i, _ in items], dtype=str),
            "reason": pd.Series([r for _, r in items], dtype=str),
        }
    )


def finish(
    frame: pd.DataFrame,
    *,
    source: str,
    adapter: str,
    skipped: Sequence[tuple[str, str]],
    keep_labels: Sequence[str] | None,
    label_map: Mapping[str, str] | None = None,
    check_files: bool = True,
    stacklevel: int = 4,
) -> ScanTable:
    """Build the :class:`ScanTable`, attach what was skipped and report counts.

    ``frame`` has the standard columns (path, subject, label, mask) plus
    extras. Rows dropped by ``keep_labels`` are added to ``skipped`` too.
    """
    if len(frame) == 0:
        reasons = _reason_counts(skipped_frame(skipped))
        raise DataFormatError(
            f"{source}: no scan could be matched to a row ({len(skipped)} item(s) skipped: "
            f"{reasons})"
        )
    table = ScanTable.from_frame(
        frame,
        mask_col="mask",
        label_map=label_map,
        check_files=check_files,
        source=source,
    )
    table = table.with_frame(table.frame, skipped=skipped_frame(skipped))
    if keep_labels is not None:
        table = table.keep_labels(keep_labels)
    report(table, adapter=adapter, stacklevel=stacklevel)
    return table


def report(table: ScanTable, *, adapter: str, stacklevel: int = 3) -> None:
    """Log what was matched; warn (with counts per reason) when anything was skipped.

    ``stacklevel`` is passed to :func:`warnings.warn` so that the warning
    points at the user's call of the adapter.
    """
    n_masks = int(table.frame["mask"].notna().sum())
    logger.info(
        "%s: matched %d scans of %d subjects, labels %s, %d with a mask",
        adapter,
        len(table),
        table.frame["subject"].nunique(),
        table.label_counts(),
        n_masks,
    )
    if 0 < n_masks < len(table):
        warnings.warn(
            f"{adapter} ({table.source}): mixed masking: {n_masks} of {len(table)} scans have "
            "a brain mask, the others none; skull-stripped and whole-head scans look "
            "different to the network: give every scan a mask, or none",
            UserWarning,
            stacklevel=stacklevel,
        )
    if len(table.skipped):
        message = (
            f"{adapter} ({table.source}): kept {len(table)} scans, skipped "
            f"{len(table.skipped)} item(s): {_reason_counts(table.skipped)}; "
            "see table.skipped"
        )
        logger.info(message)
        warnings.warn(message, UserWarning, stacklevel=stacklevel)


def _reason_counts(skipped: pd.DataFrame) -> dict[str, int]:
    if len(skipped) == 0:
        return {}
    return fold_reasons(skipped["reason"].astype(str).tolist())
