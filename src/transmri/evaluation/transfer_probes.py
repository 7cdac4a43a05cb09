"""Regional linear probes as transfer-benchmark methods: ``regional_probe``, ``regional_random``.

Both fit a logistic regression (C by the same subject-grouped internal CV as
``linear_probe``) on :func:`~transmri.models.regional_features`: every layer
group's feature map of the frozen encoder, average-pooled to
``config.probe_grid`` boxes per axis (``config.probe_levels`` picks the
layers). They differ only in the weights:

- ``regional_probe``: the pretrained encoder;
- ``regional_random``: the same architecture with fresh random weights
  (seeded by the run). This is the control that says how much of a regional
  probe's score is the pretraining and how much is the read-out itself.

Importing this module registers them (see
:func:`~transmri.evaluation.transfer_methods.register_method`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from transmri.data import DataBunch
from transmri.evaluation.transfer_methods import (
    MethodContext,
    MethodResult,
    logistic_on_codes,
    register_method,
)
from transmri.models.features import REGIONAL_GRID

__all__ = ["PROBE_METHODS", "regional_codes"]

PROBE_METHODS: tuple[str, ...] = ("regional_probe", "regional_random")


def regional_codes(
    encoder: nn.Module,
    data: DataBunch,
    split: str,
    *,
    grid: int = REGIONAL_GRID,
    levels: str = "all",
    batch_size: int = 8,
) -> np.ndarray:
    """Regional features of every scan of ``split`` (eval mode, no gradients, no augmentation).

    Returns:
        ``(n_scans, n_features)`` float32, rows in the split table's order.
    """
    from transmri.models import regional_features

    dataset = data.dataset(split)  # type: ignore[arg-type]
    encoder.eval()
    rows: list[np.ndarray] = []
    with torch.no_grad():
        for start in range(0, len(dataset), batch_size):
            stop = min(start + batch_size, len(dataset))
            batch = np.stack(
                [np.asarray(dataset.volume(i), np.float32) for i in range(start, stop)]
            )
            x = torch.from_numpy(batch)[:, None]
            rows.append(regional_features(encoder, x, grid=grid, levels=levels).numpy())
    return np.concatenate(rows).astype(np.float32, copy=False)


def _probe(context: MethodContext, encoder: nn.Module) -> MethodResult:
    config = context.config
    codes = [
        regional_codes(encoder, context.data, split, grid=config.probe_grid,
                       levels=config.probe_levels, batch_size=config.batch_size)
        for split in ("train", "val", "test")
    ]  # fmt: skip
    where = (
        f"{codes[0].shape[1]} regional features (grid {config.probe_grid}, {config.probe_levels})"
    )
    return logistic_on_codes(context, codes, np.logspace(-5, 1, 7), notes=where)


def _encoder_module(context: MethodContext, *, pretrained: bool) -> nn.Module:
    """The pretrained encoder, or the same architecture freshly initialised with the run's seed."""
    from transmri.models import build_model
    from transmri.training import load_encoder

    encoder, card = load_encoder(context.encoder)  # type: ignore[arg-type]  # needs_encoder
    if pretrained:
        return encoder
    torch.manual_seed(context.seed)
    built = build_model(card["architecture"])
    return getattr(built, "encoder", built)


@register_method("regional_probe", needs_encoder=True, replace=True)
def regional_probe(context: MethodContext) -> MethodResult:
    """Logistic regression on the frozen pretrained encoder's regional, multi-layer features."""
    return _probe(context, _encoder_module(context, pretrained=True))


@register_method("regional_random", needs_encoder=True, replace=True)
def regional_random(context: MethodContext) -> MethodResult:
    """The ``regional_probe`` read-out on a randomly initialised encoder (the control)."""
    return _probe(context, _encoder_module(context, pretrained=False))
