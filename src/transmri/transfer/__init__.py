"""transmri.transfer: does transfer help? The benchmark of transfer methods against scratch.

:func:`transfer_curve` holds out test subjects, draws label-balanced training
subsets of every size ``N`` from the rest (:mod:`~transmri.transfer.plan`),
and trains and tests every method (:mod:`~transmri.transfer.registry`) on
exactly the same subjects. It sits above :mod:`transmri.training` (its
methods build and train Learners) and :mod:`transmri.evaluation` (it scores
and plots their predictions); neither of those imports it.

Modules: ``config`` (:class:`TransferConfig`), ``plan`` (the draws),
``context`` (what a method gets and returns), ``registry`` (the methods by
name, a plain table), ``methods/cnn.py`` and ``methods/linear.py`` (the
built-in methods), ``curve`` (:func:`transfer_curve` and its output folder).
"""

from transmri.transfer.config import TransferConfig
from transmri.transfer.context import MethodContext, MethodResult
from transmri.transfer.curve import (
    COMPARISON_COLUMNS,
    TransferResult,
    transfer_curve,
)
from transmri.transfer.plan import TransferSplit, held_out_subjects, plan_splits
from transmri.transfer.registry import available_methods, method_needs_encoder, register_method

__all__ = [
    "COMPARISON_COLUMNS",
    "MethodContext",
    "MethodResult",
    "TransferConfig",
    "TransferResult",
    "TransferSplit",
    "available_methods",
    "held_out_subjects",
    "method_needs_encoder",
    "plan_splits",
    "register_method",
    "transfer_curve",
]
