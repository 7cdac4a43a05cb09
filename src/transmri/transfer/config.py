"""The settings of a transfer benchmark: :class:`TransferConfig`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from transmri._validation import (
    check_choice,
    check_fraction,
    check_positive_float,
    check_positive_int,
)
from transmri.errors import ConfigError
from transmri.transfer.registry import check_method

__all__ = ["TransferConfig"]

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
            check_method(m)
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
