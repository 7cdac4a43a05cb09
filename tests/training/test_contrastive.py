"""Contrastive pretraining: two views, NT-Xent, y-aware InfoNCE, validation and the Learner."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from lightning_fabric import Fabric

from transmri.data import DataBunch, PreprocessConfig, ScanTable
from transmri.errors import ConfigError
from transmri.models import ContrastiveModel, ConvEncoder
from transmri.training import Learner
from transmri.training.contrastive import ContrastiveLoss, TwoViews, info_nce, validate_views

SMALL = (4, 8, 8)


def _reference_nt_xent(z: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's NT-Xent written the textbook way (views i and i + N are positives)."""
    n = z.shape[0] // 2
    zn = F.normalize(z, dim=1)
    sim = zn @ zn.T / temperature
    sim.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return F.cross_entropy(sim, target)


def test_nt_xent_matches_the_textbook_formula() -> None:
    torch.manual_seed(0)
    z = torch.randn(10, 6)
    pair = torch.arange(5).repeat(2)
    got = ContrastiveLoss(temperature=0.3)({"projection": z}, {"pair": pair})["nt_xent"]
    assert float(got) == pytest.approx(float(_reference_nt_xent(z, 0.3)), rel=1e-5)


def test_y_aware_kernel_weights_similar_ages_and_falls_back_on_missing() -> None:
    loss = ContrastiveLoss(target="age", sigma=5.0)
    pair = torch.arange(3).repeat(2)
    age = torch.tensor([50.0, 55.0, float("nan")]).repeat(2)
    w = loss.positives(pair, age)
    assert float(w[0, 3]) == 1.0  # the other view of the same scan
    assert float(w[0, 1]) == pytest.approx(np.exp(-25 / 50))  # 5 years apart, sigma 5
    assert float(w[0, 2]) == 0.0 and float(w[2, 5]) == 1.0  # missing age: SimCLR positive only
    # sigma -> 0 with distinct ages gives NT-Xent back
    torch.manual_seed(1)
    z = torch.randn(6, 4)
    tiny = ContrastiveLoss(target="age", sigma=1e-3)
    ages = torch.tensor([20.0, 40.0, 60.0]).repeat(2)
    y_aware = tiny({"projection": z}, {"pair": pair, "age": ages})["y_info_nce"]
    assert float(y_aware) == pytest.approx(float(_reference_nt_xent(z, 0.1)), rel=1e-5)


def test_y_aware_loss_prefers_embeddings_ordered_by_age() -> None:
    pair = torch.arange(4).repeat(2)
    ages = torch.tensor([20.0, 22.0, 70.0, 72.0]).repeat(2)
    loss = ContrastiveLoss(target="age", sigma=5.0, temperature=0.5)
    by_age = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]]).repeat(2, 1)
    crossed = by_age[[0, 2, 1, 3, 4, 6, 5, 7]]
    good = loss({"projection": by_age}, {"pair": pair, "age": ages})["loss"]
    bad = loss({"projection": crossed}, {"pair": pair, "age": ages})["loss"]
    assert float(good) < float(bad)


def test_info_nce_row_without_positive_adds_nothing() -> None:
    z = torch.randn(4, 3)
    positives = torch.zeros(4, 4)
    assert float(info_nce(z, positives, temperature=0.1)) == 0.0


