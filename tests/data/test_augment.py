"""Tests for transmri.data.augment: presets, reproducibility, shapes and dtypes."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from transmri.data.augment import AUGMENT_PRESETS, AugmentConfig, build_augmentation
from transmri.errors import ConfigError


def _volume(shape: tuple[int, int, int] = (16, 20, 18)) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    vol = torch.rand((1, *shape), generator=g)
    vol[:, : shape[0] // 2] *= 0.2  # left-right asymmetric, so a flip shows
    return vol


def test_presets_exist_and_roundtrip() -> None:
    assert set(AUGMENT_PRESETS) == {"none", "light", "standard"}
    assert AugmentConfig.preset("none") == AugmentConfig()
    assert AugmentConfig.preset("none").is_identity
    assert not AugmentConfig.preset("light").is_identity
    std = AugmentConfig.preset("standard")
    assert AugmentConfig.from_dict(json.loads(json.dumps(std.to_dict()))) == std


def test_unknown_preset() -> None:
    with pytest.raises(
        ConfigError,
        match="augmentation preset: expected one of 'none', 'light', 'standard', got 'heavy'",
    ):
        AugmentConfig.preset("heavy")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"flip_prob": 1.5}, r"flip_prob: expected a number in \[0, 1\], got 1.5"),
        ({"noise_prob": -0.1}, r"noise_prob: expected a number in \[0, 1\]"),
        ({"rotate_range": 200}, r"rotate_range: expected degrees in \[0, 180\], got 200"),
        ({"rotate_range": -1}, r"rotate_range: expected a finite number >= 0, got -1"),
        ({"scale_range": 1.0}, r"scale_range: expected a fraction in \[0, 1\), got 1.0"),
        ({"noise_std": float("nan")}, r"noise_std: expected a finite number >= 0"),
        ({"gamma_range": (1.5, 0.7)}, r"gamma_range: expected \(low, high\) with 0 < low <= high"),
        ({"gamma_range": (0, 1)}, r"gamma_range: expected"),
        ({"gamma_range": 2.0}, r"gamma_range: expected"),
    ],
)
def test_config_rejects_bad_values(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        AugmentConfig(**kwargs)  # type: ignore[arg-type]


def test_from_dict_unknown_key() -> None:
    with pytest.raises(ConfigError, match=r"augmentation: unknown key\(s\) \['elastic'\]"):
        AugmentConfig.from_dict({"elastic": 0.5})


def test_config_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        AugmentConfig().flip_prob = 1.0  # type: ignore[misc]


def test_none_is_identity_and_copies() -> None:
    vol = _volume()
    augment = build_augmentation(AugmentConfig.preset("none"))
    out = augment(vol)
    assert out.dtype == torch.float32 and out.shape == vol.shape
    assert torch.equal(out, vol)
    out[0, 0, 0, 0] = 99.0
    assert vol[0, 0, 0, 0] != 99.0  # the input is never changed
    assert repr(augment) == "Augmentation(identity)"


@pytest.mark.parametrize("preset", ["light", "standard"])
def test_shape_and_dtype_preserved_from_numpy_float16(preset: str) -> None:
    vol = _volume().numpy().astype(np.float16)
    out = build_augmentation(AugmentConfig.preset(preset), seed=3)(vol)
    assert isinstance(out, torch.Tensor) and type(out) is torch.Tensor  # not a MetaTensor
    assert out.dtype == torch.float32 and tuple(out.shape) == vol.shape
    assert torch.isfinite(out).all()


def test_flip_with_probability_one_mirrors_left_right() -> None:
    vol = _volume()
    out = build_augmentation(AugmentConfig(flip_prob=1.0))(vol)
    assert torch.equal(out, torch.flip(vol, dims=[1]))


@pytest.mark.parametrize(
    "config",
    [
        AugmentConfig(affine_prob=1.0, rotate_range=15.0, scale_range=0.1),
        AugmentConfig(bias_field_prob=1.0),
        AugmentConfig(noise_prob=1.0, noise_std=0.1),
        AugmentConfig(gamma_prob=1.0, gamma_range=(0.5, 0.6)),
    ],
)
def test_each_transform_changes_volume_with_probability_one(config: AugmentConfig) -> None:
    vol = _volume()
    out = build_augmentation(config, seed=0)(vol)
    assert out.shape == vol.shape and out.dtype == torch.float32
    assert not torch.allclose(out, vol)


def test_reproducible_with_seed_and_varies_between_calls() -> None:
    vol = _volume()
    config = AugmentConfig.preset("standard")
    a = build_augmentation(config, seed=7)
    b = build_augmentation(config, seed=7)
    first = [a(vol) for _ in range(4)]
    second = [b(vol) for _ in range(4)]
    for x, y in zip(first, second):
        assert torch.equal(x, y)
    assert not all(torch.equal(first[0], x) for x in first[1:])  # a stream, not one draw
    c = build_augmentation(config, seed=8)
    assert not all(torch.equal(x, c(vol)) for x in first[:1])


def test_set_random_state_restarts_stream() -> None:
    vol = _volume()
    augment = build_augmentation(AugmentConfig.preset("standard"), seed=1)
    first = augment(vol)
    augment.set_random_state(seed=1)
    assert torch.equal(augment(vol), first)


def test_rejects_non_4d_input() -> None:
    augment = build_augmentation(AugmentConfig.preset("light"))
    with pytest.raises(
        ValueError,
        match=r"expected a channel-first volume \(C, D, H, W\), got shape \(16, 16, 16\)",
    ):
        augment(torch.zeros(16, 16, 16))


def test_rejects_bad_config_type() -> None:
    with pytest.raises(TypeError, match="config: expected an AugmentConfig, got str"):
        build_augmentation("standard")  # type: ignore[arg-type]
