"""MedicalNet's 3D ResNets: the original's names and shapes, its strides and dilations, groups."""

from __future__ import annotations

import copy

import pytest
import torch

from transmri.models import EncoderClassifier, MedicalNetEncoder, build_model, regional_features
from transmri.models.medicalnet import _ZeroPadShortcut


@pytest.mark.parametrize("depth", [10, 18, 34, 50])
def test_state_dict_names_and_shapes_are_monai_medicalnet_ones(depth: int) -> None:
    """MONAI's resnet with get_medicalnet_pretrained_resnet_args has MedicalNet's tensors."""
    resnet = pytest.importorskip("monai.networks.nets.resnet")
    bias, shortcut = resnet.get_medicalnet_pretrained_resnet_args(depth)
    with torch.device("meta"):
        monai = getattr(resnet, f"resnet{depth}")(
            spatial_dims=3,
            n_input_channels=1,
            shortcut_type=shortcut,
            bias_downsample=bias,
            conv1_t_stride=2,
            feed_forward=False,
        )
        ours = MedicalNetEncoder(depth=depth)
    expected = {k: tuple(v.shape) for k, v in monai.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == expected
    assert ours.shortcut == shortcut


def test_tensor_counts_of_the_published_checkpoints() -> None:
    # resnet_10_23dataset.pth holds 72 tensors, resnet_18_23dataset.pth 102 (no downsample).
    with torch.device("meta"):
        r10, r18 = MedicalNetEncoder(depth=10), MedicalNetEncoder(depth=18)
    assert len(r10.state_dict()) == 72 and "layer2.0.downsample.0.weight" in r10.state_dict()
    assert len(r18.state_dict()) == 102
    assert not any("downsample" in k for k in r18.state_dict())
    assert "conv1.weight" in r10.state_dict() and "bn1.running_var" in r10.state_dict()


def test_layer3_and_layer4_dilate_instead_of_striding() -> None:
    enc = MedicalNetEncoder(depth=10).eval()
    assert enc.layer3[0].conv1.dilation == (2, 2, 2) and enc.layer3[0].conv1.stride == (1, 1, 1)
    assert enc.layer4[0].conv2.dilation == (4, 4, 4) and enc.layer4[0].conv2.padding == (4, 4, 4)
    with torch.no_grad():
        code = enc(torch.randn(1, 1, 32, 24, 17))
    assert tuple(code.shape[1:]) == enc.code_shape((32, 24, 17)) == (512, 4, 3, 3)


def test_shortcut_a_subsamples_and_pads_with_zeros() -> None:
    x = torch.randn(1, 4, 6, 6, 6)
    out = _ZeroPadShortcut(8, 2)(x)
    assert torch.equal(out[:, :4], x[:, :, ::2, ::2, ::2])
    assert torch.equal(out[:, 4:], torch.zeros(1, 4, 3, 3, 3))


def test_layer_groups_cover_the_stem_and_feed_regional_features() -> None:
    enc = MedicalNetEncoder(depth=10).eval()
    groups = enc.layer_groups()
    assert groups[0].conv1 is enc.conv1 and groups[0].bn1 is enc.bn1
    grouped = {id(p) for g in groups for p in g.parameters()}
    assert grouped == {id(p) for p in enc.parameters()}
    with torch.no_grad():
        features = regional_features(enc, torch.randn(2, 1, 32, 32, 32), grid=2)
    assert features.shape == (2, (64 + 64 + 128 + 256 + 512) * 8)
    clone = copy.deepcopy(enc)
    assert clone.layer_groups()[0].conv1 is clone.conv1 is not enc.conv1
    assert build_model(enc.config).config == {
        "name": "medicalnet_resnet",
        "depth": 10,
        "shortcut": "B",
    }
    head = EncoderClassifier(enc, 2, head="regional", input_shape=(16, 16, 16)).eval()
    with torch.no_grad():
        assert head(torch.randn(2, 1, 16, 16, 16))["logits"].shape == (2, 2)
