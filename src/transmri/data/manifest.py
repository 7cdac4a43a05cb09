"""The JSON manifest of a :class:`~transmri.data.databunch.DataBunch`.

A manifest records everything needed to rebuild the same DataBunch without
re-splitting: the full scan table (extra columns and their dtypes included),
the split positions into it, the preprocessing and augmentation configs, the
seed, the classes, the targets, the normalisation learned on the training
split, the cache folder and how the splits were made. It is plain JSON (no
pickle), written to a temporary file and then renamed.

:class:`DataBunchManifest` checks the format (object, keys, version, shapes
of the values); the DataBunch it feeds checks the content (split positions
within the table, no subject shared between splits, labels and targets).

Example:
    >>> manifest = DataBunchManifest.load("run/data.json")  # doctest: +SKIP
    >>> manifest.splits.train[:3]  # doctest: +SKIP
    array([0, 2, 5])
    >>> data = DataBunch.load("run/data.json")  # the usual entry point  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from transmri._files import atomic_write_bytes
from transmri.data.augment import AugmentConfig
from transmri.data.preprocess import PreprocessConfig
from transmri.data.split import SplitIndices
from transmri.data.table import REQUIRED_COLUMNS, ScanTable
from transmri.errors import DataFormatError

__all__ = ["MANIFEST_FORMAT_VERSION", "MANIFEST_KIND", "DataBunchManifest"]

MANIFEST_FORMAT_VERSION = 1
"""Version of the JSON manifest written by :meth:`DataBunch.save`."""

MANIFEST_KIND = "transmri.DataBunch"
"""The manifest's ``kind`` entry."""

_MANIFEST_KEYS = (
    "format_version",
    "kind",
    "source",
    "table",
    "splits",
    "preprocessing",
    "augment",
    "seed",
    "classes",
    "targets",
    "target_classes",
    "normalization",
    "cache_dir",
)


