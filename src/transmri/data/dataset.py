"""A torch ``Dataset`` of preprocessed brain volumes, one item per table row.

Example:
    >>> ds = MRIDataset(table, PreprocessConfig(target_shape=(64, 64, 48)))  # doctest: +SKIP
    >>> item = ds[0]  # doctest: +SKIP
    >>> item["image"].shape, item["label"].dtype  # doctest: +SKIP
    (torch.Size([1, 64, 64, 48]), torch.int64)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch
from torch.utils.data import Dataset

from transmri.data.preprocess import PreprocessConfig, preprocess_scan
from transmri.data.table import ScanTable
from transmri.errors import ConfigError, DataFormatError

if TYPE_CHECKING:
    from transmri.data.cache import VolumeCache

__all__ = ["RESERVED_KEYS", "MRIDataset", "Transform", "infer_target_classes"]

_TABLE_COLUMNS = ("path", "subject", "label", "mask", "row")

RESERVED_KEYS = ("image", "label", "index")
"""Item keys that an extra target column may not be called."""

Transform = Callable[[torch.Tensor], Any]
"""A callable taking a ``(1, D, H, W)`` tensor and returning one (augmentation)."""


def _cleaned(values: pd.Series) -> pd.Series:
    """The column with blank strings as missing (CSV tables read empty cells as '')."""
    return values.map(lambda v: pd.NA if isinstance(v, str) and not v.strip() else v)


def _is_numeric(values: pd.Series) -> bool:
    present = _cleaned(values).dropna()
    if len(present) == 0:
        return True
    converted = pd.to_numeric(present, errors="coerce")
    return bool(converted.notna().all())


def infer_target_classes(table: ScanTable, targets: Sequence[str]) -> dict[str, list[str]]:
    """Categories of each non-numeric target column (sorted distinct values).

    A column whose present values all parse as numbers (e.g. ``age``) is a
    regression target and is left out; any other (e.g. ``sex`` with ``"F"``,
    ``"M"``) is categorical and maps to the index of its value in the sorted
    list. Compute it once on the whole table and pass it to every split's
    :class:`MRIDataset`, so the indices agree across splits.

    Raises:
        DataFormatError: a target column is not in the table.
    """
    _check_target_columns(table, targets)
    out: dict[str, list[str]] = {}
    for name in targets:
        column = _cleaned(table.frame[name])
        if not _is_numeric(column):
            out[name] = sorted({str(v).strip() for v in column.dropna().tolist()})
    return out


def _check_target_columns(table: ScanTable, targets: Sequence[str]) -> None:
    if isinstance(targets, str):
        raise ConfigError(
            f"targets: expected a sequence of column names, got the string {targets!r}"
        )
    for name in targets:
        if name in RESERVED_KEYS or name in _TABLE_COLUMNS:
            raise ConfigError(
                f"targets: {name!r} is reserved; expected an extra column such as 'age' or 'sex'"
            )
        if name not in table.frame.columns:
            extra = [c for c in table.frame.columns if c not in _TABLE_COLUMNS]
            raise DataFormatError(
                f"{table.source}: target column {name!r} not found; extra columns: {extra}"
            )


class MRIDataset(Dataset[dict[str, Any]]):
    """Preprocessed volumes of a :class:`ScanTable`, with labels and extra targets.

    Each item is a dict:

    - ``"image"``: float32 tensor ``(1, D, H, W)``;
    - ``"label"``: int64 scalar tensor, the index of the row's label in
      :attr:`classes`, or ``-1`` for an unlabelled row;
    - ``"index"``: the row's position in :attr:`table` (int);
    - one float32 scalar tensor per name in ``targets``: the value of a
      numeric column (e.g. ``age``), or for a categorical column (e.g.
      ``sex``) the index of its value in ``target_classes[name]``; ``nan``
      where the cell is empty.

    Volumes are read through ``cache.get`` when a cache is given, otherwise
    preprocessed from the NIfTI file on every access. ``normalization``
    (``(mean, std)``) is applied next, then ``transform`` (augmentation).
    The dataset keeps no open file (a cache returns a fresh memory map on
    each call), so it is safe in ``DataLoader`` worker processes.

    Args:
        table: the scans, one item per row.
        preprocessing: how a scan becomes a volume.
        cache: a :class:`~transmri.data.cache.VolumeCache` built with the same
            ``preprocessing`` (checked).
        classes: the label names, in index order; default: the table's sorted
            labels.
        transform: random augmentation, called on the ``(1, D, H, W)`` tensor.
        targets: extra columns to return (regression or auxiliary targets).
        normalization: ``(mean, std)`` to z-score every volume with.
        target_classes: categories of categorical targets (see
            :func:`infer_target_classes`); computed from ``table`` if omitted.

    Raises:
        DataFormatError: a row's label is not in ``classes`` (naming the row),
            a target column is missing, or a categorical value is unknown.
        ConfigError: a bad ``normalization``, ``classes`` or ``cache``.

    Example:
        >>> ds = MRIDataset(table, config, classes=["CN", "AD"], targets=("age",))  # doctest: +SKIP
    """

    def __init__(
        self,
        table: ScanTable,
        preprocessing: PreprocessConfig,
        *,
        cache: VolumeCache | None = None,
        classes: Sequence[str] | None = None,
        transform: Transform | None = None,
        targets: Sequence[str] = (),
        normalization: tuple[float, float] | None = None,
        target_classes: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        if not isinstance(table, ScanTable):
            raise TypeError(f"table: expected a ScanTable, got {type(table).__name__}")
        if not isinstance(preprocessing, PreprocessConfig):
            raise TypeError(
                f"preprocessing: expected a PreprocessConfig, got {type(preprocessing).__name__}"
            )
        if cache is not None:
            cache_config = getattr(cache, "config", None)
            if cache_config is not None and cache_config != preprocessing:
                raise ConfigError(
                    "cache: built for another preprocessing config; expected "
                    f"{preprocessing.to_dict()}, found {cache_config.to_dict()}"
                )
        if transform is not None and not callable(transform):
            raise ConfigError(f"transform: expected a callable, got {type(transform).__name__}")
        self.table = table
        self.preprocessing = preprocessing
        self.cache = cache
        self.transform = transform
        self.classes: list[str] = _check_classes(table, classes)
        _check_target_columns(table, targets)
        self.targets: tuple[str, ...] = tuple(targets)
        self.target_classes: dict[str, list[str]] = (
            {k: list(v) for k, v in target_classes.items() if k in self.targets}
            if target_classes is not None
            else infer_target_classes(table, self.targets)
        )
        self.normalization = _check_normalization(normalization)
        # Plain Python / numpy state only: cheap to copy into worker processes.
        self._paths = table.paths
        self._masks = table.masks
        self._labels = self._encode_labels()
        self._target_values = {name: self._encode_target(name) for name in self.targets}

    # ------------------------------------------------------------ encoding
    def _encode_labels(self) -> npt.NDArray[np.int64]:
        index = {c: i for i, c in enumerate(self.classes)}
        out = np.full(len(self.table), -1, dtype=np.int64)
        frame = self.table.frame
        for pos, (row, value) in enumerate(zip(frame["row"].tolist(), frame["label"].tolist())):
            if pd.isna(value):
                continue
            if str(value) not in index:
                raise DataFormatError(
                    f"{self.table.source}, row {row}, column 'label': unknown label {value!r}; "
                    f"expected one of {self.classes}"
                )
            out[pos] = index[str(value)]
        return out

    def _encode_target(self, name: str) -> npt.NDArray[np.float32]:
        column = _cleaned(self.table.frame[name])
        if name not in self.target_classes:
            if not _is_numeric(column):
                raise DataFormatError(
                    f"{self.table.source}: target column {name!r} is not numeric; "
                    "pass its categories in target_classes"
                )
            return pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float32)
        cats = {c: float(i) for i, c in enumerate(self.target_classes[name])}
        out = np.full(len(column), np.nan, dtype=np.float32)
        for pos, (row, value) in enumerate(zip(self.table.frame["row"].tolist(), column.tolist())):
            if not isinstance(value, str) and pd.isna(value):
                continue
            text = str(value).strip()
            if text not in cats:
                raise DataFormatError(
                    f"{self.table.source}, row {row}, column {name!r}: unknown value {value!r}; "
                    f"expected one of {self.target_classes[name]}"
                )
            out[pos] = cats[text]
        return out

    # --------------------------------------------------------- properties
    @property
    def labels(self) -> npt.NDArray[np.int64]:
        """Label index of every row (``-1`` where unlabelled), in row order."""
        return self._labels.copy()

    @property
    def subjects(self) -> list[str]:
        """Subject id of every row, in row order."""
        return self.table.subjects

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    def target_values(self, name: str) -> npt.NDArray[np.float32]:
        """The encoded values of target ``name`` for every row (``nan`` where missing)."""
        if name not in self._target_values:
            raise KeyError(f"unknown target {name!r}; targets: {list(self.targets)}")
        return self._target_values[name].copy()

    def __len__(self) -> int:
        return len(self._paths)

    def __repr__(self) -> str:
        return (
            f"MRIDataset({len(self)} scans, {len(set(self.subjects))} subjects, "
            f"classes={self.classes}, targets={list(self.targets)})"
        )

    # -------------------------------------------------------------- items
    def volume(self, index: int) -> npt.NDArray[np.float32]:
        """The preprocessed volume ``(D, H, W)`` of row ``index``, as float32,
        before normalization and augmentation."""
        index = self._check_index(index)
        if self.cache is not None:
            data = self.cache.get(self._paths[index], self._masks[index])
        else:
            data = preprocess_scan(self._paths[index], self._masks[index], self.preprocessing)
        # np.array copies out of the memory map, so no file stays referenced.
        return np.array(data, dtype=np.float32)

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = self._check_index(index)
        if self.cache is not None:
            # A fresh float32 tensor straight from the memory map: no extra numpy copy.
            image = self.cache.get_tensor(self._paths[index], self._masks[index])
        else:
            image = torch.from_numpy(self.volume(index))[None]
        if self.normalization is not None:
            mean, std = self.normalization
            image = (image - float(mean)) / float(std)
        if self.transform is not None:
            image = _plain_tensor(self.transform(image), self._paths[index])
        item: dict[str, Any] = {
            "image": image,
            "label": torch.tensor(self._labels[index], dtype=torch.int64),
            "index": index,
        }
        for name, values in self._target_values.items():
            item[name] = torch.tensor(values[index], dtype=torch.float32)
        return item

    def _check_index(self, index: int) -> int:
        if isinstance(index, bool) or not isinstance(index, int | np.integer):
            raise TypeError(f"index: expected an int, got {type(index).__name__}")
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} scans")
        return int(index) % n


def _plain_tensor(value: object, path: str) -> torch.Tensor:
    """A transform's output as a plain float32 tensor (MONAI may return MetaTensor)."""
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if not isinstance(value, torch.Tensor):
        raise DataFormatError(
            f"{path}: the transform returned {type(value).__name__}; expected a tensor"
        )
    out = value.as_subclass(torch.Tensor).to(torch.float32).contiguous()
    if out.ndim != 4 or out.shape[0] != 1:
        raise DataFormatError(
            f"{path}: the transform returned shape {tuple(out.shape)}; expected (1, D, H, W)"
        )
    return out


def _check_classes(table: ScanTable, classes: Sequence[str] | None) -> list[str]:
    if classes is None:
        return list(table.labels)
    if isinstance(classes, str):
        raise ConfigError(
            f"classes: expected a sequence of label names, got the string {classes!r}"
        )
    out = [str(c) for c in classes]
    if len(set(out)) != len(out):
        raise ConfigError(f"classes: expected distinct names, got {out}")
    return out


def _check_normalization(value: object) -> tuple[float, float] | None:
    if value is None:
        return None
    ok = isinstance(value, tuple | list) and len(value) == 2
    mean: Any = None
    std: Any = None
    if ok:
        mean, std = value  # type: ignore[misc]
        ok = (
            all(
                isinstance(v, int | float | np.floating)
                and not isinstance(v, bool)
                and math.isfinite(v)
                for v in (mean, std)
            )
            and std > 0
        )
    if not ok:
        raise ConfigError(
            f"normalization: expected (mean, std) with finite mean and std > 0, got {value!r}"
        )
    return (float(mean), float(std))
