"""Tests of transmri.evaluation.saliency."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

from transmri.errors import ConfigError, DataFormatError
from transmri.evaluation.saliency import gradient_map, occlusion_map, plot_saliency


class CornerModel(nn.Module):
    """Class 1's logit is the mean of the (0:4, 0:4, 0:4) corner; everything else is ignored."""

    def __init__(self, *, as_dict: bool = True) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(4.0))
        self.dropout = nn.Dropout(0.9)  # would scramble the map if left in train mode
        self.as_dict = as_dict

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor] | torch.Tensor:
        corner = self.dropout(x[:, 0, :4, :4, :4]).flatten(1).mean(1)
        logits = torch.stack([torch.zeros_like(corner), self.scale * corner], dim=1)
        return {"logits": logits, "code": corner[:, None]} if self.as_dict else logits


def corner_peak(saliency: np.ndarray) -> bool:
    return float(saliency[:4, :4, :4].mean()) > 10 * float(np.abs(saliency[4:, 4:, 4:]).mean())


def test_occlusion_map_is_highest_in_the_watched_corner() -> None:
    model = CornerModel().train()
    volume = torch.ones(12, 12, 12)
    saliency = occlusion_map(model, volume, target=1, patch=4, batch_size=5)
    assert saliency.shape == (12, 12, 12) and saliency.dtype == np.float32
    assert corner_peak(saliency)
    assert np.unravel_index(saliency.argmax(), saliency.shape) < (4, 4, 4)
    assert saliency[8:, 8:, 8:].max() == pytest.approx(0.0, abs=1e-7)
    assert model.training  # mode restored
    assert model.scale.grad is None


def test_occlusion_overlapping_stride_and_tensor_output() -> None:
    model = CornerModel(as_dict=False)
    saliency = occlusion_map(model, np.ones((1, 10, 10, 10)), patch=4, stride=2)
    assert saliency.shape == (10, 10, 10)
    assert corner_peak(saliency)


def test_gradient_map_and_smoothgrad_leave_no_gradients() -> None:
    model = CornerModel().train()
    volume = torch.rand(12, 12, 12)
    plain = gradient_map(model, volume, target=1)
    assert plain.shape == (12, 12, 12)
    np.testing.assert_allclose(plain[:4, :4, :4], 4.0 / 64, rtol=1e-5)
    assert plain[4:].max() == 0.0
    smooth = gradient_map(model, volume, target=1, smooth_samples=3, noise=0.2)
    assert corner_peak(smooth)
    assert model.scale.grad is None and model.training
    assert not volume.requires_grad


def test_saliency_input_errors() -> None:
    model = CornerModel()
    with pytest.raises(DataFormatError, match=r"expected one 3D volume.*got shape \(2, 8, 8, 8\)"):
        occlusion_map(model, torch.ones(2, 8, 8, 8))
    with pytest.raises(DataFormatError, match=r"target: expected a class index in 0\.\.1, got 5"):
        gradient_map(model, torch.ones(8, 8, 8), target=5)
    with pytest.raises(ConfigError, match="patch: expected an integer >= 1, got 0"):
        occlusion_map(model, torch.ones(8, 8, 8), patch=0)

    class NoLogits(nn.Module):
        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"reconstruction": x}

    with pytest.raises(DataFormatError, match=r"key 'logits', got keys \['reconstruction'\]"):
        occlusion_map(NoLogits(), torch.ones(8, 8, 8))


def test_plot_saliency_writes_png(tmp_path: Path) -> None:
    volume = np.random.default_rng(0).random((12, 12, 12))
    saliency = np.zeros((12, 12, 12))
    saliency[2, 3, 1] = 1.0
    fig = plot_saliency(volume, saliency, path=tmp_path / "saliency.png")
    assert isinstance(fig, Figure)
    assert (tmp_path / "saliency.png").stat().st_size > 1000
    assert "(2, 3, 1)" in fig.get_suptitle()
    with pytest.raises(DataFormatError, match=r"expected the shape of the 3D volume"):
        plot_saliency(volume, saliency[:6])
