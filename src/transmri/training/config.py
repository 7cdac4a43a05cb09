"""Frozen, validated settings of a Learner and of one ``fit`` call.

Both are saved as JSON in the run folder (``run.json``) and inside every
checkpoint, so a run can be explained and resumed from its files alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, TypeAlias

from transmri._validation import (
    check_choice,
    check_config_keys,
    check_fraction,
    check_positive_float,
    check_positive_int,
)
from transmri.errors import ConfigError

__all__ = ["MODEL_TYPES", "SCHEDULES", "FitConfig", "LearnerConfig", "ModelType", "Schedule"]

ModelType: TypeAlias = Literal["autoencoder", "mixed", "classifier", "vae", "contrastive"]
Schedule: TypeAlias = Literal["onecycle", "cosine"]

MODEL_TYPES: tuple[str, ...] = ("autoencoder", "mixed", "classifier", "vae", "contrastive")
SCHEDULES: tuple[str, ...] = ("onecycle", "cosine")
_PRECISIONS = ("32-true", "32", "bf16-mixed", "16-mixed", "bf16-true", "64-true")
_MAX_LR = 10.0


@dataclass(frozen=True)
class LearnerConfig:
    """How a :class:`~transmri.training.Learner` trains, independent of the data and model.

    Args:
        model_type: what the model is trained for; picks the default objective.
        batch_size: scans per step *per process* (under DDP the global batch
            is ``batch_size * world size``).
        num_workers: DataLoader worker processes.
        accelerator: Lightning Fabric accelerator (``"auto"``, ``"cpu"``, ``"cuda"``...).
        devices: devices per node (int, or ``"auto"``).
        strategy: Fabric strategy (``"auto"``, ``"ddp"``...).
        num_nodes: machines taking part.
        precision: Fabric precision (``"32-true"``, ``"bf16-mixed"``, ``"16-mixed"``...).
        seed: seeds weights resets, the shuffling order and dropout.
        progress: show a tqdm progress bar (rank 0 only).
        channels_last: keep 5D weights in channels-last-3d memory format; about
            3x faster training of the CAE on CPU (``docs/BENCHMARKS.md``).
    """

    model_type: ModelType = "autoencoder"
    batch_size: int = 16
    num_workers: int = 0
    accelerator: str = "auto"
    devices: int | str = 1
    strategy: str = "auto"
    num_nodes: int = 1
    precision: str = "32-true"
    seed: int = 42
    progress: bool = True
    channels_last: bool = True

    def __post_init__(self) -> None:
        check_choice("model_type", self.model_type, MODEL_TYPES)
        check_positive_int("batch_size", self.batch_size)
        check_positive_int("num_workers", self.num_workers, minimum=0)
        check_positive_int("num_nodes", self.num_nodes)
        check_positive_int("seed", self.seed, minimum=0)
        check_choice("precision", str(self.precision), _PRECISIONS)
        if not (self.devices == "auto" or isinstance(self.devices, int)) or (
            isinstance(self.devices, int) and (isinstance(self.devices, bool) or self.devices < 1)
        ):
            raise ConfigError(f"devices: expected an integer >= 1 or 'auto', got {self.devices!r}")
        for name in ("accelerator", "strategy"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(f"{name}: expected a string, got {getattr(self, name)!r}")
        for name in ("progress", "channels_last"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name}: expected True or False, got {getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LearnerConfig:
        """Rebuild from :meth:`to_dict`; unknown keys raise ``ConfigError``."""
        return cls(**check_config_keys("learner config", data, cls))


@dataclass(frozen=True)
class FitConfig:
    """The options of one :meth:`Learner.fit` call (see its docstring for each).

    ``alpha``, ``beta`` are ``None`` when the default objective should use its
    defaults (0.7 and 1.0); they must stay ``None`` when a ``loss_fn`` is given,
    because they could not be applied to it.
    """

    epochs: int
    lr: float = 1e-3
    wd: float = 0.0
    l1_reg: float = 0.0
    l1_code: float = 0.0
    alpha: float | None = None
    beta: float | None = None
    lr_mult: float = 1.0
    schedule: Schedule | None = None
    grad_clip: float | None = None
    early_stop: int | None = None
    monitor: str = "val_loss"
    mode: Literal["min", "max"] | None = None
    show_every: int = 0
    pretext: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        check_positive_int("epochs", self.epochs)
        check_positive_float("lr", self.lr)
        if self.lr > _MAX_LR:
            raise ConfigError(f"lr: expected a learning rate <= {_MAX_LR}, got {self.lr!r}")
        for name in ("wd", "l1_reg", "l1_code"):
            check_positive_float(name, getattr(self, name), allow_zero=True)
        if self.alpha is not None:
            check_fraction("alpha", self.alpha, inclusive=True)
        if self.beta is not None:
            check_positive_float("beta", self.beta, allow_zero=True)
        check_positive_float("lr_mult", self.lr_mult)
        if self.lr_mult > 1:
            raise ConfigError(
                f"lr_mult: expected a ratio in (0, 1] (earlier layers learn slower), "
                f"got {self.lr_mult!r}"
            )
        if self.schedule is not None:
            check_choice("schedule", self.schedule, SCHEDULES)
        if self.grad_clip is not None:
            check_positive_float("grad_clip", self.grad_clip)
        if self.early_stop is not None:
            check_positive_int("early_stop", self.early_stop)
        if not isinstance(self.monitor, str) or not self.monitor:
            raise ConfigError(
                f"monitor: expected a metric name such as 'val_loss', got {self.monitor!r}"
            )
        if self.mode is None:
            object.__setattr__(self, "mode", "min" if "loss" in self.monitor else "max")
        check_choice("mode", self.mode, ("min", "max"))
        check_positive_int("show_every", self.show_every, minimum=0)
        if self.pretext is not None and (
            not isinstance(self.pretext, Mapping) or "kind" not in self.pretext
        ):
            raise ConfigError(
                f"pretext: expected a pretext's to_dict() (with 'kind'), got {self.pretext!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FitConfig:
        """Rebuild from :meth:`to_dict`; unknown keys raise ``ConfigError``."""
        return cls(**check_config_keys("fit config", data, cls))

    def differences(self, other: FitConfig, *, ignore: tuple[str, ...] = ()) -> list[str]:
        """Human-readable ``"name: self, other"`` lines for every differing field."""
        out = []
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if f.name not in ignore and a != b:
                out.append(f"{f.name}: {a!r} vs {b!r}")
        return out
