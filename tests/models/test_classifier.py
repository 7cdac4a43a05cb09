"""Tests for transmri.models.classifier: encoder + head, and loading encoder weights."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from transmri.errors import CheckpointError, ConfigError
from transmri.models import (
    ConvAutoEncoder,
    ConvEncoder,
    EncoderClassifier,
    StridedConvAutoEncoder,
    VariationalAutoEncoder,
)


def test_forward_returns_logits_and_code() -> None:
    model = EncoderClassifier(ConvEncoder(), 3).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 1, 16, 24, 16))
    assert set(out) == {"logits", "code"}
    assert out["logits"].shape == (2, 3)
    assert out["code"].shape == (2, 16, 2, 3, 2)


def test_gap_head_has_far_fewer_parameters_than_flatten() -> None:
    shape = (108, 128, 108)
    gap = EncoderClassifier(ConvEncoder(), 2, norm="none")
    flat = EncoderClassifier(ConvEncoder(), 2, head="flatten", input_shape=shape)
    assert gap.num_parameters() == 31_392 + 34
    # the default gap head normalises its 16 features (BatchNorm: 16 scales, 16 shifts)
    assert EncoderClassifier(ConvEncoder(), 2).num_parameters() == 31_392 + 32 + 34
    assert flat.num_parameters() == 31_392 + 86_530


def test_flatten_needs_input_shape() -> None:
    with pytest.raises(ConfigError, match=r"input_shape: expected the volume shape"):
        EncoderClassifier(ConvEncoder(), 2, head="flatten")


@pytest.mark.parametrize("ae", [ConvAutoEncoder, StridedConvAutoEncoder, VariationalAutoEncoder])
def test_from_any_autoencoder_copies_its_encoder(ae: type[nn.Module]) -> None:
    autoencoder = ae()
    model = EncoderClassifier.from_autoencoder(autoencoder, 2, dropout=0.5)
    assert model.encoder is not autoencoder.encoder
    for a, b in zip(model.encoder.state_dict().values(), autoencoder.encoder.state_dict().values()):
        assert torch.equal(a, b)
    model.eval()
    with torch.no_grad():
        x = torch.rand(1, 1, 16, 16, 16)
        assert model(x)["logits"].shape == (1, 2)
        assert torch.equal(model(x)["code"], autoencoder.eval().encode(x))


def test_gradient_reaches_every_parameter_of_a_cae_classifier() -> None:
    model = EncoderClassifier(ConvEncoder(), 2, hidden=4)
    out = model(torch.rand(2, 1, 16, 16, 16))
    F.cross_entropy(out["logits"], torch.tensor([0, 1])).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_from_config_builds_fresh_and_loads_weights() -> None:
    pretrained = ConvAutoEncoder()
    model = EncoderClassifier.from_config(
        pretrained.config, 2, state_dict=pretrained.encoder.state_dict()
    )
    assert isinstance(model.encoder, ConvEncoder)
    for key, value in pretrained.encoder.state_dict().items():
        assert torch.equal(model.encoder.state_dict()[key], value)


def test_load_encoder_state_strict_and_lenient() -> None:
    source = ConvEncoder().state_dict()
    model = EncoderClassifier(ConvEncoder(), 2)
    result = model.load_encoder_state(source)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert torch.equal(model.encoder.blocks[0].conv.weight, source["blocks.0.conv.weight"])

    partial = {k: v for k, v in source.items() if not k.startswith("blocks.3")}
    partial["extra.weight"] = torch.zeros(1)
    with pytest.raises(
        CheckpointError,
        match=r"missing keys 'blocks.3.conv.weight', 'blocks.3.conv.bias'; "
        r"unexpected keys 'extra.weight'",
    ):
        model.load_encoder_state(partial)
    result = model.load_encoder_state(partial, strict=False)
    assert result.missing_keys == ["blocks.3.conv.weight", "blocks.3.conv.bias"]
    assert result.unexpected_keys == ["extra.weight"]


def test_load_encoder_state_names_shape_mismatches() -> None:
    model = EncoderClassifier(ConvEncoder(), 2)
    other = ConvEncoder(channels=(4, 16, 32, 16)).state_dict()
    with pytest.raises(
        CheckpointError,
        match=r"'blocks.0.conv.weight': encoder has \(8, 1, 3, 3, 3\), "
        r"state dict has \(4, 1, 3, 3, 3\)",
    ):
        model.load_encoder_state(other, strict=False)


def test_plain_encoder_module_without_protocol() -> None:
    encoder = nn.Sequential(nn.Conv3d(1, 4, 3, stride=2), nn.ReLU())
    with pytest.raises(ConfigError, match=r"input_shape: expected the volume shape"):
        EncoderClassifier(encoder, 2)
    model = EncoderClassifier(encoder, 2, head="flatten", input_shape=(9, 9, 9))
    assert model.head.code_shape == (4, 4, 4, 4)
    assert model.encoder.training  # the dry run restored the mode
    assert model.layer_groups() == [encoder, model.head]
    with pytest.raises(ConfigError, match=r"Sequential without one"):
        _ = model.config


def test_config_and_layer_groups() -> None:
    model = EncoderClassifier(ConvEncoder(), 4, dropout=0.1, hidden=8)
    assert model.config == {
        "name": "classifier",
        "encoder": ConvEncoder().config,
        "num_classes": 4,
        "head": "gap",
        "dropout": 0.1,
        "input_shape": None,
        "hidden": 8,
        "norm": "batch",
    }
    groups = model.layer_groups()
    assert len(groups) == 5 and groups[-1] is model.head


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_classes": 1}, ConfigError, r"num_classes: expected an integer >= 2, got 1"),
        ({"head": "max"}, ConfigError, r"head: expected one of .*'regional', got 'max'"),
        ({"norm": "group"}, ConfigError, r"norm: expected one of 'none', 'batch', 'layer'"),
        ({"encoder": {"name": "cae"}}, TypeError, r"encoder: expected an nn.Module"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], error: type[Exception], match: str) -> None:
    args: dict[str, object] = {"encoder": ConvEncoder(), "num_classes": 2, **kwargs}
    with pytest.raises(error, match=match):
        EncoderClassifier(**args)  # type: ignore[arg-type]


def test_bad_input_raises() -> None:
    with pytest.raises(
        ValueError, match=r"expected input \(N, 1, D, H, W\).*got \(2, 16, 16, 16\)"
    ):
        EncoderClassifier(ConvEncoder(), 2)(torch.rand(2, 16, 16, 16))


def test_head_norm_default_config_round_trip_and_old_configs() -> None:
    from transmri.models import build_model

    gap = EncoderClassifier(ConvEncoder(), 2)
    assert gap.head.norm_kind == "batch" and gap.config["norm"] == "batch"
    flat = EncoderClassifier(ConvEncoder(), 2, head="flatten", input_shape=(16, 16, 16))
    assert flat.head.norm_kind == "none" and "norm" not in flat.config
    for norm in ("none", "batch", "layer"):
        model = EncoderClassifier(ConvEncoder(), 2, norm=norm)
        rebuilt = build_model(model.config)
        assert rebuilt.config == model.config
        assert list(rebuilt.state_dict()) == list(model.state_dict())
    # a config written before the option (no "norm") rebuilds the old head, same keys
    old = {k: v for k, v in gap.config.items() if k != "norm"}
    rebuilt = build_model(old)
    assert rebuilt.head.norm_kind == "none" and rebuilt.config == old
    assert not any(".norm." in key for key in rebuilt.state_dict())


@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_normalised_head_ignores_a_common_feature_offset(norm: str) -> None:
    torch.manual_seed(0)
    model = EncoderClassifier(ConvEncoder(channels=(4, 8)), 2, norm=norm).train()
    code = torch.rand(3, 8, 2, 2, 2)
    with torch.no_grad():
        assert torch.allclose(model.head(code), model.head(code + 2.75), atol=1e-3)
