"""Small callbacks for the Learner's loop, and the state they see.

The loop in :meth:`Learner.fit` fires six named events, in this order::

    on_fit_start
      on_epoch_start
        on_batch_end          (after every optimiser step)
      on_validation_end       (history row has the val_* metrics)
      on_epoch_end            (row complete, checkpoints written)
    on_fit_end                (best weights restored)

A callback subclasses :class:`Callback` and overrides the events it needs.
Each receives the learner and the mutable :class:`FitState`; setting
``state.stop = True`` ends training after the current epoch.

Example:
    >>> class PrintLoss(Callback):
    ...     def on_epoch_end(self, learner, state):
    ...         print(state.epoch, state.row["train_loss"])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transmri.training.learner import Learner

__all__ = ["EVENTS", "Callback", "FitState", "StopAfter"]

EVENTS: tuple[str, ...] = (
    "on_fit_start",
    "on_epoch_start",
    "on_batch_end",
    "on_validation_end",
    "on_epoch_end",
    "on_fit_end",
)


@dataclass
class FitState:
    """What the loop knows at an event (mutable on purpose: the loop updates it).

    Attributes:
        epochs: epochs asked for in this ``fit`` call.
        epoch: epochs completed in this fit (1-based while an epoch runs).
        step: optimiser steps taken in this fit.
        batch_loss: the last batch's loss (float), for ``on_batch_end``.
        row: the current epoch's history row (train_*, val_*, lr...).
        best: best monitored value so far, and ``best_epoch`` when it happened.
        bad_epochs: epochs since the monitored value last improved.
        stop: set to True to stop after this epoch.
    """

    epochs: int
    epoch: int = 0
    step: int = 0
    batch_loss: float = float("nan")
    row: dict[str, Any] = field(default_factory=dict)
    best: float | None = None
    best_epoch: int = 0
    bad_epochs: int = 0
    stop: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The resumable part of the state (JSON-able)."""
        return {
            "epoch": self.epoch,
            "step": self.step,
            "best": self.best,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
        }


class Callback:
    """Base class: every event is a no-op; override the ones you need."""

    def on_fit_start(self, learner: Learner, state: FitState) -> None:
        """Before the first epoch (after a resume, before the first remaining epoch)."""

    def on_epoch_start(self, learner: Learner, state: FitState) -> None:
        """Before an epoch's first batch."""

    def on_batch_end(self, learner: Learner, state: FitState) -> None:
        """After each optimiser step; ``state.batch_loss`` holds the batch loss."""

    def on_validation_end(self, learner: Learner, state: FitState) -> None:
        """After the validation pass; ``state.row`` holds the ``val_*`` metrics."""

    def on_epoch_end(self, learner: Learner, state: FitState) -> None:
        """After the epoch's history row and checkpoints are written."""

    def on_fit_end(self, learner: Learner, state: FitState) -> None:
        """After training ended and the best weights were restored."""


class StopAfter(Callback):
    """Stop training after ``epochs`` epochs of the current fit (a budget or a test aid).

    Args:
        epochs: how many epochs to run before stopping.
    """

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_epoch_end(self, learner: Learner, state: FitState) -> None:
        """Request the stop once the budget is spent."""
        if state.epoch >= self.epochs:
            state.stop = True
