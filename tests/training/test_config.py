"""Frozen settings: validation messages name the field, expected and found."""

from __future__ import annotations

import dataclasses

import pytest

from transmri.errors import ConfigError
from transmri.training.config import FitConfig, LearnerConfig


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epochs": 0}, r"epochs: expected an integer >= 1, got 0"),
        ({"epochs": 2.5}, r"epochs: expected an integer >= 1, got 2.5"),
        ({"epochs": 1, "lr": 0}, r"lr: expected a finite number > 0, got 0"),
        ({"epochs": 1, "lr": float("nan")}, r"lr: expected a finite number > 0"),
        ({"epochs": 1, "lr": 50.0}, r"lr: expected a learning rate <= 10.0, got 50.0"),
        ({"epochs": 1, "schedule": "step"}, r"schedule: expected one of 'onecycle', 'cosine'"),
        ({"epochs": 1, "lr_mult": 2.0}, r"lr_mult: expected a ratio in \(0, 1\]"),
        ({"epochs": 1, "early_stop": 0}, r"early_stop: expected an integer >= 1"),
        ({"epochs": 1, "mode": "up"}, r"mode: expected one of 'min', 'max'"),
    ],
)
def test_fit_config_rejects(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        FitConfig(**kwargs)  # type: ignore[arg-type]


def test_fit_config_mode_follows_monitor_and_round_trips() -> None:
    assert FitConfig(epochs=1).mode == "min"
    cfg = FitConfig(epochs=2, monitor="val_auc")
    assert cfg.mode == "max"
    assert FitConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.epochs = 3  # type: ignore[misc]
    assert cfg.differences(FitConfig(epochs=5, monitor="val_auc"), ignore=("epochs",)) == []


def test_from_dict_rejects_unknown_keys() -> None:
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['lrr'\]"):
        FitConfig.from_dict({"epochs": 1, "lrr": 0.1})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model_type": "gan"}, "model_type: expected one of"),
        ({"batch_size": 0}, "batch_size: expected an integer >= 1, got 0"),
        ({"devices": 0}, "devices: expected an integer >= 1 or 'auto', got 0"),
        ({"precision": "8-bit"}, "precision: expected one of"),
    ],
)
def test_learner_config_rejects(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        LearnerConfig(**kwargs)  # type: ignore[arg-type]
