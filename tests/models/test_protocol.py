"""Tests for transmri.models.protocol: every model and encoder meets the protocols."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from transmri.models import (
    ContrastiveModel,
    ConvAutoEncoder,
    ConvEncoder,
    Encoder,
    EncoderClassifier,
    MultiTaskAutoEncoder,
    StridedConvAutoEncoder,
    StridedEncoder,
    TransferModel,
    VariationalAutoEncoder,
    VariationalEncoder,
    count_parameters,
)

KEYS = {"reconstruction", "logits", "code", "mu", "logvar", "projection"}


def _models() -> list[nn.Module]:
    return [
        ConvAutoEncoder(),
        StridedConvAutoEncoder(),
        VariationalAutoEncoder(),
        EncoderClassifier(ConvEncoder(), 2),
        MultiTaskAutoEncoder(ConvAutoEncoder(), num_classes=2, regression_targets=("age",)),
        ContrastiveModel(ConvEncoder()),
    ]


@pytest.mark.parametrize("model", _models(), ids=lambda m: type(m).__name__)
def test_every_model_meets_the_protocol(model: nn.Module) -> None:
    assert isinstance(model, TransferModel)
    model.eval()
    x = torch.rand(2, 1, 16, 16, 16)
    with torch.no_grad():
        out = model(x)
        code = model.encode(x)
    assert all(k in KEYS or k.startswith("pred_") for k in out)
    assert torch.equal(out["code"], code)
    assert code.shape[1:] == model.code_shape((16, 16, 16))
    groups = model.layer_groups()
    assert all(isinstance(g, nn.Module) for g in groups) and len(groups) >= 2
    grouped = {id(p) for g in groups for p in g.parameters()}
    assert grouped == {id(p) for p in model.parameters()}  # no parameter left out
    assert model.num_parameters() == count_parameters(model) > 0
    assert model.config["name"]


@pytest.mark.parametrize("encoder", [ConvEncoder(), StridedEncoder(), VariationalEncoder()])
def test_every_encoder_meets_the_encoder_protocol(encoder: nn.Module) -> None:
    assert isinstance(encoder, Encoder)
    assert encoder.code_shape((16, 16, 16))[0] == encoder.out_channels


def test_count_parameters_trainable_only() -> None:
    layer = nn.Linear(3, 2)
    layer.bias.requires_grad_(False)
    assert count_parameters(layer) == 8
    assert count_parameters(layer, trainable_only=True) == 6
