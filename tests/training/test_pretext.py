"""Pretext tasks: denoising and in-painting corruptions, and multi-task source-label losses."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from transmri.data import DataBunch, PreprocessConfig, ScanTable
from transmri.errors import ConfigError
from transmri.models import ConvAutoEncoder
from transmri.training import Learner
from transmri.training.contrastive import TwoViews
from transmri.training.objectives import ReconstructionLoss
from transmri.training.pretext import (
    Denoising,
    Inpainting,
    PretextLoader,
    SourceTasksLoss,
    pretext_from_dict,
    resolve_pretext,
    source_task_model,
)

SMALL = (4, 8, 8)


def _batch(n: int = 3, shape: tuple[int, int, int] = (16, 16, 16)) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {
        "image": torch.rand(n, 1, *shape),
        "label": torch.arange(n) % 2,
        "index": torch.arange(n),
    }


# ------------------------------------------------------------ corruptions
def test_denoising_adds_noise_of_the_given_std_and_keeps_the_clean_target() -> None:
    batch = _batch(4, (24, 24, 24))
    out = Denoising(std=0.2).corrupt(batch)
    assert torch.equal(out["clean"], batch["image"])
    noise = out["image"] - batch["image"]
    assert abs(float(noise.std()) - 0.2) < 0.01 and abs(float(noise.mean())) < 0.01
    clipped = Denoising(std=0.5, clip=(0.0, 1.0)).corrupt(batch)["image"]
    assert float(clipped.min()) >= 0.0 and float(clipped.max()) <= 1.0


def test_inpainting_hides_cubes_with_the_fill_and_keeps_the_rest() -> None:
    batch = _batch(4, (24, 24, 24))
    out = Inpainting(cube_size=4, mask_ratio=0.4, fill=0.0).corrupt(batch)
    mask = out["pretext_mask"]
    assert mask.shape == batch["image"].shape
    assert set(torch.unique(mask).tolist()) == {0.0, 1.0}
    assert 0.25 < float(mask.mean()) < 0.55
    assert torch.all(out["image"][mask == 1] == 0)
    assert torch.equal(out["image"][mask == 0], batch["image"][mask == 0])
    assert not torch.equal(mask[0], mask[1])  # each scan gets its own cubes


def test_pretext_loss_targets_the_clean_volume_and_weighs_hidden_voxels() -> None:
    batch = _batch()
    corrupted = Inpainting(cube_size=4, mask_ratio=0.5, masked_weight=2.0).corrupt(batch)
    loss = Inpainting(masked_weight=2.0).wrap(ReconstructionLoss())
    perfect = loss({"reconstruction": batch["image"]}, corrupted)
    assert float(perfect["loss"]) == 0.0 and float(perfect["masked_mse"]) == 0.0
    recon = batch["image"] + corrupted["pretext_mask"] * 0.5  # wrong on hidden voxels only
    parts = loss({"reconstruction": recon}, corrupted)
    assert float(parts["masked_mse"]) == pytest.approx(0.25)
    assert float(parts["loss"]) == pytest.approx(float(parts["mse"]) + 2.0 * 0.25, rel=1e-5)
    # A clean batch (validation) is scored by the base objective alone.
    clean = loss({"reconstruction": recon}, batch)
    assert set(clean) == {"loss", "mse"}


def test_pretext_loader_corrupts_batches_and_keeps_its_length() -> None:
    batches = [_batch(2), _batch(2)]
    loader = PretextLoader(batches, Denoising(std=0.1))
    assert len(loader) == 2
    seen = list(loader)
    assert all("clean" in b and not torch.equal(b["image"], b["clean"]) for b in seen)


def test_resolve_and_serialise_pretexts() -> None:
    for pretext in (Denoising(std=0.05, clip=(0.0, 1.0)), Inpainting(cube_size=6), TwoViews()):
        assert pretext_from_dict(pretext.to_dict()) == pretext
    assert resolve_pretext("denoise", model_type="autoencoder") == Denoising()
    assert resolve_pretext(None, model_type="autoencoder") is None
    assert resolve_pretext(None, model_type="contrastive") == TwoViews()
    with pytest.raises(ConfigError, match="expected one of"):
        resolve_pretext("blur", model_type="autoencoder")
    with pytest.raises(ConfigError, match="two views"):
        resolve_pretext("views", model_type="autoencoder")
    with pytest.raises(ConfigError, match="contrastive"):
        resolve_pretext("inpaint", model_type="contrastive")
    with pytest.raises(ConfigError, match="no reconstruction"):
        resolve_pretext("denoise", model_type="classifier")
    with pytest.raises(ConfigError, match="kind"):
        pretext_from_dict({"kind": "rotate"})
    with pytest.raises(ConfigError, match="mask_ratio"):
        Inpainting(mask_ratio=1.5)
    with pytest.raises(ConfigError, match="std"):
        Denoising(std=0)


# ---------------------------------------------------------- source labels
def test_source_tasks_loss_masks_missing_labels_out() -> None:
    loss = SourceTasksLoss(scales={"age": (50.0, 10.0)}, weights={"age": 2.0, "label": 0.5})
    pred_age = torch.zeros(3, requires_grad=True)
    logits = torch.zeros(3, 2, requires_grad=True)
    recon = torch.zeros(3, 1, 4, 4, 4, requires_grad=True)
    outputs = {"reconstruction": recon, "logits": logits, "pred_age": pred_age}
    batch = {
        "image": torch.zeros(3, 1, 4, 4, 4),
        "label": torch.tensor([1, -1, 0]),
        "age": torch.tensor([60.0, 70.0, float("nan")]),
    }
    parts = loss(outputs, batch)
    # standardised targets 1.0 and 2.0 -> MSE 2.5; CE of zero logits = log 2
    assert float(parts["age_mse"].detach()) == pytest.approx(2.5)
    assert float(parts["ce"].detach()) == pytest.approx(np.log(2))
    assert float(parts["loss"].detach()) == pytest.approx(
        0.0 + 0.5 * np.log(2) + 2.0 * 2.5, rel=1e-5
    )
    parts["loss"].backward()
    assert pred_age.grad is not None and pred_age.grad[2] == 0 and pred_age.grad[0] != 0
    assert (
        logits.grad is not None
        and torch.all(logits.grad[1] == 0)
        and logits.grad[0].abs().sum() > 0
    )
    # nobody labelled: the parts are 0, not NaN
    nobody = loss(
        outputs, {**batch, "label": torch.full((3,), -1), "age": torch.full((3,), float("nan"))}
    )
    assert float(nobody["ce"]) == 0.0 and float(nobody["age_mse"]) == 0.0


def _data_with_targets(
    make_cohort: Callable[..., Path], tmp_path: Path, *, labelled: bool
) -> DataBunch:
    csv = make_cohort(16)
    table = ScanTable.from_csv(csv, mask_col="mask", label_col="label" if labelled else None)
    data = DataBunch(
        table,
        PreprocessConfig(target_shape=(16, 16, 16)),
        cache_dir=tmp_path / "cache",
        val_size=0.25,
        test_size=0.25,
        seed=0,
        targets=("age", "sex"),
    )
    data.prepare(progress=False)
    return data


def test_source_task_scales_come_from_the_training_split_only(
    make_cohort: Callable[..., Path], tmp_path: Path
) -> None:
    data = _data_with_targets(make_cohort, tmp_path, labelled=True)
    loss = SourceTasksLoss.from_data(data)
    ages = data.train_ds.target_values("age")
    assert loss.scales == {"age": pytest.approx((float(ages.mean()), float(ages.std())))}
    assert "sex" not in loss.scales  # categorical: a classification head


@pytest.mark.parametrize("labelled", [True, False])
def test_multitask_pretraining_trains_every_head(
    make_cohort: Callable[..., Path], tmp_path: Path, labelled: bool
) -> None:
    data = _data_with_targets(make_cohort, tmp_path, labelled=labelled)
    torch.manual_seed(0)
    model = source_task_model(ConvAutoEncoder(channels=SMALL), data)
    expected = {"pred_age", "pred_sex"} | ({"logits"} if labelled else set())
    assert set(model.heads) == expected
    before = {k: v.clone() for k, v in model.state_dict().items()}
    learner = Learner(
        data,
        model,
        tmp_path / "run",
        model_type="autoencoder",
        loss_fn=SourceTasksLoss.from_data(data),
        batch_size=4,
        progress=False,
    )
    learner.fit(2, 1e-2, pretext="denoise" if labelled else None)
    row = learner.history_[-1]
    assert all(
        np.isfinite(row[k]) for k in ("train_loss", "train_age_mse", "train_sex_ce", "val_loss")
    )
    for name in expected:
        weight = f"heads.{name}.layers.1.weight"
        assert not torch.equal(model.state_dict()[weight], before[weight]), name


# ------------------------------------------------------ through the Learner
class _SpyAutoEncoder(ConvAutoEncoder):
    """Records, for every forward pass, whether it was training and the input's minimum."""

    def __init__(self) -> None:
        super().__init__(channels=SMALL)
        self.seen: list[tuple[bool, float]] = []

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.seen.append((self.training, float(x.min())))
        return super().forward(x)


