"""TensorBoard curves of a run, written when the ``tensorboard`` package is installed.

:class:`TensorBoardLogger` is a :class:`~transmri.training.callbacks.Callback`
that writes every number of each epoch's history row (``train_loss``,
``val_auc``, ``lr``...) as a scalar under ``RUN_DIR/tensorboard/``, on rank 0
only. Train and validation values of one metric share a section
(``loss/train``, ``loss/val``), so TensorBoard draws them together.
:func:`default_loggers` gives the loggers a Learner adds by itself: this one
when TensorBoard can be imported, none otherwise (it is an optional
dependency: ``pip install tensorboard``).

Example:
    >>> logger = TensorBoardLogger()
    >>> learner = Learner(data, model, "runs/cae", callbacks=[logger])  # doctest: +SKIP
    >>> learner.fit(10)  # doctest: +SKIP
    $ tensorboard --logdir runs/cae/tensorboard
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transmri.training.callbacks import Callback, FitState

if TYPE_CHECKING:
    from transmri.training.learner import Learner

__all__ = ["TensorBoardLogger", "default_loggers", "scalar_tag", "tensorboard_available"]

_SPLIT_PREFIXES = ("train_", "val_", "test_")


def _summary_writer_class() -> Any:
    """``torch.utils.tensorboard.SummaryWriter``, or an ImportError saying what to install."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise ImportError(
            "TensorBoardLogger needs the tensorboard package: pip install tensorboard"
        ) from exc
    return SummaryWriter


def tensorboard_available() -> bool:
    """Whether TensorBoard event files can be written (the package imports)."""
    try:
        _summary_writer_class()
    except ImportError:
        return False
    return True


def scalar_tag(column: str) -> str:
    """TensorBoard tag of a history column: ``val_auc`` -> ``auc/val``, ``lr`` -> ``lr``."""
    for prefix in _SPLIT_PREFIXES:
        if column.startswith(prefix) and len(column) > len(prefix):
            return f"{column[len(prefix) :]}/{prefix[:-1]}"
    return column


class TensorBoardLogger(Callback):
    """Write each epoch's history row to TensorBoard (rank 0 only).

    The constructor stores settings only; the event file is opened at the
    start of ``fit`` and closed at its end. After a resumed fit, events of
    epochs later than the checkpoint are dropped (``purge_step``) so the
    curves are not drawn twice.

    Args:
        log_dir: where the event files go (default ``RUN_DIR/tensorboard``).

    Raises:
        ImportError: at the start of ``fit`` when tensorboard is not installed.
    """

    def __init__(self, log_dir: str | os.PathLike[str] | None = None) -> None:
        self.log_dir = None if log_dir is None else Path(log_dir)
        self._writer: Any = None

    def on_fit_start(self, learner: Learner, state: FitState) -> None:
        """Open the event file of this fit."""
        if not learner.is_global_zero:
            return
        writer_class = _summary_writer_class()
        folder = self.log_dir if self.log_dir is not None else learner.path / "tensorboard"
        done = len(learner.history_)
        self._writer = writer_class(
            log_dir=str(folder), purge_step=done + 1 if done else None, flush_secs=30
        )

    def on_epoch_end(self, learner: Learner, state: FitState) -> None:
        """Write every finite number of the epoch's row at step ``epoch``."""
        if self._writer is None:
            return
        step = int(state.row.get("epoch", state.epoch))
        for column, value in state.row.items():
            if column == "epoch" or isinstance(value, bool):
                continue
            if isinstance(value, int | float) and math.isfinite(value):
                self._writer.add_scalar(scalar_tag(column), float(value), step)
        self._writer.flush()

    def on_fit_end(self, learner: Learner, state: FitState) -> None:
        """Close the event file."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def default_loggers(callbacks: Sequence[Callback] = ()) -> list[Callback]:
    """The loggers a Learner adds by itself, leaving out kinds already in ``callbacks``.

    Returns:
        ``[TensorBoardLogger()]`` when tensorboard can be imported and no
        :class:`TensorBoardLogger` is among ``callbacks``; else ``[]``.
    """
    if any(isinstance(c, TensorBoardLogger) for c in callbacks):
        return []
    return [TensorBoardLogger()] if tensorboard_available() else []
