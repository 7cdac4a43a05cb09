"""Regional, multi-layer features of a frozen encoder."""

from __future__ import annotations

import pytest
import torch

from transmri.errors import ConfigError
from transmri.models import (
    ConvEncoder,
    StridedEncoder,
    VariationalEncoder,
    feature_maps,
    regional_feature_size,
    regional_features,
)


def test_feature_maps_are_the_layer_groups_outputs_in_order() -> None:
    enc = ConvEncoder(channels=(4, 8, 6))
    maps = feature_maps(enc, torch.randn(2, 1, 16, 16, 16))
    assert [m.shape[1] for m in maps] == [4, 8, 6]
    assert [tuple(m.shape[2:]) for m in maps] == [(16, 16, 16), (8, 8, 8), (4, 4, 4)]
    x = torch.randn(2, 1, 16, 16, 16)
    torch.testing.assert_close(feature_maps(enc, x)[-1], enc(x))  # the last map is the code
    assert not any(m._forward_hooks for m in enc.layer_groups())  # hooks removed


def test_regional_features_pool_each_map_to_the_grid() -> None:
    enc = ConvEncoder(channels=(4, 8, 6)).eval()
    x = torch.randn(3, 1, 16, 16, 16)
    with torch.no_grad():
        feats = regional_features(enc, x, grid=2)
        maps = feature_maps(enc, x)
    assert feats.shape == (3, (4 + 8 + 6) * 8)
    # the first 8 numbers are channel 0 of layer 0 averaged over the 8 octants
    expected = maps[0][:, 0].reshape(3, 2, 8, 2, 8, 2, 8).mean(dim=(2, 4, 6)).reshape(3, 8)
    torch.testing.assert_close(feats[:, :8], expected)
    with torch.no_grad():
        last = regional_features(enc, x, grid=1, levels="last")
    torch.testing.assert_close(last, enc(x).mean(dim=(2, 3, 4)))
    with torch.no_grad():
        picked = regional_features(enc, x, grid=1, levels=[0, -1])
    assert picked.shape == (3, 4 + 6)
    assert regional_feature_size(enc, (16, 16, 16), grid=3) == 18 * 27


def test_other_encoders_work_and_skip_non_maps() -> None:
    x = torch.randn(2, 1, 16, 16, 16)
    strided = StridedEncoder()
    assert regional_features(strided, x, grid=1).shape[0] == 2
    vae = VariationalEncoder(channels=(4, 8), latent_channels=5)
    maps = feature_maps(vae, x)
    assert all(m.ndim == 5 for m in maps) and maps


def test_bad_arguments_are_named() -> None:
    enc = ConvEncoder(channels=(4, 8))
    x = torch.randn(1, 1, 8, 8, 8)
    with pytest.raises(ConfigError, match="grid"):
        regional_features(enc, x, grid=0)
    with pytest.raises(ConfigError, match="levels"):
        regional_features(enc, x, levels="middle")
    with pytest.raises(ConfigError, match="out of range"):
        regional_features(enc, x, levels=[5])
    with pytest.raises(ConfigError, match="layer_groups"):
        feature_maps(torch.nn.Conv3d(1, 2, 3), x)
