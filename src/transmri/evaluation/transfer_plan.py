"""The plan of a transfer benchmark: its settings and every draw of subjects.

:class:`TransferConfig` holds the settings of
:func:`~transmri.evaluation.transfer.transfer_curve`; :func:`plan_splits`
makes every draw of it without reading a volume, and :func:`held_out_subjects`
says which subjects a pretraining set must avoid.

Draws (all deterministic in ``config.seed``):

- test subjects: label-stratified, whole subjects; the same for every method
  and ``N`` of a repeat and, unless ``vary_test``, for every repeat (one
  held-out set, so that a pretraining set can avoid all of it);
- training subset: :func:`~transmri.data.balanced_subsample` of the other
  subjects; with ``nested`` (default) its seed depends on the repeat only, so
  the subset of a smaller ``N`` lies inside that of a larger ``N``;
- inner validation: ``val_fraction`` of each class's subjects of the subset
  (at least one per class, at least one left for training), whole subjects.

Example:
    >>> config = TransferConfig(n_train=(10, 20), repeats=2, test_size=50)  # doctest: +SKIP
    >>> pretraining = table.frame[~table.frame["subject"].isin(
    ...     held_out_subjects(table, config))]  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from transmri._validation import (
    check_choice,
    check_fraction,
    check_positive_float,
    check_positive_int,
)
from transmri.data import ScanTable, balanced_subsample
from transmri.errors import ConfigError, DataFormatError
from transmri.evaluation import (
    transfer_probes,  # noqa: F401  (registers the regional probes)
    transfer_recipes,  # noqa: F401  (registers the recipe methods)
)
from transmri.evaluation.transfer_methods import get_method

__all__ = [
    "TransferConfig",
    "TransferSplit",
    "held_out_subjects",
    "plan_splits",
    "seed_for",
    "subjects_hash",
]

_MONITORS = ("val_auc", "val_loss", "val_balanced_accuracy", "val_accuracy")


@dataclass(frozen=True)
class TransferConfig:
    """Settings of a transfer benchmark (saved as JSON beside its results).

    Args:
        n_train: training-subset sizes ``N`` (scans, inner validation included).
        repeats: draws per ``N``.
        test_size: held-out test subjects: a count (int) or a fraction of the subjects.
        val_fraction: share of each class's subjects of a subset used for validation.
        vary_test: draw a new test set per repeat instead of one held-out set.
        nested: subsets of a repeat are nested across ``N`` (seeded by the repeat only).
        methods: registered method names (:func:`~transmri.evaluation.available_methods`).
        epochs: epochs of ``scratch``.
        epochs_frozen: ``finetune`` epochs with the encoder frozen (head only).
        epochs_unfrozen: ``finetune`` epochs with every layer trainable.
        lr: learning rate (of the head, for ``finetune``).
        lr_mult: ``finetune``: rate ratio between consecutive layer groups, in (0, 1].
        batch_size: scans per step.
        weight_decay: optimiser weight decay.
        head: ``"gap"`` or ``"flatten"``.
        dropout: dropout before the head's linear layer, in [0, 1).
        early_stop: stop after this many epochs without improvement (``None``: never).
        monitor: validation metric that picks the best epoch and drives early stopping.
        scratch_arch: architecture of ``scratch`` when no encoder is given.
        ridge_downsample: ``ridge``: average-pool the volumes by this factor.
        probe_grid: ``regional_probe`` / ``regional_random``: boxes per axis of
            the average-pooled feature maps.
        probe_levels: their layers: ``"all"`` layer groups or ``"last"`` (the code).
        cv_folds: internal CV folds of the linear methods (fewer if a class is small).
        n_jobs: processes that fill the volume cache.
        keep_checkpoints: keep each run's ``checkpoints/`` (large; removed by default).
        seed: seeds every draw and every run.

    Raises:
        ConfigError: naming the key, what was expected and what was found.
    """

    n_train: tuple[int, ...] = (10, 20, 40)
    repeats: int = 5
    test_size: int | float = 50
    val_fraction: float = 0.25
    vary_test: bool = False
    nested: bool = True
    methods: tuple[str, ...] = (
        "scratch",
        "finetune",
        "linear_probe",
        "regional_probe",
        "regional_random",
        "ridge",
    )
    epochs: int = 30
    epochs_frozen: int = 5
    epochs_unfrozen: int = 25
    lr: float = 1e-3
    lr_mult: float = 0.1
    batch_size: int = 8
    weight_decay: float = 0.0
    head: str = "gap"
    dropout: float = 0.0
    early_stop: int | None = 10
    monitor: str = "val_auc"
    scratch_arch: str = "cae"
    ridge_downsample: int = 2
    probe_grid: int = 2
    probe_levels: str = "all"
    cv_folds: int = 5
    n_jobs: int = 1
    keep_checkpoints: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_train", "methods"):
            value = getattr(self, name)
            if isinstance(value, str) or not isinstance(value, Sequence) or not value:
                raise ConfigError(f"{name}: expected a non-empty sequence, got {value!r}")
        sizes = tuple(
            check_positive_int(f"n_train[{i}]", n, minimum=2) for i, n in enumerate(self.n_train)
        )
        if len(set(sizes)) != len(sizes):
            raise ConfigError(f"n_train: expected distinct sizes, got {list(sizes)}")
        object.__setattr__(self, "n_train", tuple(sorted(sizes)))
        methods = tuple(self.methods)
        if len(set(methods)) != len(methods):
            raise ConfigError(f"methods: expected distinct names, got {list(methods)}")
        for m in methods:
            get_method(m)
        object.__setattr__(self, "methods", methods)
        check_positive_int("repeats", self.repeats)
        if isinstance(self.test_size, float):
            check_fraction("test_size", self.test_size)
        else:
            check_positive_int("test_size", self.test_size)
        check_fraction("val_fraction", self.val_fraction)
        for name in ("vary_test", "nested", "keep_checkpoints"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name}: expected True or False, got {getattr(self, name)!r}")
        check_positive_int("epochs", self.epochs)
        check_positive_int("epochs_frozen", self.epochs_frozen, minimum=0)
        check_positive_int("epochs_unfrozen", self.epochs_unfrozen, minimum=0)
        if self.epochs_frozen + self.epochs_unfrozen == 0:
            raise ConfigError(
                "epochs_unfrozen: expected epochs_frozen + epochs_unfrozen >= 1, got 0"
            )
        if check_positive_float("lr", self.lr) > 10:
            raise ConfigError(f"lr: expected a learning rate <= 10, got {self.lr!r}")
        if check_positive_float("lr_mult", self.lr_mult) > 1:
            raise ConfigError(f"lr_mult: expected a ratio in (0, 1], got {self.lr_mult!r}")
        check_positive_int("batch_size", self.batch_size)
        check_positive_float("weight_decay", self.weight_decay, allow_zero=True)
        check_choice("head", self.head, ("gap", "flatten", "regional"))
        if check_positive_float("dropout", self.dropout, allow_zero=True) >= 1:
            raise ConfigError(f"dropout: expected a probability in [0, 1), got {self.dropout!r}")
        if self.early_stop is not None:
            check_positive_int("early_stop", self.early_stop)
        check_choice("monitor", self.monitor, _MONITORS)
        check_choice("scratch_arch", self.scratch_arch, ("cae", "srcae", "vae"))
        check_positive_int("ridge_downsample", self.ridge_downsample)
        check_positive_int("probe_grid", self.probe_grid)
        check_choice("probe_levels", self.probe_levels, ("all", "last"))
        check_positive_int("cv_folds", self.cv_folds, minimum=2)
        if self.n_jobs != -1:
            check_positive_int("n_jobs", self.n_jobs)
        check_positive_int("seed", self.seed, minimum=0)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TransferConfig:
        """Rebuild from :meth:`to_dict`; an unknown key raises ``ConfigError`` naming it."""
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(
                f"transfer config: unknown key(s) {unknown}; expected some of {known}"
            )
        values: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in data.items()
        }
        return cls(**values)


@dataclass(frozen=True)
class TransferSplit:
    """The scans of one draw: repeat ``repeat``, training size ``n_train``."""

    repeat: int
    n_train: int
    train: ScanTable
    val: ScanTable
    test: ScanTable

    @property
    def test_hash(self) -> str:
        """First 12 hex digits of the sha256 of the sorted test subjects."""
        return subjects_hash(self.test.subjects)


# ------------------------------------------------------------------- draws
def seed_for(*parts: int) -> int:
    """A 32-bit seed derived from integers (e.g. the benchmark seed, a repeat and an ``N``)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


