"""The transfer benchmark with encoders of the zoo (deepbet's architecture)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from transmri.data import ScanTable
from transmri.data.preprocess import PreprocessConfig
from transmri.errors import ConfigError
from transmri.models.deepbet import DeepbetEncoder, deepbet_encoder
from transmri.training import save_encoder
from transmri.transfer import TransferConfig, transfer_curve
from transmri.transfer.methods.linear import _encoder_module


def zoo_like(folder: Path) -> Path:
    """A deepbet-architecture encoder saved with a provenance card (no deepbet needed)."""
    encoder = deepbet_encoder()
    return save_encoder(encoder, folder, architecture=encoder.config, input_shape=(40, 40, 40),
                        preprocessing={}, source="test", training_subjects=(),
                        provenance={"zoo_name": "deepbet-model"})  # fmt: skip


def test_regional_random_rebuilds_the_zoo_architecture_with_fresh_weights(
    tmp_path: Path,
) -> None:
    card = zoo_like(tmp_path / "enc")
    context = SimpleNamespace(encoder=card, seed=3)
    given = _encoder_module(context, pretrained=True)  # type: ignore[arg-type]
    random = _encoder_module(context, pretrained=False)  # type: ignore[arg-type]
    assert isinstance(random, DeepbetEncoder) and isinstance(given, DeepbetEncoder)
    a, b = given.state_dict(), random.state_dict()
    assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}
    weights = [k for k in a if k.endswith("weight")]
    assert weights and all(not torch.equal(a[k], b[k]) for k in weights)


def test_unknown_encoder_name_is_refused_before_any_work(tmp_path: Path) -> None:
    table = ScanTable.from_frame(pd.DataFrame({"subject": ["a", "b"], "path": ["a.nii", "b.nii"],
                                    "label": ["x", "y"]}), check_files=False)  # fmt: skip
    with pytest.raises(ConfigError, match=r"encoder: 'debet' is neither a zoo encoder "
                       r"\(known: deepbet, deepbet-bbox, medicalnet-resnet10, "):  # fmt: skip
        transfer_curve(table, preprocessing=PreprocessConfig(target_shape=(40, 40, 40)),
                       encoder="debet", out_dir=tmp_path / "out",
                       config=TransferConfig(methods=("linear_probe",)))  # fmt: skip
    assert not (tmp_path / "out").exists()


def test_transfer_curve_warns_when_the_voxel_size_differs_from_the_card(
    make_cohort, tmp_path: Path
) -> None:
    from transmri.models import SFCNEncoder
    from transmri.pretrained import import_sfcn

    original = {f"module.{k}": v for k, v in SFCNEncoder().state_dict().items()}
    original["module.classifier.conv_6.weight"] = torch.zeros(40, 64, 1, 1, 1)
    original["module.classifier.conv_6.bias"] = torch.zeros(40)
    torch.save(original, tmp_path / "age.p")
    card = import_sfcn(tmp_path / "age.p", tmp_path / "enc")
    table = ScanTable.from_csv(make_cohort(16, folder="target"), mask_col="mask")  # 1 mm voxels
    with pytest.warns(UserWarning) as seen:
        transfer_curve(table, preprocessing=PreprocessConfig(target_shape=(32, 32, 32)),
                       encoder=card, out_dir=tmp_path / "out",
                       config=TransferConfig(methods=("linear_probe",), n_train=(8,), repeats=1,
                                             test_size=4))  # fmt: skip
    messages = [str(w.message) for w in seen]
    assert any("sfcn-age expects 1x1x1 mm voxels; the target volumes have 0.625x0.75x0.625 mm"
               in m for m in messages), messages  # fmt: skip
    assert (tmp_path / "out" / "comparison.csv").is_file()
