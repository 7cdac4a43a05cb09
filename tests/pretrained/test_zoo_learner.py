"""MedicalNet and SFCN encoders in the Learner: freezing, groups, rates, recipes, saliency."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from transmri.data import DataBunch, PreprocessConfig, ScanTable
from transmri.evaluation.saliency import gradient_map
from transmri.models import MedicalNetEncoder, SFCNEncoder
from transmri.pretrained import import_medicalnet, import_sfcn
from transmri.training import create_classifier_from_encoder
from transmri.training.recipes import apply_recipe

FAST = {"batch_size": 4, "progress": False}


def _data(
    make_cohort: Callable[..., Path], tmp_path: Path, shape: tuple[int, int, int]
) -> DataBunch:
    csv = make_cohort(16, folder="target")  # 20x24x20 scans with 1 mm voxels
    table = ScanTable.from_csv(csv, mask_col="mask", label_col="label")
    data = DataBunch(
        table, PreprocessConfig(target_shape=shape), cache_dir=tmp_path / "cache",
        val_size=0.25, test_size=0.25, seed=0,
    )  # fmt: skip
    data.prepare(progress=False)
    return data


def test_medicalnet_freezing_groups_and_rates(
    make_cohort: Callable[..., Path], tmp_path: Path
) -> None:
    checkpoint = tmp_path / "resnet_10.pth"
    state = MedicalNetEncoder(depth=10).state_dict()
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, checkpoint)
    card = import_medicalnet(checkpoint, 10, tmp_path / "enc")
    data = _data(make_cohort, tmp_path, (16, 16, 16))
    with pytest.warns(UserWarning, match=r"medicalnet-resnet10 expects input .*z-score"):
        learner = create_classifier_from_encoder(data, card, tmp_path / "ft", seed=0, **FAST)
    encoder = learner.model.encoder
    learner.freeze_encoder()
    assert not any(p.requires_grad for p in encoder.parameters())
    assert all(p.requires_grad for p in learner.model.head.parameters())
    learner.unfreeze()
    groups = learner.param_groups(1e-2, lr_mult=0.5)
    assert [g["lr"] for g in groups] == pytest.approx([1e-2 * 0.5**i for i in range(5, -1, -1)])
    assert {id(p) for p in groups[0]["params"]} == {
        id(p) for p in (*encoder.conv1.parameters(), *encoder.bn1.parameters())
    }
    learner.freeze_to(1)  # the stem: conv1 and bn1, its statistics included
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    learner.fit(1, 1e-3)
    after = encoder.state_dict()
    assert torch.equal(after["conv1.weight"], before["conv1.weight"])
    assert torch.equal(after["bn1.running_mean"], before["bn1.running_mean"])
    assert not torch.equal(after["layer1.0.conv1.weight"], before["layer1.0.conv1.weight"])
    codes, _, subjects = learner.encode_data("test")  # embeddings
    assert codes.shape == (len(subjects), 512)
    saliency = gradient_map(learner.model, torch.randn(16, 16, 16))
    assert saliency.shape == (16, 16, 16) and float(saliency.max()) > 0


def test_sfcn_with_lpft_and_default_recipes_and_voxel_warning(
    make_cohort: Callable[..., Path], tmp_path: Path
) -> None:
    from transmri.transfer.methods.cnn import recipe_for

    state = SFCNEncoder().state_dict()
    original = {f"module.{k}": v for k, v in state.items()}
    original["module.classifier.conv_6.weight"] = torch.zeros(40, 64, 1, 1, 1)
    original["module.classifier.conv_6.bias"] = torch.zeros(40)
    torch.save(original, tmp_path / "age.p")
    card = import_sfcn(tmp_path / "age.p", tmp_path / "enc")
    data = _data(make_cohort, tmp_path, (32, 32, 32))
    config = SimpleNamespace(
        epochs_unfrozen=1, lr=1e-3, epochs_frozen=1, weight_decay=0.0, early_stop=None,
        monitor="val_auc", lr_mult=0.5,
    )  # fmt: skip
    for name in ("lpft", "default"):
        with pytest.warns(UserWarning) as seen:
            learner = create_classifier_from_encoder(data, card, tmp_path / name, seed=0, **FAST)
        messages = [str(w.message) for w in seen]
        assert any(
            "sfcn-age expects 1x1x1 mm voxels; the target volumes have 0.625x0.75x0.625 mm" in m
            for m in messages
        ), messages
        apply_recipe(learner, recipe_for(name, config))
        log = learner.recipe_log_
        assert log["probe_c"] is not None and log["kept"] in ("probe", "finetuned"), log
        probs = learner.predict("test").probs
        assert probs.shape == (4, 2) and abs(float(probs.sum()) - 4.0) < 1e-4
