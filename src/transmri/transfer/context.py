"""What a transfer method gets and returns: :class:`MethodContext`, :class:`MethodResult`.

A method is a function ``(MethodContext) -> MethodResult``: it gets the
training, validation and test scans of one draw (and a DataBunch of them),
trains however it likes, and returns class probabilities for the test scans
in the order of ``context.test``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from transmri.data import DataBunch, ScanTable

if TYPE_CHECKING:
    from transmri.transfer.config import TransferConfig

__all__ = ["MethodContext", "MethodResult", "TransferMethod"]

TransferMethod = Callable[["MethodContext"], "MethodResult"]
"""The type of a transfer method."""


@dataclass(frozen=True)
class MethodContext:
    """Everything one method run gets.

    Attributes:
        method: the method's registered name.
        train: the training scans.
        val: the inner validation scans (early stopping / model selection only).
        test: the test scans; probabilities must follow this table's order.
        data: a DataBunch built from these three splits (with the cache).
        encoder: the pretrained encoder's card or folder, or ``None``.
        work_dir: a folder of this run's own (e.g. a Learner's run folder).
        config: the benchmark's settings.
        seed: seeds weight initialisation and shuffling of this run.
    """

    method: str
    train: ScanTable
    val: ScanTable
    test: ScanTable
    data: DataBunch
    encoder: Path | None
    work_dir: Path
    config: TransferConfig
    seed: int

    @property
    def classes(self) -> list[str]:
        """Class names; column ``i`` of the probabilities is ``classes[i]``."""
        return list(self.data.classes)

    def learner_options(self) -> dict[str, Any]:
        """Options of every Learner a method builds: batch size, seed, quiet, overwrite."""
        return {
            "batch_size": self.config.batch_size,
            "seed": self.seed,
            "progress": False,
            "overwrite": True,
        }


@dataclass(frozen=True)
class MethodResult:
    """What a method returns.

    Attributes:
        probs: ``(n_test, n_classes)`` probabilities, rows in ``context.test`` order.
        converged: whether training converged (see the method's docstring).
        notes: anything worth recording (selected hyper-parameters, why not converged).
    """

    probs: np.ndarray
    converged: bool
    notes: str = ""
