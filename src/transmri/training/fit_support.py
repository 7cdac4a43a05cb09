"""Small, separately testable steps of :meth:`Learner.fit`: checks, schedule, best epoch."""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from transmri._files import atomic_write_text
from transmri.errors import ConfigError, DataFormatError
from transmri.training.callbacks import FitState
from transmri.training.config import FitConfig

__all__ = [
    "build_scheduler",
    "check_training_data",
    "deterministic",
    "improved",
    "write_history",
]

_SUPERVISED = ("classifier", "mixed")


def check_training_data(data: Any, model_type: str, config: FitConfig) -> bool:
    """Check the data suits ``model_type`` and the fit options.

    Returns:
        Whether the data has a validation split.

    Raises:
        DataFormatError: no training scans; a classifier or mixed model on
            unlabelled data or on a single class.
        ConfigError: ``monitor`` needs a validation split that is empty;
            ``show_every`` for a model without reconstructions.
    """
    source = _source(data)
    if len(data.train_ds) == 0:
        raise DataFormatError(f"{source}: the training split is empty")
    has_val = len(data.val_ds) > 0
    if not has_val and config.monitor.startswith("val_"):
        raise ConfigError(
            f"monitor: {config.monitor!r} needs a validation split, but {source} has none; "
            f"use monitor='train_loss' or give the DataBunch a val_size"
        )
    if model_type in _SUPERVISED:
        labels = np.asarray(data.train_ds.labels)
        labelled = labels[labels >= 0]
        if labelled.size == 0:
            raise DataFormatError(
                f"{source}: model_type {model_type!r} needs labelled scans, but all "
                f"{labels.size} training scans are unlabelled; train an 'autoencoder' instead"
            )
        present = np.unique(labelled)
        if present.size < 2:
            only = list(data.classes)[int(present[0])] if len(data.classes) else present[0]
            raise DataFormatError(
                f"{source}: model_type {model_type!r} needs at least 2 classes in the training "
                f"split, found only {only!r} ({labelled.size} scans)"
            )
    if config.show_every and model_type == "classifier":
        raise ConfigError(
            "show_every: reconstruction figures need an autoencoder, got model_type='classifier'"
        )
    return has_val


def _source(data: Any) -> str:
    try:
        return str(data.split_table("train").source)
    except Exception:  # a stand-in without split_table still gets a message
        return type(data).__name__


@contextlib.contextmanager
def deterministic() -> Iterator[None]:
    """Use deterministic algorithms inside the block only.

    An operation without a deterministic implementation still runs, with
    PyTorch's warning. The one the paper's CAE uses, ``max_unpool3d``, is
    silenced: with non-overlapping pooling windows (kernel = stride = 2) every
    index is written once, so its scatter is deterministic in practice (the
    reliability tests check bit-identical weights across runs).
    """
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message="max_unpooling3d_forward_out does not have a deterministic"
            )
            yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: FitConfig, *, steps_per_epoch: int
) -> Any:
    """The per-step scheduler of ``config.schedule`` (``None``: a constant rate)."""
    total = max(config.epochs * steps_per_epoch, 1)
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=total
        )
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    return None


def improved(state: FitState, config: FitConfig) -> bool:
    """Update ``state.best``/``bad_epochs`` from ``state.row[config.monitor]``; True if it improved.

    Raises:
        ConfigError: the monitored column is not in the history row.
    """
    if config.monitor not in state.row:
        available = sorted(k for k, v in state.row.items() if isinstance(v, float) and k != "lr")
        raise ConfigError(
            f"monitor: {config.monitor!r} is not measured here; available: {available}"
        )
    value = float(state.row[config.monitor])
    better = not math.isnan(value) and (
        state.best is None or (value < state.best if config.mode == "min" else value > state.best)
    )
    if better:
        state.best, state.best_epoch, state.bad_epochs = value, state.epoch, 0
    else:
        state.bad_epochs += 1
    return better


def write_history(path: str | os.PathLike[str], rows: Sequence[dict[str, Any]]) -> None:
    """Write the history rows as CSV (epoch first), atomically."""
    frame = pd.DataFrame(list(rows))
    first = [c for c in ("epoch", "lr", "train_loss", "val_loss") if c in frame.columns]
    frame = frame[first + sorted(c for c in frame.columns if c not in first)]
    atomic_write_text(path, frame.to_csv(index=False))