def test_two_views_pairs_and_repeats_batch_entries() -> None:
    torch.manual_seed(0)
    batch = {
        "image": torch.rand(3, 1, 16, 16, 16),
        "label": torch.tensor([0, 1, 0]),
        "age": torch.tensor([30.0, 40.0, 50.0]),
    }
    out = TwoViews().corrupt(batch)
    assert out["image"].shape == (6, 1, 16, 16, 16)
    assert out["pair"].tolist() == [0, 1, 2, 0, 1, 2]
    assert out["age"].tolist() == [30.0, 40.0, 50.0] * 2
    assert not torch.equal(out["image"][:3], out["image"][3:])  # two different views
    assert torch.isfinite(out["image"]).all()
    # an identity-like setting keeps the volume
    still = TwoViews(crop_scale=(1.0, 1.0), flip_prob=0.0, intensity=0.0, noise_std=0.0)
    assert torch.allclose(still.view(batch["image"]), batch["image"], atol=1e-5)
    flipped = TwoViews(crop_scale=(1.0, 1.0), flip_prob=1.0, intensity=0.0, noise_std=0.0)
    assert torch.allclose(flipped.view(batch["image"]), batch["image"].flip(2), atol=1e-5)
    assert TwoViews(augment="light").view(batch["image"]).shape == batch["image"].shape
    with pytest.raises(ConfigError, match="crop_scale"):
        TwoViews(crop_scale=(0.0, 1.0))


def test_loss_needs_two_views_and_a_projection() -> None:
    with pytest.raises(ConfigError, match="two views"):
        ContrastiveLoss()({"projection": torch.randn(2, 3)}, {"image": torch.zeros(2)})
    with pytest.raises(ConfigError, match="projection"):
        ContrastiveLoss()({"logits": torch.randn(2, 3)}, {"pair": torch.arange(2)})
    with pytest.raises(ConfigError, match="targets"):
        ContrastiveLoss(target="age")({"projection": torch.randn(2, 3)}, {"pair": torch.arange(2)})


def test_gradients_reach_encoder_and_projection() -> None:
    torch.manual_seed(0)
    model = ContrastiveModel(ConvEncoder(channels=SMALL), projection_dim=8)
    batch = TwoViews().corrupt({"image": torch.rand(4, 1, 16, 16, 16)})
    ContrastiveLoss()(model(batch["image"]), batch)["loss"].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_validation_views_are_seeded_and_leave_the_rng_alone() -> None:
    fabric = Fabric(accelerator="cpu", devices=1)
    torch.manual_seed(0)
    model = ContrastiveModel(ConvEncoder(channels=SMALL), projection_dim=8)
    batches = [{"image": torch.rand(3, 1, 16, 16, 16)} for _ in range(2)]
    state = torch.get_rng_state()
    first = validate_views(fabric, model, batches, TwoViews(), ContrastiveLoss(), seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    second = validate_views(fabric, model, batches, TwoViews(), ContrastiveLoss(), seed=3)
    assert first == second and np.isfinite(first["val_loss"])
    assert model.training  # mode restored


def _aged_data(make_cohort: Callable[..., Path], tmp_path: Path) -> DataBunch:
    csv = make_cohort(16)
    frame = pd.read_csv(csv)
    frame.loc[3, "age"] = np.nan  # one missing age
    frame.to_csv(csv, index=False)
    table = ScanTable.from_csv(csv, mask_col="mask", label_col=None)
    data = DataBunch(
        table,
        PreprocessConfig(target_shape=(16, 16, 16)),
        cache_dir=tmp_path / "cache",
        val_size=0.25,
        test_size=0.25,
        targets=("age",),
    )
    data.prepare(progress=False)
    return data


@pytest.mark.parametrize("target", [None, "age"])
def test_learner_trains_a_contrastive_model(
    make_cohort: Callable[..., Path], tmp_path: Path, target: str | None
) -> None:
    data = _aged_data(make_cohort, tmp_path)
    torch.manual_seed(0)
    model = ContrastiveModel(ConvEncoder(channels=SMALL), projection_dim=8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loss = None if target is None else ContrastiveLoss(target=target)
    learner = Learner(
        data,
        model,
        tmp_path / "run",
        model_type="contrastive",
        loss_fn=loss,
        batch_size=4,
        progress=False,
    )
    learner.fit(2, 1e-3)
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert history["train_loss"].notna().all() and history["val_loss"].notna().all()
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("encoder.") for k in changed)
    assert any(k.startswith("projection.") for k in changed)
    card = learner.save_encoder()
    assert card.is_file()
    codes, _, _ = learner.encode_data("test")
    assert codes.shape == (len(data.test_ds), SMALL[-1])
