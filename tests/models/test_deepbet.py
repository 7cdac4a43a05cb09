"""The deepbet re-implementation against deepbet's own TorchScript archive."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from transmri.models import build_model, regional_features
from transmri.models.deepbet import DeepbetEncoder, DeepbetNet


def _archive(which: str) -> torch.jit.ScriptModule:
    try:
        from transmri.pretrained import deepbet_source_file
        from transmri.pretrained.deepbet import _check_source

        path = deepbet_source_file("model" if which == "model" else "bbox")
    except ImportError as exc:
        pytest.skip(f"deepbet not installed ({exc})")
    _check_source(path, which)
    return torch.jit.load(str(path), map_location="cpu").eval()


def _ixi_volume(root: Path, size: int) -> torch.Tensor:
    import nibabel as nib

    scan = sorted((root / "t1").glob("*.nii.gz"))[0]
    x = torch.from_numpy(np.asarray(nib.load(scan).get_fdata(), dtype=np.float32))
    low, high = x.quantile(0.005), x.quantile(0.995)
    x = ((x - low) / (high - low)).clamp(0, 1)
    x = 0.226 * (x - x.mean()) / x.std() + 0.449
    return torch.nn.functional.interpolate(x[None, None], (size,) * 3, mode="trilinear")


def _loaded(archive: torch.jit.ScriptModule) -> DeepbetNet:
    from transmri.pretrained.deepbet import copy_strict

    net = DeepbetNet()
    state = {
        (
            f"encoder.{k}" if k.split(".")[0] in ("init", "down0", "down1", "down2", "down3") else k
        ): v
        for k, v in archive.state_dict().items()
    }
    copy_strict(net, state, where="archive")
    return net.eval()


def test_code_shape_matches_forward_and_layer_groups() -> None:
    enc = DeepbetEncoder()
    x = torch.zeros(1, 1, 64, 40, 33)
    assert tuple(enc(x).shape[1:]) == enc.code_shape((64, 40, 33)) == (128, 2, 2, 2)
    assert len(enc.layer_groups()) == 5
    assert enc.num_parameters() == 2_076_016
    assert build_model(enc.config).config == {"name": "deepbet_encoder"}
    assert regional_features(enc, torch.zeros(2, 1, 64, 64, 64), grid=1).shape == (2, 256)


def test_encoder_refuses_inputs_too_small_for_its_last_norm() -> None:
    with pytest.raises(ValueError, match=r"at least 33 voxels .* got \(32, 64, 64\)"):
        DeepbetEncoder()(torch.zeros(2, 1, 32, 64, 64))


def test_network_refuses_sizes_not_multiple_of_32() -> None:
    with pytest.raises(ValueError, match=r"multiples of 32, got \(48, 64, 64\)"):
        DeepbetNet()(torch.zeros(1, 1, 48, 64, 64))


@pytest.mark.ixi
@pytest.mark.parametrize("which", ["model", "bbox"])
def test_features_and_output_equal_torchscript(ixi_root: Path, which: str) -> None:
    archive = _archive(which)
    net = _loaded(archive)
    x = _ixi_volume(ixi_root, 64)
    relu = getattr(archive.conv, "2")
    with torch.no_grad():
        ts_feats = [archive.init(relu, x)]
        for name in ("down0", "down1", "down2", "down3"):
            ts_feats.append(getattr(archive, name)(relu, ts_feats[-1]))
        ours = net.encoder.stages(x)
        for a, b in zip(ts_feats, ours, strict=True):
            assert a.shape == b.shape
            assert float((a - b).abs().max()) < 1e-4
        assert float((archive(x) - net(x)).abs().max()) < 1e-4
