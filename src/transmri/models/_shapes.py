"""Input checks and shape arithmetic shared by the models.

Every model checks its input with :func:`check_input`, so a wrong tensor
fails with the same message everywhere: what was expected, what was found.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from transmri._validation import check_positive_int, check_shape3d
from transmri.errors import ConfigError

__all__ = [
    "check_channels",
    "check_input",
    "check_input_shape",
    "encoder_code_shape",
    "encoder_out_channels",
    "level_sizes",
    "numel",
    "optional_shape3d",
]

_AXES = ("D", "H", "W")


def _check_sizes(sizes: Sequence[int], *, steps: int, where: str) -> None:
    minimum = 2**steps
    for axis, size in zip(_AXES, sizes):
        if size < minimum:
            raise ConfigError(
                f"{where}: input size {size} along {axis} is too small: at least {minimum} "
                f"needed for {steps} pooling steps (raise the preprocessing's target_shape)"
            )


def check_channels(name: str, value: object, *, length: int | None = None) -> tuple[int, ...]:
    """Return ``value`` as a tuple of positive ints (of ``length`` items if given)."""
    if isinstance(value, str) or not isinstance(value, Sequence) or len(value) == 0:
        raise ConfigError(f"{name}: expected a sequence of channel counts, got {value!r}")
    if length is not None and len(value) != length:
        raise ConfigError(f"{name}: expected {length} channel counts, got {len(value)}: {value!r}")
    return tuple(check_positive_int(f"{name}[{i}]", v) for i, v in enumerate(value))


def check_input(x: object, *, steps: int, where: str) -> None:
    """Raise ``ValueError`` unless ``x`` is a ``(N, 1, D, H, W)`` tensor big enough.

    Args:
        x: the batch given to a model.
        steps: how many times the model halves each spatial size; every size
            must be at least ``2 ** steps``.
        where: the model's name, put first in the message.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{where}: expected a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 5 or x.shape[1] != 1:
        hint = " (add a channel axis: x.unsqueeze(1))" if x.dim() == 4 else ""
        raise ValueError(
            f"{where}: expected input (N, 1, D, H, W), a batch of single-channel volumes, "
            f"got {tuple(x.shape)}{hint}"
        )
    _check_sizes(tuple(x.shape[2:]), steps=steps, where=where)


def check_input_shape(input_shape: object, *, steps: int, where: str) -> tuple[int, int, int]:
    """Validate a spatial input shape ``(D, H, W)`` and return it as a tuple of ints."""
    shape = check_shape3d(f"{where}: input_shape", input_shape)
    _check_sizes(shape, steps=steps, where=where)
    return shape


def optional_shape3d(name: str, value: object) -> tuple[int, int, int] | None:
    """``None`` stays ``None``; anything else must be three positive sizes (D, H, W)."""
    return None if value is None else check_shape3d(name, value)


def level_sizes(
    shape: Sequence[int], steps: int, *, rule: Callable[[int], int] = lambda n: n // 2
) -> list[tuple[int, ...]]:
    """Spatial sizes at each level: ``[shape, rule(shape), ...]``, ``steps + 1`` entries.

    Example:
        >>> level_sizes((105, 127, 105), 2)
        [(105, 127, 105), (52, 63, 52), (26, 31, 26)]
    """
    sizes = [tuple(int(s) for s in shape)]
    for _ in range(steps):
        sizes.append(tuple(rule(s) for s in sizes[-1]))
    return sizes


def encoder_code_shape(encoder: nn.Module, input_shape: Sequence[int] | None) -> tuple[int, ...]:
    """The per-sample code shape of ``encoder`` for volumes of ``input_shape``.

    Uses the encoder's own ``code_shape`` when it has one; otherwise runs one
    zero volume through it (eval mode, no gradient), which needs
    ``input_shape``.
    """
    if input_shape is None:
        raise ConfigError(
            f"input_shape: expected the volume shape (D, H, W) to size the head for an encoder "
            f"of type {type(encoder).__name__}, got None"
        )
    shape = check_shape3d("input_shape", input_shape)
    code_shape = getattr(encoder, "code_shape", None)
    if callable(code_shape):
        return tuple(int(s) for s in code_shape(shape))
    was_training = encoder.training
    encoder.eval()
    try:
        with torch.no_grad():
            parameter = next(encoder.parameters(), None)
            device = parameter.device if parameter is not None else torch.device("cpu")
            code = encoder(torch.zeros((1, 1, *shape), device=device))
    finally:
        encoder.train(was_training)
    if not isinstance(code, torch.Tensor):
        raise ConfigError(
            f"encoder {type(encoder).__name__}: expected forward to return a tensor (the code), "
            f"got {type(code).__name__}"
        )
    return tuple(code.shape[1:])


def encoder_out_channels(encoder: nn.Module, input_shape: Sequence[int] | None) -> int:
    """The channel (or feature) count of ``encoder``'s code.

    Reads ``encoder.out_channels`` when present, else measures the code for
    ``input_shape`` (see :func:`encoder_code_shape`).
    """
    channels = getattr(encoder, "out_channels", None)
    if isinstance(channels, int):
        return channels
    return int(encoder_code_shape(encoder, input_shape)[0])


def numel(shape: Sequence[int]) -> int:
    """Product of ``shape``."""
    return int(math.prod(shape))