def subjects_hash(subjects: Sequence[str]) -> str:
    """First 12 hex digits of the sha256 of the sorted, distinct subjects."""
    text = "\n".join(sorted(set(subjects)))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def _subject_classes(table: ScanTable) -> dict[str, list[str]]:
    """Class -> its subjects (in table order); a subject with two labels is an error."""
    seen: dict[str, str] = {}
    for subject, label in zip(table.subjects, table.frame["label"].astype(str)):
        if seen.setdefault(subject, label) != label:
            raise DataFormatError(
                f"{table.source}: subject {subject!r} has scans labelled {seen[subject]!r} and "
                f"{label!r}; a subject-grouped, stratified draw needs one label per subject"
            )
    out: dict[str, list[str]] = {c: [] for c in table.labels}
    for subject, label in seen.items():
        out[label].append(subject)
    return out


def _test_subjects(table: ScanTable, config: TransferConfig, repeat: int) -> list[str]:
    by_class = _subject_classes(table)
    total = sum(len(s) for s in by_class.values())
    wanted = (
        int(config.test_size)
        if not isinstance(config.test_size, float)
        else math.floor(config.test_size * total + 0.5)
    )
    if not len(by_class) <= wanted < total:
        raise ConfigError(
            f"test_size: expected between {len(by_class)} (one subject per class) and "
            f"{total - 1} test subjects for {table.source} ({total} subjects), got {wanted}"
        )
    # Largest-remainder allocation keeps the class proportions; every class gets one.
    exact = {c: wanted * len(s) / total for c, s in by_class.items()}
    quota = {c: max(1, math.floor(v)) for c, v in exact.items()}
    for c in sorted(exact, key=lambda c: exact[c] - math.floor(exact[c]), reverse=True):
        if sum(quota.values()) >= wanted:
            break
        quota[c] += 1
    rng = np.random.default_rng(seed_for(config.seed, repeat if config.vary_test else 0, 1))
    chosen: list[str] = []
    for c in sorted(by_class):
        chosen.extend(rng.permutation(np.array(by_class[c]))[: quota[c]].tolist())
    return sorted(chosen)


