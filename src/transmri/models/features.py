"""Multi-scale, regional features of a frozen encoder, for linear read-outs.

A linear probe on the globally averaged code (``Learner.encode_data``) keeps
one number per channel of the last layer: 16 for the paper's CAE. It throws
away *where* a feature fires, which is what many group differences in brain
MRI are about. :func:`regional_features` keeps a coarse map instead: the
output of every layer group, average-pooled to a ``grid x grid x grid`` box
grid, flattened and concatenated (in the spirit of hypercolumns, Hariharan
et al. 2015, and of the regional read-outs of brain-age models).

It works with any encoder of :mod:`transmri.models` through forward hooks on
``encoder.layer_groups()``; outputs that are not 5-D feature maps (e.g. the
VAE's mean vector) are skipped.

Example:
    >>> import torch
    >>> from transmri.models import ConvEncoder
    >>> enc = ConvEncoder()
    >>> regional_features(enc, torch.zeros(2, 1, 32, 40, 32), grid=2).shape
    torch.Size([2, 576])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from transmri.errors import ConfigError

__all__ = [
    "REGIONAL_GRID",
    "feature_maps",
    "regional_feature_size",
    "regional_features",
    "regional_forward",
]

#: Boxes per axis of the ``"regional"`` classifier head (and the probes' default).
REGIONAL_GRID = 2

Levels = str | Sequence[int]


def feature_maps(encoder: nn.Module, x: Tensor) -> list[Tensor]:
    """The 5-D output of each of ``encoder.layer_groups()``, earliest first.

    Args:
        encoder: a module with ``layer_groups()`` (every transmri encoder).
        x: ``(N, 1, D, H, W)`` volumes.

    Raises:
        ConfigError: the encoder has no ``layer_groups()``, or none of its
            groups outputs a feature map.
    """
    return _maps_and_output(encoder, x)[0]


def _maps_and_output(encoder: nn.Module, x: Tensor) -> tuple[list[Tensor], Tensor]:
    groups = getattr(encoder, "layer_groups", None)
    if not callable(groups):
        raise ConfigError(
            f"encoder: {type(encoder).__name__} has no layer_groups(); regional features need it"
        )
    maps: list[Tensor] = []

    def keep(_module: nn.Module, _inputs: Any, output: Any) -> None:
        if isinstance(output, Tensor) and output.ndim == 5:
            maps.append(output)

    handles = [group.register_forward_hook(keep) for group in groups()]
    try:
        output = encoder(x)
    finally:
        for handle in handles:
            handle.remove()
    if not maps:
        raise ConfigError(f"encoder: no layer group of {type(encoder).__name__} gave a 3-D map")
    return maps, output


def _select(maps: list[Tensor], levels: Levels) -> list[Tensor]:
    if levels == "all":
        return maps
    if levels == "last":
        return maps[-1:]
    if isinstance(levels, str) or not isinstance(levels, Sequence) or not levels:
        raise ConfigError(f"levels: expected 'all', 'last' or layer indices, got {levels!r}")
    out = []
    for i in levels:
        if not isinstance(i, int) or isinstance(i, bool) or not -len(maps) <= i < len(maps):
            raise ConfigError(
                f"levels: index {i!r} out of range for an encoder with {len(maps)} feature maps"
            )
        out.append(maps[i])
    return out


def regional_features(
    encoder: nn.Module, x: Tensor, *, grid: int = REGIONAL_GRID, levels: Levels = "all"
) -> Tensor:
    """Average-pool each selected feature map to ``grid`` boxes per axis; concatenate.

    Args:
        encoder: the (frozen) encoder; called as is, so put it in eval mode
            and under ``torch.no_grad()`` yourself.
        x: ``(N, 1, D, H, W)`` volumes.
        grid: boxes per axis (``1``: global average per channel).
        levels: ``"all"`` layer groups, ``"last"`` (the code only) or indices.

    Returns:
        ``(N, sum(C_l) * grid**3)`` features, layer by layer, channel-major.

    Raises:
        ConfigError: a bad ``grid`` or ``levels``, or an encoder without feature maps.
    """
    return regional_forward(encoder, x, grid=grid, levels=levels)[0]


def regional_forward(
    encoder: nn.Module, x: Tensor, *, grid: int = REGIONAL_GRID, levels: Levels = "all"
) -> tuple[Tensor, Tensor]:
    """``(regional_features(encoder, x), encoder(x))`` from one pass (gradients kept).

    The classifier's ``"regional"`` head trains through this.
    """
    if not isinstance(grid, int) or isinstance(grid, bool) or grid < 1:
        raise ConfigError(f"grid: expected a positive integer, got {grid!r}")
    maps, output = _maps_and_output(encoder, x)
    chosen = _select(maps, levels)
    pooled = [nn.functional.adaptive_avg_pool3d(m, grid).flatten(1) for m in chosen]
    return torch.cat(pooled, dim=1), output


def regional_feature_size(
    encoder: nn.Module, input_shape: Sequence[int], *, grid: int = 2, levels: Levels = "all"
) -> int:
    """Length of :func:`regional_features` for volumes of ``input_shape`` (one dry run)."""
    was_training = encoder.training
    encoder.eval()
    try:
        with torch.no_grad():
            probe = torch.zeros(1, 1, *input_shape)
            return int(regional_features(encoder, probe, grid=grid, levels=levels).shape[1])
    finally:
        encoder.train(was_training)
