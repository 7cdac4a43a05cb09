"""Tests for transmri.models.projection: projection head and contrastive model."""

from __future__ import annotations

import pytest
import torch

from transmri.models import ContrastiveModel, ConvEncoder, ProjectionHead, StridedEncoder


def test_projection_head_shapes_and_parameters() -> None:
    head = ProjectionHead(16, hidden_dim=32, projection_dim=8)
    assert head(torch.rand(3, 16, 2, 2, 2)).shape == (3, 8)
    assert head(torch.rand(3, 16)).shape == (3, 8)
    assert sum(p.numel() for p in head.parameters()) == (16 * 32 + 32) + (32 * 8 + 8)
    with pytest.raises(ValueError, match=r"expected a code with 16 channels, got shape \(3, 4\)"):
        head(torch.rand(3, 4))


def test_contrastive_model_returns_code_and_projection() -> None:
    model = ContrastiveModel(StridedEncoder(), projection_dim=12)
    out = model(torch.rand(2, 1, 16, 16, 16))
    assert set(out) == {"code", "projection"}
    assert out["code"].shape == (2, 16, 2, 2, 2)
    assert out["projection"].shape == (2, 12)
    out["projection"].sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    assert model.layer_groups()[-1] is model.projection


def test_config_names_the_encoder() -> None:
    config = ContrastiveModel(ConvEncoder()).config
    assert config["name"] == "contrastive"
    assert config["encoder"] == ConvEncoder().config
    assert config["projection_dim"] == 64 and config["hidden_dim"] == 16
