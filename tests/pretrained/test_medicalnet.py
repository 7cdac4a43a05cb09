"""Importing MedicalNet checkpoints laid out as the originals: round trip, bad files, CLI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from transmri.errors import CheckpointError, ConfigError, DataFormatError
from transmri.models import MedicalNetEncoder
from transmri.pretrained import import_encoder, import_medicalnet, infer_medicalnet_architecture
from transmri.pretrained.zoo import check_encoder_ref
from transmri.training.encoder_io import load_encoder


def _random_state(encoder: torch.nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for key, value in encoder.state_dict().items():
        if key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            out[key] = torch.rand(value.shape, generator=gen) + 0.5
        else:
            out[key] = torch.randn(value.shape, generator=gen) * 0.05
    return out


@pytest.fixture(scope="module")
def r10(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A ResNet-10 file as MedicalNet saved them: DataParallel names under 'state_dict'."""
    state = _random_state(MedicalNetEncoder(depth=10))
    original = {f"module.{k}": v for k, v in state.items()}
    original["module.conv_seg.0.weight"] = torch.zeros(3, 512, 1, 1, 1)
    path = tmp_path_factory.mktemp("medicalnet") / "resnet_10_23dataset.pth"
    # the 2019 files predate the zip format
    torch.save({"state_dict": original, "epoch": 199}, path, _use_new_zipfile_serialization=False)
    return path, state


def test_import_equals_loading_the_state_dict_directly(
    r10: tuple[Path, dict[str, torch.Tensor]], tmp_path: Path
) -> None:
    path, state = r10
    card_file = import_medicalnet(path, 10, tmp_path / "enc")
    encoder, card = load_encoder(card_file)
    direct = MedicalNetEncoder(depth=10)
    direct.load_state_dict(state, strict=True)
    x = torch.randn(2, 1, 32, 32, 32)
    with torch.no_grad():
        assert torch.equal(encoder.eval()(x), direct.eval()(x))
    assert card["architecture"] == {"name": "medicalnet_resnet", "depth": 10, "shortcut": "B"}
    prov = card["provenance"]
    assert prov["zoo_name"] == "medicalnet-resnet10" and prov["licence"].startswith("MIT")
    assert prov["dropped_keys"] == ["conv_seg.0.weight"] and prov["filled_keys"] == []
    assert "23 public medical segmentation datasets" in prov["trained_on"]
    assert "Med3D" in prov["citation"] and "nonzero voxels" in prov["expected_input"]["intensity"]
    assert prov["layer_groups"] == ["stem", "layer1", "layer2", "layer3", "layer4"]
    assert card["training_subjects"] == [] and card["load_report"]["missing"] == []


def test_wrong_depth_names_keys_and_suggests_the_right_one(
    r10: tuple[Path, dict[str, torch.Tensor]], tmp_path: Path
) -> None:
    path, _ = r10
    out = tmp_path / "enc"
    with pytest.raises(CheckpointError) as info:
        import_medicalnet(path, 18, out)
    text = str(info.value)
    assert text.startswith(f"{path}: the weights do not fit MedicalNet ResNet-18 (shortcut A)")
    assert "missing keys: layer1.1.bn1.bias" in text
    assert "unexpected keys: layer2.0.downsample.0.weight" in text
    assert text.endswith("ResNet-10 with shortcut B: import it as medicalnet-resnet10")
    assert not out.exists()


def test_architecture_is_inferred_from_the_keys() -> None:
    for depth in (10, 18, 34, 50):
        with torch.device("meta"):
            state = MedicalNetEncoder(depth=depth).state_dict()
        assert infer_medicalnet_architecture(state) == (depth, "A" if depth in (18, 34) else "B")
    assert infer_medicalnet_architecture({"fc.weight": torch.zeros(1)}) is None


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.makedirs, (str(self.marker),))


def test_a_pickle_that_would_run_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "was_run"
    evil = tmp_path / "resnet_10.pth"
    torch.save(
        {"state_dict": {"module.conv1.weight": torch.zeros(1)}, "x": _RunsCode(marker)}, evil
    )
    with pytest.raises(CheckpointError, match=r"resnet_10\.pth: refused: .* asks to call") as info:
        import_medicalnet(evil, 10, tmp_path / "enc")
    assert "weights_only=False" not in str(info.value) and "makedirs" in str(info.value)
    assert not marker.exists() and not (tmp_path / "enc").exists()


def test_truncated_and_foreign_files_name_the_file(
    r10: tuple[Path, dict[str, torch.Tensor]], tmp_path: Path
) -> None:
    cut = tmp_path / "cut.pth"
    cut.write_bytes(r10[0].read_bytes()[:5000])
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    listed = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], listed)
    for path, message in (
        (cut, "not a readable PyTorch MedicalNet checkpoint"),
        (text, "not a readable PyTorch MedicalNet checkpoint"),
        (listed, r"expected a state dict .* found list"),
    ):
        with pytest.raises(DataFormatError, match=rf"{path.name}: {message}"):
            import_medicalnet(path, 10, tmp_path / "enc")
    with pytest.raises(FileNotFoundError, match="MedicalNet checkpoint not found"):
        import_medicalnet(tmp_path / "missing.pth", 10, tmp_path / "enc")
    assert not (tmp_path / "enc").exists()


def test_zoo_names_need_the_users_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"checkpoint file you provide \(nothing is downloaded\)"):
        import_encoder("medicalnet-resnet18", tmp_path / "enc")
    with pytest.raises(ConfigError, match="transmri encoder import sfcn-age PATH --out DIR"):
        check_encoder_ref("sfcn-age", where="experiment.yaml: pretrain.encoder")


def test_cli_imports_and_describes(
    r10: tuple[Path, dict[str, torch.Tensor]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # In process: a subprocess spends ~15 s importing torch and transmri on 2 shared
    # cores; tests/test_cli_encoder.py runs `transmri encoder` in one already.
    from transmri.cli import main

    monkeypatch.setenv("TRANSMRI_MALLOC", "default")  # leave this process's allocator alone
    out = tmp_path / "enc"
    assert main(["encoder", "import", "medicalnet-resnet10", str(r10[0]), "--out", str(out)]) == 0
    assert main(["encoder", "info", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out / 'encoder.json'}" in printed
    assert '"zoo_name": "medicalnet-resnet10"' in printed and '"parameters": 14355520' in printed
    assert main(["encoder", "import", "sfcn-age", "a.p", "b.p", "--out", str(out)]) == 2
    assert "expected sfcn-age PATH (one checkpoint file)" in capsys.readouterr().err