def _carve_val(subset: ScanTable, fraction: float, seed: int) -> tuple[ScanTable, ScanTable]:
    rng = np.random.default_rng(seed)
    val_subjects: set[str] = set()
    for cls, subjects in sorted(_subject_classes(subset).items()):
        if len(subjects) < 2:
            raise DataFormatError(
                f"{subset.source}: class {cls!r} has {len(subjects)} subject(s) in a training "
                f"subset of {len(subset)} scans; an inner validation set needs at least 2 "
                f"subjects per class (raise n_train)"
            )
        k = min(len(subjects) - 1, max(1, math.floor(fraction * len(subjects) + 0.5)))
        val_subjects.update(rng.permutation(np.array(subjects))[:k].tolist())
    is_val = np.array([s in val_subjects for s in subset.subjects])
    return subset.subset(np.flatnonzero(~is_val)), subset.subset(np.flatnonzero(is_val))


def _check_target(target: ScanTable) -> None:
    if not isinstance(target, ScanTable):
        raise TypeError(f"target: expected a ScanTable, got {type(target).__name__}")
    target.require_labels()
    if len(target.labels) < 2:
        raise DataFormatError(
            f"{target.source}: a transfer benchmark needs at least 2 classes, found {target.labels}"
        )


def held_out_subjects(target: ScanTable, config: TransferConfig) -> list[str]:
    """Every subject a :func:`transfer_curve` run with ``config`` tests on (sorted).

    A pretraining set must avoid all of them; with ``vary_test=False`` this is
    the one held-out test set.
    """
    _check_target(target)
    repeats = range(config.repeats) if config.vary_test else range(1)
    return sorted({s for r in repeats for s in _test_subjects(target, config, r)})


def plan_splits(target: ScanTable, config: TransferConfig) -> list[TransferSplit]:
    """Every draw of a benchmark, repeat by repeat, ``N`` by ``N`` (no I/O).

    Raises:
        ConfigError: a ``test_size`` that leaves no training subject.
        DataFormatError: too few scans of a class for an ``N``, a subject with
            two labels, or a class with one subject in a subset.
    """
    _check_target(target)
    out: list[TransferSplit] = []
    for r in range(config.repeats):
        test_subjects = set(_test_subjects(target, config, r))
        is_test = np.array([s in test_subjects for s in target.subjects])
        test = target.subset(np.flatnonzero(is_test))
        rest = target.subset(np.flatnonzero(~is_test))
        for n in config.n_train:
            draw = seed_for(config.seed, r, 2) if config.nested else seed_for(config.seed, r, 2, n)
            if n > len(rest):
                raise ConfigError(
                    f"n_train: {n} scans asked for, but {target.source} has {len(rest)} scans "
                    f"outside the {len(test_subjects)} test subjects"
                )
            subset = balanced_subsample(rest, n, seed=draw)
            train, val = _carve_val(subset, config.val_fraction, seed_for(config.seed, r, 3, n))
            out.append(TransferSplit(repeat=r, n_train=n, train=train, val=val, test=test))
    return out
