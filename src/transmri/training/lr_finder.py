"""The learning-rate range test (Smith 2015): train briefly with a growing rate, watch the loss."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
from torch import Tensor, nn

from transmri._validation import check_positive_float, check_positive_int
from transmri.errors import ConfigError
from transmri.training.objectives import Objective

__all__ = ["find_lr", "suggest_lr"]


def find_lr(
    fabric: Any,
    module: nn.Module,
    optimizer: Any,
    loader: Iterable[dict[str, Tensor]],
    objective: Objective,
    *,
    start: float = 1e-6,
    end: float = 1.0,
    steps: int = 50,
    smoothing: float = 0.9,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Run up to ``steps`` optimiser steps with ``lr = start * (end / start) ** (i / (steps - 1))``.

    Stops early once the smoothed loss exceeds 4x its minimum or is not finite.
    The caller restores the weights.

    Returns:
        ``(lrs, smoothed losses, suggested lr)``.
    """
    start = check_positive_float("start", start)
    end = check_positive_float("end", end)
    steps = check_positive_int("steps", steps, minimum=2)
    if end <= start:
        raise ConfigError(f"end: expected a rate larger than start={start}, got {end}")
    module.train()
    lrs: list[float] = []
    losses: list[float] = []
    avg, best = 0.0, math.inf
    step = 0
    while step < steps:
        for batch in loader:
            lr = start * (end / start) ** (step / (steps - 1))
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss = objective(module(batch["image"]), batch)["loss"]
            optimizer.zero_grad(set_to_none=True)
            fabric.backward(loss)
            optimizer.step()
            value = float(loss.item())
            avg = smoothing * avg + (1 - smoothing) * value
            smoothed = avg / (1 - smoothing ** (step + 1))
            lrs.append(lr)
            losses.append(smoothed)
            step += 1
            best = min(best, smoothed)
            if not math.isfinite(smoothed) or smoothed > 4 * best or step >= steps:
                return _result(lrs, losses)
    return _result(lrs, losses)


def _result(lrs: list[float], losses: list[float]) -> tuple[np.ndarray, np.ndarray, float]:
    x, y = np.asarray(lrs), np.asarray(losses)
    return x, y, suggest_lr(x, y)


def suggest_lr(lrs: np.ndarray, losses: np.ndarray) -> float:
    """The rate where the smoothed loss falls fastest per log-rate (the first rate if too few)."""
    finite = np.isfinite(losses)
    x, y = np.log10(lrs[finite]), losses[finite]
    if x.size < 3:
        return float(lrs[0])
    slope = np.gradient(y, x)
    return float(10 ** x[int(np.argmin(slope))])