@dataclass(frozen=True)
class DataBunchManifest:
    """What a DataBunch manifest holds, between the DataBunch and its JSON.

    The values are taken as given: :meth:`from_dict` checks the format only,
    and the DataBunch built from them validates the rest.

    Attributes:
        table: the full scan table (its ``source`` is saved too).
        splits: row positions of each split into ``table``.
        preprocessing: how a scan becomes a volume.
        augment: the training augmentation, or ``None``.
        seed: the DataBunch's seed.
        classes: label names in index order (``[]`` for an unlabelled task).
        targets: extra columns returned with each item.
        target_classes: category names of categorical targets (``None``:
            infer them from the table).
        normalization: ``(mean, std)`` learned on the training split, or ``None``.
        cache_dir: folder of the volume cache, or ``None``.
        split_method: how the splits were made (method and its options).
    """

    table: ScanTable
    splits: SplitIndices
    preprocessing: PreprocessConfig
    augment: AugmentConfig | None
    seed: int
    classes: list[str]
    targets: list[str]
    target_classes: dict[str, list[str]] | None
    normalization: tuple[float, float] | None
    cache_dir: str | os.PathLike[str] | None
    split_method: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able manifest: table, splits and every setting."""
        frame = self.table.frame
        table_json = json.loads(frame.to_json(orient="split", index=False))
        return {
            "format_version": MANIFEST_FORMAT_VERSION,
            "kind": MANIFEST_KIND,
            "source": self.table.source,
            "table": {
                "columns": table_json["columns"],
                "dtypes": {str(c): str(t) for c, t in frame.dtypes.items()},
                "data": table_json["data"],
            },
            "splits": self.splits.as_dict(),
            "preprocessing": self.preprocessing.to_dict(),
            "augment": None if self.augment is None else self.augment.to_dict(),
            "seed": self.seed,
            "classes": list(self.classes),
            "targets": list(self.targets),
            "target_classes": self.target_classes,
            "normalization": None if self.normalization is None else list(self.normalization),
            "cache_dir": None if self.cache_dir is None else str(self.cache_dir),
            "split_method": self.split_method,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the manifest as JSON (temp file, then rename); return its path.

        Raises:
            OSError: the file cannot be written (read-only folder, disk full),
                naming it; no partial or temporary file is left behind.
        """
        target = Path(path)
        _write_atomic(target, json.dumps(self.to_dict(), indent=1).encode("utf-8"), "manifest")
        return target

    @classmethod
    def from_dict(cls, manifest: dict[str, Any], *, where: str = "manifest") -> DataBunchManifest:
        """Read :meth:`to_dict`'s output back, checking its format.

        Args:
            manifest: the decoded JSON.
            where: names the manifest in error messages (its path, when read
                from a file).

        Raises:
            DataFormatError: not an object, a missing key, another format
                version, a malformed value or a table without a required column.
        """
        if not isinstance(manifest, dict):
            raise DataFormatError(f"{where}: expected a JSON object, got {type(manifest).__name__}")
        missing = [k for k in _MANIFEST_KEYS if k not in manifest]
        if missing:
            raise DataFormatError(f"{where}: missing key(s) {missing}")
        if manifest["format_version"] != MANIFEST_FORMAT_VERSION:
            raise DataFormatError(
                f"{where}: format_version {manifest['format_version']!r} not supported; "
                f"expected {MANIFEST_FORMAT_VERSION}"
            )
        try:
            table = _table_from_json(manifest["table"], source=str(manifest["source"]))
            splits = SplitIndices.from_dict(manifest["splits"])
            preprocessing = PreprocessConfig.from_dict(manifest["preprocessing"])
            augment = (
                None
                if manifest["augment"] is None
                else AugmentConfig.from_dict(manifest["augment"])
            )
            norm = manifest["normalization"]
            normalization = None if norm is None else (float(norm[0]), float(norm[1]))
        except (KeyError, TypeError, IndexError) as exc:
            raise DataFormatError(
                f"{where}: malformed manifest ({type(exc).__name__}: {exc})"
            ) from None
        return cls(
            table=table,
            splits=splits,
            preprocessing=preprocessing,
            augment=augment,
            cache_dir=manifest["cache_dir"],
            seed=int(manifest["seed"]),
            targets=list(manifest["targets"]),
            classes=list(manifest["classes"]),
            normalization=normalization,
            split_method=dict(manifest.get("split_method") or {"method": "unknown"}),
            target_classes=manifest["target_classes"],
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> DataBunchManifest:
        """Read a manifest written by :meth:`save`.

        Raises:
            FileNotFoundError: no such file.
            DataFormatError: not JSON, or a missing / malformed key (naming it).
        """
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"{p}: DataBunch manifest not found")
        try:
            manifest = json.loads(p.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataFormatError(f"{p}: not a JSON manifest ({exc})") from None
        return cls.from_dict(manifest, where=str(p))


# ------------------------------------------------------------------ helpers
def _write_atomic(target: Path, data: bytes, what: str) -> None:
    """Write ``data`` to ``target`` atomically; a failure names ``target`` and ``what``.

    Raises:
        OSError: of the cause's type and errno, naming ``target``; the temp
            file is removed, and ``target`` keeps its previous content.
    """
    try:
        atomic_write_bytes(target, data)
    except OSError as exc:
        raise type(exc)(exc.errno, f"{what}: {exc.strerror or exc}") from exc


def _table_from_json(data: dict[str, Any], *, source: str) -> ScanTable:
    frame = pd.DataFrame(data["data"], columns=data["columns"])
    dtypes: dict[str, str] = data.get("dtypes", {})
    for col, dtype in dtypes.items():
        if col not in frame.columns or dtype == "object":
            continue
        # keep what JSON gave when the dtype does not apply; the values are right
        with contextlib.suppress(TypeError, ValueError):
            frame[col] = frame[col].astype(pd.api.types.pandas_dtype(dtype))
    for col in REQUIRED_COLUMNS:
        if col not in frame.columns:
            raise DataFormatError(f"{source}: manifest table lacks column {col!r}")
    return ScanTable(frame, source=source)
