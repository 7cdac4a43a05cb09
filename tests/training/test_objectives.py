"""Objectives: the values they compute, named parts, masking of missing targets."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from transmri.errors import ConfigError
from transmri.training.objectives import (
    ClassificationLoss,
    MultiTaskLoss,
    Objective,
    ReconstructionLoss,
    VAELoss,
    code_l1,
    extra_head_losses,
    weight_l1,
)


def _batch(n: int = 4) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {"image": torch.rand(n, 1, 4, 4, 4), "label": torch.tensor([0, 1, 1, -1][:n])}


def test_reconstruction_is_mse() -> None:
    batch = _batch()
    recon = torch.rand_like(batch["image"])
    parts = ReconstructionLoss()({"reconstruction": recon}, batch)
    assert torch.allclose(parts["loss"], F.mse_loss(recon, batch["image"]))
    assert set(parts) == {"loss", "mse"}


def test_classification_weighted_and_ignores_unlabelled() -> None:
    batch = _batch()
    logits = torch.randn(4, 2)
    weights = torch.tensor([3.0, 1.0])
    parts = ClassificationLoss(class_weights=weights)({"logits": logits}, batch)
    expected = F.cross_entropy(logits[:3], batch["label"][:3], weight=weights)
    assert torch.allclose(parts["ce"], expected)


def test_classification_all_unlabelled_gives_zero_not_nan() -> None:
    batch = {"image": torch.rand(2, 1, 2, 2, 2), "label": torch.tensor([-1, -1])}
    logits = torch.randn(2, 2, requires_grad=True)
    parts = ClassificationLoss()({"logits": logits}, batch)
    assert parts["loss"].item() == 0.0
    parts["loss"].backward()  # still differentiable


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_multitask_uses_alpha(alpha: float) -> None:
    batch = _batch()
    out = {"reconstruction": torch.rand_like(batch["image"]), "logits": torch.randn(4, 2)}
    parts = MultiTaskLoss(alpha=alpha)(out, batch)
    expected = alpha * parts["mse"] + (1 - alpha) * parts["ce"]
    assert torch.allclose(parts["loss"], expected)


def test_multitask_rejects_bad_alpha() -> None:
    with pytest.raises(ConfigError, match=r"alpha: expected a number in \[0, 1\], got 1.5"):
        MultiTaskLoss(alpha=1.5)


def test_vae_adds_beta_kl() -> None:
    batch = _batch(2)
    mu, logvar = torch.randn(2, 3, 1, 1, 1), torch.randn(2, 3, 1, 1, 1)
    out = {"reconstruction": torch.rand_like(batch["image"]), "mu": mu, "logvar": logvar}
    parts = VAELoss(beta=2.0)(out, batch)
    kl = -0.5 * torch.mean(1 + logvar - mu**2 - logvar.exp())
    assert torch.allclose(parts["kl"], kl)
    assert torch.allclose(parts["loss"], parts["mse"] + 2.0 * kl)
    zero = VAELoss(beta=0.0)(
        {**out, "mu": torch.zeros_like(mu), "logvar": torch.zeros_like(mu)}, batch
    )
    assert zero["kl"].item() == pytest.approx(0.0)


def test_extra_heads_ignore_missing_targets() -> None:
    batch = {
        "image": torch.rand(3, 1, 2, 2, 2),
        "age": torch.tensor([50.0, math.nan, 70.0]),
        "sex": torch.tensor([0.0, 1.0, math.nan]),
    }
    outputs = {"pred_age": torch.tensor([52.0, 0.0, 70.0]), "pred_sex": torch.randn(3, 2)}
    parts = extra_head_losses(outputs, batch)
    assert parts["age_mse"].item() == pytest.approx(2.0)  # (4 + 0) / 2; the NaN row ignored
    expected = F.cross_entropy(outputs["pred_sex"][:2], torch.tensor([0, 1]))
    assert torch.allclose(parts["sex_ce"], expected)


def test_missing_output_key_is_named() -> None:
    with pytest.raises(ConfigError, match="expected key 'logits', found keys \\['code'\\]"):
        ClassificationLoss()({"code": torch.zeros(1)}, _batch(1))


def test_weight_l1_skips_biases_and_frozen() -> None:
    layer = nn.Linear(2, 2)
    with torch.no_grad():
        layer.weight.fill_(-0.5)
        layer.bias.fill_(10.0)
    assert weight_l1(layer).item() == pytest.approx(2.0)
    layer.weight.requires_grad_(False)
    assert weight_l1(layer).item() == 0.0


def test_code_l1_needs_a_code() -> None:
    assert code_l1({"code": torch.tensor([-1.0, 3.0])}).item() == pytest.approx(2.0)
    with pytest.raises(ConfigError, match="no 'code'"):
        code_l1({"logits": torch.zeros(1)})


def test_builtins_satisfy_protocol() -> None:
    for objective in (ReconstructionLoss(), ClassificationLoss(), MultiTaskLoss(), VAELoss()):
        assert isinstance(objective, Objective)
