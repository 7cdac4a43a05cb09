"""The :class:`DataBunch`: one study split into train / validation / test, ready to load.

It ties a :class:`ScanTable` to a preprocessing config, an optional on-disk
cache, a subject-grouped stratified split, augmentation (training split only)
and an optional normalisation learned on the training split, and hands out
datasets and data loaders. Its manifest (JSON, see :mod:`transmri.data.manifest`)
restores the same splits.

Example:
    >>> data = DataBunch(table, PreprocessConfig(target_shape=(64, 64, 48)),
    ...                  cache_dir="cache", augment="light")  # doctest: +SKIP
    >>> data.prepare(n_jobs=2)  # doctest: +SKIP
    >>> data.build_dataloaders(bs=8)  # doctest: +SKIP
    >>> batch = next(iter(data.train_dl))  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Sampler, get_worker_info

from transmri._validation import check_positive_int
from transmri.data._databunch_stats import sample_figure, split_stats, stats_text
from transmri.data.augment import AugmentConfig, build_augmentation
from transmri.data.cache import VolumeCache, check_content_leakage
from transmri.data.dataset import MRIDataset, infer_target_classes
from transmri.data.manifest import MANIFEST_FORMAT_VERSION, DataBunchManifest
from transmri.data.preprocess import PreprocessConfig
from transmri.data.split import (
    SPLIT_NAMES,
    SplitIndices,
    balanced_subsample,
    check_leakage,
    kfold_splits,
    train_val_test_split,
)
from transmri.data.table import ScanTable
from transmri.errors import ConfigError, DataFormatError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["MANIFEST_FORMAT_VERSION", "DataBunch", "SplitName"]

SplitName: TypeAlias = Literal["train", "val", "test"]
_SPLITS: tuple[SplitName, ...] = ("train", "val", "test")


def _resolve_augment(augment: AugmentConfig | str | None) -> AugmentConfig | None:
    if augment is None:
        return None
    if isinstance(augment, AugmentConfig):
        return augment
    if isinstance(augment, str):
        return AugmentConfig.preset(augment)
    raise ConfigError(
        f"augment: expected None, an AugmentConfig or a preset name, got {type(augment).__name__}"
    )


def _check_split(split: object) -> SplitName:
    if split not in SPLIT_NAMES:
        raise ConfigError(f"split: expected one of {list(SPLIT_NAMES)}, got {split!r}")
    return split  # type: ignore[return-value]


def _seed_worker(worker_id: int) -> None:
    """Give each loader worker its own random streams (augmentation must differ)."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
    info = get_worker_info()
    transform = getattr(getattr(info, "dataset", None), "transform", None)
    set_state = getattr(transform, "set_random_state", None)
    if callable(set_state):
        set_state(seed=seed)


def _task_classes(table: ScanTable, classes: Sequence[str] | None) -> list[str]:
    """The class list of the task; checks every row against it."""
    if classes is not None:
        if isinstance(classes, str):
            raise ConfigError(
                f"classes: expected a sequence of label names, got the string {classes!r}"
            )
        names = [str(c) for c in classes]
        if len(set(names)) != len(names) or not names:
            raise ConfigError(f"classes: expected distinct label names, got {names}")
        table.check_labels(names)
        table.check_subject_labels()
        return names
    if table.frame["label"].isna().all():
        return []  # unlabelled task (e.g. autoencoder pretraining)
    try:
        table.require_labels()
    except DataFormatError as exc:
        raise DataFormatError(
            f"{exc}; a labelled task needs every row labelled: drop unlabelled rows "
            "(e.g. table.keep_labels([...])) or remove all labels for an unlabelled task"
        ) from None
    table.check_subject_labels()
    return table.labels


