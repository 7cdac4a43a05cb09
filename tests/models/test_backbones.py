"""Tests for transmri.models.backbones: MONAI ResNet and DenseNet encoders."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from transmri.models import (
    EncoderClassifier,
    backbones,
    densenet121_encoder,
    resnet10_encoder,
    resnet18_encoder,
)


@pytest.mark.parametrize(
    ("factory", "params"),
    [
        (resnet10_encoder, 14_356_416),
        (resnet18_encoder, 33_160_896),
        (densenet121_encoder, 11_242_624),
    ],
    ids=["resnet10", "resnet18", "densenet121"],
)
def test_classifier_on_backbone_gives_logits(factory: object, params: int) -> None:
    encoder = factory()  # type: ignore[operator]
    assert encoder.num_parameters() == params
    model = EncoderClassifier(encoder, 3).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 1, 32, 32, 32))
    assert out["logits"].shape == (2, 3)
    assert out["code"].shape == (2, *encoder.code_shape((32, 32, 32)))
    # BatchNorm (scale + shift) on the pooled features, then the linear layer
    assert model.num_parameters() == params + encoder.out_channels * (2 + 3) + 3
    groups = model.layer_groups()
    assert len(groups) == 6 and groups[-1] is model.head
    assert sum(sum(p.numel() for p in g.parameters()) for g in groups[:-1]) == params


def test_code_shape_matches_a_real_pass_for_odd_sizes() -> None:
    for encoder in (resnet10_encoder(first_stride=1), densenet121_encoder()):
        encoder.eval()
        with torch.no_grad():
            code = encoder(torch.rand(1, 1, 33, 37, 35))
        assert code.shape[1:] == encoder.code_shape((33, 37, 35))


def test_resnet_trains_end_to_end() -> None:
    model = EncoderClassifier(resnet10_encoder(), 2)
    out = model(torch.rand(2, 1, 16, 16, 16))
    F.cross_entropy(out["logits"], torch.tensor([0, 1])).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_densenet_rejects_too_small_volumes() -> None:
    with pytest.raises(
        ValueError, match=r"input size 16 along D is too small: at least 32 needed for 5"
    ):
        densenet121_encoder()(torch.rand(1, 1, 16, 32, 32))


def test_monai_is_imported_only_inside_the_constructors() -> None:
    tree = ast.parse(Path(backbones.__file__).read_text())
    top_level = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    names = [getattr(n, "module", None) or n.names[0].name for n in top_level]
    assert not any(name.startswith("monai") for name in names), names
