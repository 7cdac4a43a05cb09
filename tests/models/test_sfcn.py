"""SFCN's feature extractor: the original's block order, names and sizes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from transmri.models import SFCNEncoder, build_model
from transmri.models.sfcn import SFCN_SEX_CHANNELS


def test_blocks_follow_the_original_order_and_names() -> None:
    enc = SFCNEncoder()
    names = list(enc.state_dict())
    assert names[:7] == [
        "feature_extractor.conv_0.0.weight",
        "feature_extractor.conv_0.0.bias",
        "feature_extractor.conv_0.1.weight",
        "feature_extractor.conv_0.1.bias",
        "feature_extractor.conv_0.1.running_mean",
        "feature_extractor.conv_0.1.running_var",
        "feature_extractor.conv_0.1.num_batches_tracked",
    ]
    assert len(names) == 42 and names[-1] == "feature_extractor.conv_5.1.num_batches_tracked"
    first, last = enc.feature_extractor.conv_0, enc.feature_extractor.conv_5
    assert [type(m) for m in first] == [nn.Conv3d, nn.BatchNorm3d, nn.MaxPool3d, nn.ReLU]
    assert [type(m) for m in last] == [nn.Conv3d, nn.BatchNorm3d, nn.ReLU]
    assert last[0].kernel_size == (1, 1, 1) and first[0].padding == (1, 1, 1)
    assert enc.num_parameters() == 2_950_336


def test_code_shape_of_the_mni_crop_and_a_tiny_volume() -> None:
    enc = SFCNEncoder(channels=SFCN_SEX_CHANNELS).eval()
    assert enc.code_shape((160, 192, 160)) == (64, 5, 6, 5)
    with torch.no_grad():
        assert enc(torch.randn(1, 1, 32, 40, 32)).shape == (1, 64, 1, 1, 1)
    with pytest.raises(ValueError, match="at least 32 needed for 5 pooling steps"):
        enc(torch.randn(1, 1, 16, 32, 32))
    assert build_model(enc.config).config == {
        "name": "sfcn_encoder",
        "channels": [28, 58, 128, 256, 256, 64],
    }
    assert len(enc.layer_groups()) == 6