class DataBunch:
    """A study split by subject into train / val / test, with datasets and loaders.

    The constructor validates and splits; it reads no volume. Volumes are
    read (and cached, with ``cache_dir``) when :meth:`prepare` runs or a
    dataset item is first asked for.

    Args:
        table: the scans. If any row is labelled, every row must be (a
            labelled task); a table without labels gives an unlabelled task
            (``classes == []``, items have ``label == -1``).
        preprocessing: how a scan becomes a volume.
        cache_dir: folder of a :class:`~transmri.data.cache.VolumeCache`;
            ``None`` preprocesses on every read.
        val_size: fraction of scans for validation (0 allowed, with a warning).
        test_size: fraction of scans for testing.
        seed: seeds the split, subsampling and the training loader's shuffle.
        augment: an :class:`~transmri.data.augment.AugmentConfig` or a preset
            name (``"none"``, ``"light"``, ``"standard"``); training split only.
        targets: extra columns returned with each item (e.g. ``("age", "sex")``).
        classes: the label names in index order (default: sorted labels);
            a row with another label is an error naming the row.
        num_training_samples: keep only this many training scans (seeded);
            the dropped scans are used nowhere.
        balance: make the training split label-balanced (undersampling to
            the rarest class, or to ``num_training_samples`` in total).

    Raises:
        ConfigError: a bad option (naming it, expected vs found).
        DataFormatError: unknown or missing labels (naming the row), a class
            with too few subjects for the split (naming the class), a
            missing target column.

    Attributes:
        table: the full table; ``splits`` holds row positions into it.
        splits: the :class:`~transmri.data.split.SplitIndices`.
        normalization: ``(mean, std)`` after :meth:`normalize`, else ``None``.
        split_method: how the splits were made (method and its options; for
            :meth:`kfold`, also ``repeat`` and ``fold``), saved in the manifest.
        train_dl, val_dl, test_dl: set by :meth:`build_dataloaders`.

    Example:
        >>> data = DataBunch(table, PreprocessConfig(target_shape=(64, 64, 48)),
        ...                  val_size=0.1, test_size=0.2, seed=0)  # doctest: +SKIP
        >>> print(data.print_stats())  # doctest: +SKIP
    """

    table: ScanTable
    splits: SplitIndices
    preprocessing: PreprocessConfig
    cache_dir: Path | None
    seed: int
    augment: AugmentConfig | None
    targets: tuple[str, ...]
    classes: list[str]
    target_classes: dict[str, list[str]]
    normalization: tuple[float, float] | None
    split_method: dict[str, Any]
    train_dl: DataLoader[dict[str, Any]] | None
    val_dl: DataLoader[dict[str, Any]] | None
    test_dl: DataLoader[dict[str, Any]] | None

    def __init__(
        self,
        table: ScanTable,
        preprocessing: PreprocessConfig = PreprocessConfig(),  # noqa: B008 (frozen)
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        val_size: float = 0.1,
        test_size: float = 0.1,
        seed: int = 42,
        augment: AugmentConfig | str | None = None,
        targets: Sequence[str] = (),
        classes: Sequence[str] | None = None,
        num_training_samples: int | None = None,
        balance: bool = False,
    ) -> None:
        _check_table(table)
        task_classes = _task_classes(table, classes)
        seed = check_positive_int("seed", seed, minimum=0)
        splits = train_val_test_split(
            table, val_size=val_size, test_size=test_size, seed=seed, stratify=bool(task_classes)
        )
        splits = _subsample_train(
            table,
            splits,
            num_training_samples,
            balance=balance,
            seed=seed,
            labelled=bool(task_classes),
        )
        self._setup(
            table,
            splits,
            preprocessing=preprocessing,
            cache_dir=cache_dir,
            seed=seed,
            augment=augment,
            targets=targets,
            classes=task_classes,
            normalization=None,
            split_method={
                "method": "train_val_test_split",
                "val_size": val_size,
                "test_size": test_size,
                "num_training_samples": num_training_samples,
                "balance": balance,
            },
        )

    # ------------------------------------------------------------ builders
    def _setup(
        self,
        table: ScanTable,
        splits: SplitIndices,
        *,
        preprocessing: PreprocessConfig,
        cache_dir: str | os.PathLike[str] | None,
        seed: int,
        augment: AugmentConfig | str | None,
        targets: Sequence[str],
        classes: list[str],
        normalization: tuple[float, float] | None,
        split_method: dict[str, Any],
        target_classes: dict[str, list[str]] | None = None,
    ) -> None:
        if not isinstance(preprocessing, PreprocessConfig):
            raise TypeError(
                f"preprocessing: expected a PreprocessConfig, got {type(preprocessing).__name__}"
            )
        if cache_dir is not None and not isinstance(cache_dir, str | os.PathLike):
            raise ConfigError(
                f"cache_dir: expected a folder path or None, got {type(cache_dir).__name__}"
            )
        if isinstance(targets, str):
            raise ConfigError(
                f"targets: expected a sequence of column names, got the string {targets!r}"
            )
        n = len(table)
        for name in _SPLITS:
            positions = splits[name]
            if len(positions) and int(positions.max()) >= n:
                raise DataFormatError(
                    f"splits.{name}: position {int(positions.max())} is beyond the table's {n} rows"
                )
        if len(splits.train) == 0:
            raise DataFormatError(f"{table.source}: the training split is empty")
        subjects = np.asarray(table.subjects)
        for i, a in enumerate(_SPLITS):
            for b in _SPLITS[i + 1 :]:
                check_leakage(
                    subjects[splits[a]].tolist(), subjects[splits[b]].tolist(), names=(a, b)
                )
        self.table = table
        self.splits = splits
        self.preprocessing = preprocessing
        self.cache_dir = None if cache_dir is None else Path(cache_dir).expanduser()
        self.seed = seed
        self.augment = _resolve_augment(augment)
        self.targets = tuple(targets)
        self.classes = list(classes)
        self.target_classes = (
            infer_target_classes(table, self.targets)
            if target_classes is None
            else {k: list(v) for k, v in target_classes.items()}
        )
        self.normalization = normalization
        self.split_method = dict(split_method)
        self.train_dl = self.val_dl = self.test_dl = None
        self._cache: VolumeCache | None = None
        self._datasets: dict[str, MRIDataset] = {}
        self._input_shape: tuple[int, int, int] | None = None
        # Build the datasets now: this checks labels and targets of every row
        # (no volume is read).
        for name in _SPLITS:
            self.dataset(name)

    @classmethod
    def _from_splits_indices(
        cls, table: ScanTable, splits: SplitIndices, **settings: Any
    ) -> DataBunch:
        self = cls.__new__(cls)
        self._setup(table, splits, **settings)
        return self

    @classmethod
    def from_splits(
        cls,
        *,
        train: ScanTable,
        val: ScanTable | None = None,
        test: ScanTable | None = None,
        preprocessing: PreprocessConfig = PreprocessConfig(),  # noqa: B008 (frozen)
        cache_dir: str | os.PathLike[str] | None = None,
        seed: int = 42,
        augment: AugmentConfig | str | None = None,
        targets: Sequence[str] = (),
        classes: Sequence[str] | None = None,
    ) -> DataBunch:
        """A DataBunch from splits made elsewhere (e.g. a study's official split).

        The splits are checked for shared subjects; the tables are joined into
        one (extra columns missing from a split become empty).

        Raises:
            DataLeakageError: two splits share a subject (naming them).
            DataFormatError: unknown or missing labels, naming the row.
        """
        parts: dict[str, ScanTable] = {"train": train}
        for name, part in (("val", val), ("test", test)):
            if part is not None and len(part):
                parts[name] = part
        for name, part in parts.items():
            if not isinstance(part, ScanTable):
                raise TypeError(f"{name}: expected a ScanTable, got {type(part).__name__}")
        names = list(parts)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                check_leakage(parts[a], parts[b], names=(a, b))
        frames = [parts[n].frame for n in names]
        joined = pd.concat(frames, ignore_index=True)
        for col in ("label", "mask"):
            joined[col] = joined[col].astype("string")
        table = ScanTable(joined, source=train.source)
        paths = table.frame["path"]
        if paths.duplicated().any():
            dup = paths[paths.duplicated()].iloc[0]
            raise DataFormatError(f"scan {dup} is listed in two splits")
        bounds = np.cumsum([0] + [len(f) for f in frames])
        positions = {n: np.arange(bounds[i], bounds[i + 1]) for i, n in enumerate(names)}
        empty = np.zeros(0, dtype=np.int64)
        splits = SplitIndices(
            train=positions["train"],
            val=positions.get("val", empty),
            test=positions.get("test", empty),
        )
        seed = check_positive_int("seed", seed, minimum=0)
        return cls._from_splits_indices(
            table,
            splits,
            preprocessing=preprocessing,
            cache_dir=cache_dir,
            seed=seed,
            augment=augment,
            targets=targets,
            classes=_task_classes(table, classes),
            normalization=None,
            split_method={"method": "from_splits"},
        )

    @classmethod
    def kfold(
        cls,
        table: ScanTable,
        preprocessing: PreprocessConfig = PreprocessConfig(),  # noqa: B008 (frozen)
        *,
        k: int = 5,
        repeats: int = 1,
        val_size: float = 0.0,
        seed: int = 42,
        cache_dir: str | os.PathLike[str] | None = None,
        augment: AugmentConfig | str | None = None,
        targets: Sequence[str] = (),
        classes: Sequence[str] | None = None,
        num_training_samples: int | None = None,
        balance: bool = False,
    ) -> Iterator[DataBunch]:
        """Yield one DataBunch per fold of a repeated, grouped, stratified k-fold.

        Within a repeat the test sets are disjoint and cover the table; see
        :func:`~transmri.data.split.kfold_splits`. ``val_size`` (a fraction of
        all scans) is carved from each fold's training part.

        Example:
            >>> for fold in DataBunch.kfold(table, config, k=5, repeats=2):  # doctest: +SKIP
            ...     print(fold.print_stats())
        """
        task_classes = _task_classes(table, classes)
        seed = check_positive_int("seed", seed, minimum=0)
        folds = kfold_splits(
            table, k=k, repeats=repeats, seed=seed, val_size=val_size, stratify=bool(task_classes)
        )
        for number, splits in enumerate(folds):
            splits = _subsample_train(
                table,
                splits,
                num_training_samples,
                balance=balance,
                seed=seed,
                labelled=bool(task_classes),
            )
            yield cls._from_splits_indices(
                table,
                splits,
                preprocessing=preprocessing,
                cache_dir=cache_dir,
                seed=seed,
                augment=augment,
                targets=targets,
                classes=task_classes,
                normalization=None,
                split_method={
                    "method": "kfold",
                    "k": k,
                    "repeats": repeats,
                    "repeat": number // k,
                    "fold": number % k,
                    "val_size": val_size,
                    "num_training_samples": num_training_samples,
                    "balance": balance,
                },
            )

    # ----------------------------------------------------------- accessors
    def __repr__(self) -> str:
        sizes = ", ".join(f"{n}={len(self.splits[n])}" for n in SPLIT_NAMES)
        return f"DataBunch({self.table.source!r}, {sizes}, classes={self.classes})"

    @property
    def num_classes(self) -> int:
        """Number of classes (0 for an unlabelled task)."""
        return len(self.classes)

    @property
    def is_normalized(self) -> bool:
        """Whether :meth:`normalize` z-scored the volumes.

        A model with a sigmoid output (an autoencoder reconstructing [0, 1]
        intensities) must not be trained on z-scored input.
        """
        return self.normalization is not None

    @property
    def train_ds(self) -> MRIDataset:
        """The training dataset (with augmentation, if any)."""
        return self.dataset("train")

    @property
    def val_ds(self) -> MRIDataset:
        """The validation dataset (never augmented)."""
        return self.dataset("val")

    @property
    def test_ds(self) -> MRIDataset:
        """The test dataset (never augmented)."""
        return self.dataset("test")

    def split_table(self, split: SplitName) -> ScanTable:
        """The rows of one split, in table order."""
        return self.table.subset(self.splits[_check_split(split)])

    def subjects(self, split: SplitName) -> list[str]:
        """Sorted distinct subject ids of one split."""
        return sorted(set(self.split_table(split).subjects))

    def _get_cache(self) -> VolumeCache | None:
        if self.cache_dir is None:
            return None
        if self._cache is None:
            self._cache = VolumeCache(self.cache_dir, self.preprocessing)
        return self._cache

    def dataset(self, split: SplitName) -> MRIDataset:
        """The :class:`~transmri.data.dataset.MRIDataset` of one split."""
        split = _check_split(split)
        if split not in self._datasets:
            transform = None
            if split == "train" and self.augment is not None and not self.augment.is_identity:
                transform = build_augmentation(self.augment, seed=self.seed)
            self._datasets[split] = MRIDataset(
                self.split_table(split),
                self.preprocessing,
                cache=self._get_cache(),
                classes=self.classes,
                transform=transform,
                targets=self.targets,
                normalization=self.normalization,
                target_classes=self.target_classes,
            )
        return self._datasets[split]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Spatial shape ``(D, H, W)`` of every volume.

        ``preprocessing.target_shape`` when set; otherwise read from the first
        training volume (which preprocesses it).
        """
        if self.preprocessing.target_shape is not None:
            return self.preprocessing.target_shape
        if self._input_shape is None:
            shape = self.train_ds.volume(0).shape
            self._input_shape = (int(shape[0]), int(shape[1]), int(shape[2]))
        return self._input_shape

    def check_content_leakage(self) -> None:
        """Raise if two splits hold byte-identical scans (under different subject ids).

        Reads every scan file once to hash it (:meth:`prepare` runs it before
        filling the cache, which then reuses the hashes).

        Raises:
            DataLeakageError: naming both splits, subjects and files.
        """
        check_content_leakage({s: self.split_table(s) for s in _SPLITS})

    # ------------------------------------------------------------- loading
    def prepare(self, n_jobs: int = 1, *, progress: bool = True) -> int:
        """Preprocess every scan of every split into the cache (``cache_dir``).

        Returns:
            How many volumes were built (0 when all were cached, or when the
            DataBunch has no cache: then volumes are preprocessed on read).
        """
        cache = self._get_cache()
        if cache is None:
            return 0
        self.check_content_leakage()
        used = np.sort(np.concatenate([self.splits[n] for n in SPLIT_NAMES]))
        return cache.fill(self.table.subset(used), n_jobs=n_jobs, progress=progress)

    def dataloader(
        self,
        split: SplitName,
        batch_size: int = 16,
        *,
        shuffle: bool | None = None,
        num_workers: int = 0,
        sampler: Sampler[int] | None = None,
        drop_last: bool = False,
        seed: int | None = None,
        pin_memory: bool = False,
    ) -> DataLoader[dict[str, Any]]:
        """A loader over one split.

        Args:
            split: ``"train"``, ``"val"`` or ``"test"``.
            batch_size: scans per batch.
            shuffle: default ``True`` for train; val and test are never
                shuffled, so predictions stay in table order.
            num_workers: loader processes (each gets its own augmentation seed).
            sampler: e.g. a ``WeightedRandomSampler``; replaces shuffling.
            drop_last: drop a last incomplete batch.
            seed: seeds the shuffle order (default: the DataBunch's seed).
            pin_memory: pin batches for faster host-to-GPU copies.

        Raises:
            ConfigError: ``shuffle=True`` for val/test, both ``shuffle`` and
                ``sampler``, a bad size, or an empty split.
        """
        split = _check_split(split)
        batch_size = check_positive_int("batch_size", batch_size)
        num_workers = check_positive_int("num_workers", num_workers, minimum=0)
        if shuffle is None:
            shuffle = split == "train" and sampler is None
        if shuffle and split != "train":
            raise ConfigError(
                f"shuffle: the {split} loader is never shuffled (predictions must stay in "
                f"table order); got shuffle=True"
            )
        if shuffle and sampler is not None:
            raise ConfigError("shuffle: expected shuffle=False (or None) with a sampler")
        ds = self.dataset(split)
        if len(ds) == 0:
            raise ConfigError(f"split: the {split} split is empty; no loader can be built")
        generator = torch.Generator()
        generator.manual_seed(self.seed if seed is None else seed)
        return DataLoader(
            ds,
            batch_size=batch_size,
            shuffle=bool(shuffle),
            sampler=sampler,
            num_workers=num_workers,
            drop_last=drop_last,
            generator=generator,
            worker_init_fn=_seed_worker if num_workers > 0 else None,
            pin_memory=pin_memory,
            persistent_workers=False,
        )

    def build_dataloaders(self, bs: int = 16, num_workers: int = 0) -> None:
        """Set ``train_dl``, ``val_dl`` and ``test_dl`` (``None`` for an empty split)."""
        loaders: dict[str, DataLoader[dict[str, Any]] | None] = {}
        for name in _SPLITS:
            empty = len(self.splits[name]) == 0
            loaders[name] = None if empty else self.dataloader(name, bs, num_workers=num_workers)
        self.train_dl, self.val_dl, self.test_dl = (
            loaders["train"],
            loaders["val"],
            loaders["test"],
        )

    # ---------------------------------------------------------- statistics
    def normalize(self) -> tuple[float, float]:
        """Learn mean and std over the training split's brain voxels; apply to all splits.

        Brain voxels are the nonzero ones (preprocessing leaves the background
        at 0). Validation and test volumes never enter the statistics. After
        this, every split's volumes are ``(x - mean) / std`` and
        :attr:`is_normalized` is True; loaders must be rebuilt.

        Returns:
            ``(mean, std)``.
        """
        ds = MRIDataset(
            self.split_table("train"),
            self.preprocessing,
            cache=self._get_cache(),
            classes=self.classes,
        )
        total, total_sq, count = 0.0, 0.0, 0
        for i in range(len(ds)):
            values = ds.volume(i)
            brain = values[values != 0].astype(np.float64)
            total += float(brain.sum())
            total_sq += float(np.square(brain).sum())
            count += int(brain.size)
        if count == 0:
            raise DataFormatError(
                f"{self.table.source}: the training volumes have no nonzero voxel; "
                "cannot compute normalisation statistics"
            )
        mean = total / count
        std = math.sqrt(max(total_sq / count - mean * mean, 0.0))
        if std == 0.0:
            raise DataFormatError(
                f"{self.table.source}: the training brain voxels have constant intensity "
                f"{mean:g}; cannot normalise"
            )
        self.normalization = (mean, std)
        self._datasets.clear()
        self.train_dl = self.val_dl = self.test_dl = None
        return self.normalization

    def class_weights(self) -> torch.Tensor:
        """Inverse-frequency class weights on the training split, mean 1.

        ``w_c`` is proportional to ``1 / n_c``, where ``n_c`` counts training
        scans of class ``c``; rare classes weigh more.

        Raises:
            DataFormatError: an unlabelled task, or a class absent from training.
        """
        if not self.classes:
            raise DataFormatError(
                f"{self.table.source}: class weights need labels; this task is unlabelled"
            )
        counts = np.bincount(self.train_ds.labels, minlength=self.num_classes)
        absent = [c for c, n in zip(self.classes, counts) if n == 0]
        if absent:
            raise DataFormatError(
                f"{self.table.source}: class(es) {absent} have no training scan; "
                f"training counts: {dict(zip(self.classes, counts.tolist()))}"
            )
        weights = 1.0 / counts.astype(np.float64)
        weights = weights / weights.mean()
        return torch.tensor(weights, dtype=torch.float32)

    def stats(self) -> pd.DataFrame:
        """Per split: images, subjects and scans per label (one row per split)."""
        return split_stats(((n, self.split_table(n)) for n in _SPLITS), self.classes)

    def print_stats(self) -> str:
        """Print and return a table of images, subjects and label counts per split."""
        text = stats_text(self.table.source, self.stats(), self.normalization)
        print(text)
        return text

    def show_sample(
        self,
        split: SplitName = "train",
        index: int = 0,
        path: str | os.PathLike[str] | None = None,
    ) -> Figure:
        """Three orthogonal middle slices of one item, as the model sees it.

        Args:
            split: which split.
            index: position within the split.
            path: if given, also save the figure there as PNG.

        Returns:
            The matplotlib Figure.
        """
        return sample_figure(
            self.dataset(split), split=split, index=index, classes=self.classes, path=path
        )

    # ---------------------------------------------------------- persistence
    def _manifest(self) -> DataBunchManifest:
        return DataBunchManifest(
            table=self.table,
            splits=self.splits,
            preprocessing=self.preprocessing,
            augment=self.augment,
            seed=self.seed,
            classes=list(self.classes),
            targets=list(self.targets),
            target_classes=self.target_classes,
            normalization=self.normalization,
            cache_dir=self.cache_dir,
            split_method=self.split_method,
        )

    @classmethod
    def _from_manifest(cls, manifest: DataBunchManifest) -> DataBunch:
        return cls._from_splits_indices(
            manifest.table,
            manifest.splits,
            preprocessing=manifest.preprocessing,
            cache_dir=manifest.cache_dir,
            seed=manifest.seed,
            augment=manifest.augment,
            targets=manifest.targets,
            classes=manifest.classes,
            normalization=manifest.normalization,
            split_method=manifest.split_method,
            target_classes=manifest.target_classes,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able manifest: table, splits and every setting.

        See :class:`~transmri.data.manifest.DataBunchManifest` for the format.
        """
        return self._manifest().to_dict()

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the manifest as JSON (temp file, then rename); return its path.

        Raises:
            OSError: the file cannot be written (read-only folder, disk full),
                naming it; no partial or temporary file is left behind.
        """
        return self._manifest().save(path)

    @classmethod
    def from_dict(cls, manifest: dict[str, Any], *, where: str = "manifest") -> DataBunch:
        """Rebuild a DataBunch from :meth:`to_dict`'s output (same splits, no re-splitting).

        Raises:
            DataFormatError: a malformed manifest (naming ``where`` and the key),
                or split positions beyond the table.
            DataLeakageError: two splits share a subject.
        """
        return cls._from_manifest(DataBunchManifest.from_dict(manifest, where=where))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> DataBunch:
        """Read a manifest written by :meth:`save`.

        Raises:
            FileNotFoundError: no such file.
            DataFormatError: not JSON, or a missing / malformed key (naming it).
        """
        return cls._from_manifest(DataBunchManifest.load(path))


# ------------------------------------------------------------------ helpers
def _check_table(table: object) -> None:
    if not isinstance(table, ScanTable):
        raise TypeError(f"table: expected a ScanTable, got {type(table).__name__}")
    if len(table) == 0:
        raise DataFormatError(f"{table.source}: the table has no rows")


def _subsample_train(
    table: ScanTable,
    splits: SplitIndices,
    n: int | None,
    *,
    balance: bool,
    seed: int,
    labelled: bool,
) -> SplitIndices:
    """Replace the training positions by a seeded (balanced) subsample of them."""
    if not isinstance(balance, bool):
        raise ConfigError(f"balance: expected True or False, got {balance!r}")
    if n is None and not balance:
        return splits
    if n is not None:
        n = check_positive_int("num_training_samples", n)
        if n > len(splits.train):
            raise ConfigError(
                f"num_training_samples: expected at most {len(splits.train)} (the training "
                f"split's scans), got {n}"
            )
    train = table.subset(splits.train)
    if balance:
        if not labelled:
            raise ConfigError("balance: needs a labelled table; this one has no labels")
        counts = train.label_counts()
        size = n if n is not None else min(counts.values()) * len(counts)
        picked = balanced_subsample(train, size, seed=seed).paths
    else:
        rng = np.random.default_rng(seed)
        chosen_rows = rng.choice(len(train), size=n or len(train), replace=False)
        picked = [train.paths[i] for i in chosen_rows.tolist()]
    # Paths are unique in a ScanTable, so they identify rows across the subset.
    position_by_path = dict(zip(train.paths, splits.train.tolist()))
    chosen = np.sort(np.array([position_by_path[p] for p in picked], dtype=np.int64))
    return SplitIndices(train=chosen, val=splits.val, test=splits.test)
