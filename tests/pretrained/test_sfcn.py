"""Importing SFCN's UK Biobank state dicts laid out as the originals."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from transmri.errors import CheckpointError
from transmri.models import SFCNEncoder
from transmri.models.sfcn import SFCN_SEX_CHANNELS
from transmri.pretrained import import_encoder, import_sfcn
from transmri.training.encoder_io import load_encoder


def _original(channels: tuple[int, ...], outputs: int, seed: int) -> OrderedDict[str, torch.Tensor]:
    """A DataParallel SFCN state dict: ``module.feature_extractor.*`` + ``.classifier.conv_6.*``."""
    gen = torch.Generator().manual_seed(seed)
    state: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, value in SFCNEncoder(channels=channels).state_dict().items():
        if key.endswith("num_batches_tracked"):
            state[f"module.{key}"] = torch.tensor(100)
        elif key.endswith("running_var"):
            state[f"module.{key}"] = torch.rand(value.shape, generator=gen) + 0.5
        else:
            state[f"module.{key}"] = torch.randn(value.shape, generator=gen) * 0.1
    state["module.classifier.conv_6.weight"] = torch.randn(outputs, 64, 1, 1, 1, generator=gen)
    state["module.classifier.conv_6.bias"] = torch.randn(outputs, generator=gen)
    return state


def test_age_network_round_trip_and_card(tmp_path: Path) -> None:
    original = _original((32, 64, 128, 256, 256, 64), 40, seed=0)
    path = tmp_path / "run_20190719_00_epoch_best_mae.p"
    torch.save(original, path)  # the published files are bare state dicts
    card_file = import_sfcn(path, tmp_path / "enc", "age")
    encoder, card = load_encoder(card_file)
    direct = SFCNEncoder()
    direct.load_state_dict(
        {k[len("module.") :]: v for k, v in original.items() if "feature_extractor" in k}
    )
    x = torch.randn(2, 1, 32, 40, 32)
    with torch.no_grad():
        assert torch.equal(encoder.eval()(x), direct.eval()(x))
    head = load_file(str(tmp_path / "enc" / "head.safetensors"))
    assert torch.equal(head["conv_6.weight"], original["module.classifier.conv_6.weight"])
    prov = card["provenance"]
    assert prov["zoo_name"] == "sfcn-age" and "14,503-subject release" in prov["trained_on"]
    assert "12,949 training subjects" in prov["trained_on"] and prov["age_bins"] == [
        42.0,
        82.0,
        1.0,
    ]
    assert prov["expected_input"]["voxel_size_mm"] == [1.0, 1.0, 1.0]
    assert "divided by its mean" in prov["expected_input"]["intensity"]
    assert card["input_shape"] == [160, 192, 160] and prov["licence"].startswith("MIT")
    assert "Medical Image Analysis" in prov["citation"]


def test_sex_file_as_age_names_shapes_and_suggests_sex(tmp_path: Path) -> None:
    original = _original(SFCN_SEX_CHANNELS, 2, seed=1)
    old = {k: v for k, v in original.items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "run_20191008_00_epoch_last.p"
    torch.save({"state_dict": old, "epoch": 3}, path)
    out = tmp_path / "enc"
    with pytest.raises(CheckpointError) as info:
        import_sfcn(path, out, "age")
    text = str(info.value)
    assert "do not fit SFCN (age network)" in text
    assert (
        "feature_extractor.conv_0.0.weight: file (28, 1, 3, 3, 3), model (32, 1, 3, 3, 3)" in text
    )
    assert text.endswith("are those of the sex network: import it as sfcn-sex")
    assert not out.exists()
    # without the batch-norm counters (files saved before PyTorch 0.4.1) it imports as sex
    card = import_encoder("sfcn-sex", out, source=path)
    _, loaded = load_encoder(card)
    assert loaded["architecture"]["channels"] == list(SFCN_SEX_CHANNELS)
    assert loaded["model"] == {"name": "sfcn_network", "task": "sex", "outputs": 2}
