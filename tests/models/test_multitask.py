"""Tests for transmri.models.multitask: the autoencoder with heads ("mixed")."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from transmri.errors import ConfigError
from transmri.models import (
    ConvAutoEncoder,
    MultiTaskAutoEncoder,
    StridedConvAutoEncoder,
    VariationalAutoEncoder,
)


def test_outputs_for_main_class_regression_and_extra_class() -> None:
    model = MultiTaskAutoEncoder(
        ConvAutoEncoder(),
        num_classes=2,
        regression_targets=("age",),
        classification_targets={"sex": 2, "site": 3},
    ).eval()
    x = torch.rand(4, 1, 16, 16, 16)
    with torch.no_grad():
        out = model(x)
    assert set(out) == {"reconstruction", "code", "logits", "pred_age", "pred_sex", "pred_site"}
    assert out["reconstruction"].shape == x.shape
    assert out["logits"].shape == (4, 2)
    assert out["pred_age"].shape == (4,)
    assert out["pred_sex"].shape == (4, 2)
    assert out["pred_site"].shape == (4, 3)


def test_mixed_loss_reaches_every_parameter() -> None:
    model = MultiTaskAutoEncoder(ConvAutoEncoder(), num_classes=2, regression_targets=("age",))
    x = torch.rand(2, 1, 16, 16, 16)
    out = model(x)
    alpha = 0.7
    loss = (
        alpha * F.mse_loss(out["reconstruction"], x)
        + (1 - alpha) * F.cross_entropy(out["logits"], torch.tensor([0, 1]))
        + F.mse_loss(out["pred_age"], torch.tensor([0.3, 0.6]))
    )
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_heads_on_a_vae_use_the_mean_code() -> None:
    model = MultiTaskAutoEncoder(VariationalAutoEncoder(), num_classes=3).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 1, 16, 16, 16))
    assert {"mu", "logvar", "logits"} <= set(out)
    assert torch.equal(out["code"], out["mu"])


def test_encoder_is_shared_not_duplicated() -> None:
    ae = StridedConvAutoEncoder()
    model = MultiTaskAutoEncoder(ae, num_classes=2)
    assert model.encoder is ae.encoder
    assert not any(k.startswith("encoder.") for k in model.state_dict())
    assert model.num_parameters() == ae.num_parameters() + 16 * 2 + 2
    groups = model.layer_groups()
    assert groups[-1] is model.heads and groups[-2] is ae.decoder


def test_flatten_heads() -> None:
    model = MultiTaskAutoEncoder(
        ConvAutoEncoder(), num_classes=2, head="flatten", input_shape=(16, 16, 16)
    )
    assert model.heads["logits"].code_shape == (16, 2, 2, 2)
    assert model(torch.rand(1, 1, 16, 16, 16))["logits"].shape == (1, 2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, r"expected at least one head"),
        ({"num_classes": 1}, r"num_classes: expected 0 \(no main head\) or >= 2, got 1"),
        ({"regression_targets": "age"}, r"expected a sequence of names, got the string 'age'"),
        (
            {"regression_targets": ("age",), "classification_targets": {"age": 2}},
            r"'age' is given twice",
        ),
        ({"regression_targets": ("brain volume",)}, r"expected an identifier"),
        (
            {"classification_targets": {"sex": 1}},
            r"classification_targets\['sex'\]: expected an integer >= 2",
        ),
        ({"num_classes": 2, "head": "flatten"}, r"input_shape: expected the volume shape"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        MultiTaskAutoEncoder(ConvAutoEncoder(), **kwargs)  # type: ignore[arg-type]