def test_corruption_reaches_the_training_step_only(
    make_data: Callable[..., DataBunch], tmp_path: Path
) -> None:
    from transmri.training.checkpoint import load_checkpoint

    data = make_data(16)
    torch.manual_seed(0)
    model = _SpyAutoEncoder()
    learner = Learner(data, model, tmp_path / "run", batch_size=4, progress=False)
    learner.fit(2, 1e-3, pretext=Inpainting(cube_size=4, mask_ratio=0.3, fill=-1.0))
    train_mins = [m for training, m in model.seen if training]
    eval_mins = [m for training, m in model.seen if not training]
    assert train_mins and all(m == -1.0 for m in train_mins)  # every training batch is masked
    assert eval_mins and all(m >= 0.0 for m in eval_mins)  # validation sees clean scans
    row = learner.history_[-1]
    assert np.isfinite(row["train_masked_mse"]) and "val_masked_mse" not in row
    model.seen.clear()
    learner.evaluate("test")
    assert model.seen and all(not t and m >= 0.0 for t, m in model.seen)
    saved = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert '"kind": "inpaint"' in saved["fit_config"]
    with pytest.raises(ConfigError, match="no reconstruction"):
        clf = Learner(data, model, tmp_path / "clf", model_type="classifier", progress=False)
        clf.fit(1, pretext="denoise")
