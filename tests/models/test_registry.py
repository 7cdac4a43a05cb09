"""Tests for transmri.models.registry: build_model(config) round trips."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from transmri.errors import ConfigError
from transmri.models import (
    ContrastiveModel,
    ConvAutoEncoder,
    ConvEncoder,
    EncoderClassifier,
    MultiTaskAutoEncoder,
    StridedConvAutoEncoder,
    StridedEncoder,
    VariationalAutoEncoder,
    VariationalEncoder,
    available_models,
    build_model,
)


def _models() -> list[nn.Module]:
    return [
        ConvAutoEncoder(channels=(4, 8, 8), activation="elu", norm="group", input_dropout=0.1),
        ConvEncoder(norm="batch"),
        StridedConvAutoEncoder(channels=(4, 8), hidden=(2, 2), dropout=0.2),
        StridedEncoder(),
        VariationalAutoEncoder(latent_channels=8),
        VariationalEncoder(),
        EncoderClassifier(ConvEncoder(), 3, head="flatten", input_shape=(16, 16, 16), hidden=4),
        EncoderClassifier.from_autoencoder(VariationalAutoEncoder(), 2),
        MultiTaskAutoEncoder(
            ConvAutoEncoder(),
            num_classes=2,
            regression_targets=("age",),
            classification_targets={"sex": 2},
        ),
        ContrastiveModel(StridedEncoder(), projection_dim=16),
    ]


@pytest.mark.parametrize("model", _models(), ids=lambda m: type(m).__name__)
def test_config_round_trip_through_json(model: nn.Module) -> None:
    config = json.loads(json.dumps(model.config))
    rebuilt = build_model(config)
    assert type(rebuilt) is type(model)
    assert rebuilt.config == model.config
    theirs = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()} == theirs
    rebuilt.load_state_dict(model.state_dict())


@pytest.mark.parametrize("name", ["resnet10", "densenet121"])
def test_backbone_round_trip(name: str) -> None:
    model = build_model({"name": "classifier", "encoder": {"name": name}, "num_classes": 2})
    assert model.config["encoder"]["name"] == name
    rebuilt = build_model(json.loads(json.dumps(model.config)))
    assert rebuilt.state_dict().keys() == model.state_dict().keys()


def test_registry_lists_every_name() -> None:
    assert available_models() == sorted(
        [
            "cae",
            "cae_encoder",
            "srcae",
            "srcae_encoder",
            "vae",
            "vae_encoder",
            "classifier",
            "mixed",
            "contrastive",
            "resnet10",
            "resnet18",
            "densenet121",
            "deepbet_encoder",
            "medicalnet_resnet",
            "sfcn_encoder",
        ]
    )
    assert build_model({"name": "mixed", "autoencoder": {"name": "srcae"}, "num_classes": 2})


def test_rebuilt_model_is_fresh() -> None:
    model = ConvAutoEncoder()
    with torch.no_grad():
        model.encoder.blocks[0].conv.weight.fill_(1.0)
    rebuilt = build_model(model.config)
    assert not torch.equal(
        rebuilt.state_dict()["encoder.blocks.0.conv.weight"],
        model.state_dict()["encoder.blocks.0.conv.weight"],
    )


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"name": "unet"}, r"model config 'name': expected one of 'cae', .*got 'unet'"),
        ({"channels": [8, 16]}, r"model config 'name': expected one of .*got None"),
        (
            {"name": "cae", "chanels": [8, 16]},
            r"for 'cae': unknown option\(s\) 'chanels'; expected some of 'channels'",
        ),
        (
            {"name": "cae", "activation": "gelu"},
            r"activation: expected one of 'relu', 'elu', got 'gelu'",
        ),
        ({"name": "classifier", "encoder": {"name": "cae"}}, r"num_classes"),
    ],
)
def test_bad_configs_raise(config: dict[str, object], match: str) -> None:
    with pytest.raises((ConfigError, TypeError), match=match):
        build_model(config)


def test_not_a_mapping() -> None:
    with pytest.raises(ConfigError, match=r"expected a mapping with a 'name', got 'cae'"):
        build_model("cae")  # type: ignore[arg-type]
