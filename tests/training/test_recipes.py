"""Fine-tuning recipes: LP-FT, L2-SP, layer-wise rates, norm statistics, nested selection."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from transmri.data import DataBunch
from transmri.errors import ConfigError
from transmri.models import ConvEncoder, EncoderClassifier
from transmri.training import Learner
from transmri.training.objectives import ClassificationLoss
from transmri.training.recipes import (
    FineTuneRecipe,
    L2SPLoss,
    apply_recipe,
    data_with_augment,
    linear_probe,
    recompute_norm_stats,
    select_recipe,
)

MakeData = Callable[..., DataBunch]
SMALL = (4, 8, 8)


def _clf(
    data: DataBunch, path: Path, *, norm: str | None = None, head: str = "gap", **options: Any
) -> Learner:
    torch.manual_seed(0)
    model = EncoderClassifier(ConvEncoder(channels=SMALL, norm=norm), data.num_classes, head=head)
    return Learner(
        data, model, path, model_type="classifier", batch_size=4, progress=False, **options
    )


def test_recipe_validates_and_round_trips() -> None:
    recipe = FineTuneRecipe(probe="logreg", lr_decay=0.5, l2sp_alpha=0.1, augment="light")
    assert FineTuneRecipe.from_dict(recipe.to_dict()) == recipe
    assert recipe.replace(epochs=3).epochs == 3
    for bad, match in (
        ({"lr_decay": 2.0}, "lr_decay"),
        ({"probe": "svm"}, "probe"),
        ({"augment": "heavy"}, "augment"),
        ({"l2sp_alpha": -1.0}, "l2sp_alpha"),
        ({"epochs": 0}, "train nothing"),
    ):
        with pytest.raises(ConfigError, match=match):
            FineTuneRecipe(**bad)
    with pytest.raises(ConfigError, match="unknown key"):
        FineTuneRecipe.from_dict({"lr": 1e-3, "momentum": 0.9})


def test_l2sp_pulls_the_encoder_towards_its_start_and_shrinks_the_head() -> None:
    torch.manual_seed(0)
    model = EncoderClassifier(ConvEncoder(channels=SMALL), 2)
    loss = L2SPLoss(ClassificationLoss(), model, alpha=0.5, beta=0.2)
    x = torch.rand(2, 1, 16, 16, 16)
    batch = {"image": x, "label": torch.tensor([0, 1])}
    parts = loss(model(x), batch)
    assert float(parts["l2sp"].detach()) == 0.0  # at the starting point
    head_sq = float(model.head.layers[-1].weight.pow(2).sum())
    assert float(parts["l2_head"]) == pytest.approx(0.1 * head_sq)  # bias left out
    conv = model.encoder.blocks[0].conv.weight
    start = conv.detach().clone()
    with torch.no_grad():
        conv.add_(0.1)
    model.zero_grad()
    sp, _ = loss.penalties()
    assert float(sp) == pytest.approx(0.25 * 0.01 * conv.numel(), rel=1e-4)
    sp.backward()
    assert torch.allclose(conv.grad, torch.full_like(conv, 0.5 * 0.1), atol=1e-6)
    assert model.head.layers[-1].weight.grad is None  # the SP term touches the encoder only
    assert torch.equal(loss.reference["encoder.blocks.0.conv.weight"], start)  # a frozen copy
    with torch.no_grad():  # evaluation: the task loss alone
        assert set(loss(model(x), batch)) == {"loss", "ce"}


def test_recompute_norm_stats_matches_the_target_batch_statistics() -> None:
    torch.manual_seed(0)
    model = EncoderClassifier(ConvEncoder(channels=SMALL, norm="batch"), 2)
    weights = {
        k: v.clone()
        for k, v in model.state_dict().items()
        if "running" not in k and "num_batches" not in k
    }
    x = 3.0 * torch.rand(6, 1, 16, 16, 16)
    bn = model.encoder.blocks[0].norm
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert len(norms) >= 3 and recompute_norm_stats(model, [{"image": x}]) == len(norms)
    with torch.no_grad():
        expected = model.encoder.blocks[0].conv(x).mean(dim=(0, 2, 3, 4))
    assert torch.allclose(bn.running_mean, expected, atol=1e-5)
    assert bn.momentum == 0.1 and model.training
    for k, v in model.state_dict().items():
        if k in weights:
            assert torch.equal(v, weights[k]), k
    plain = EncoderClassifier(ConvEncoder(channels=SMALL, norm="group"), 2, norm="none")
    assert recompute_norm_stats(plain, [{"image": x}]) == 0


def test_linear_probe_copies_the_logistic_regression_into_the_head(
    make_data: MakeData, tmp_path: Path
) -> None:
    data = make_data(16)
    learner = _clf(data, tmp_path / "run")
    encoder_before = {k: v.clone() for k, v in learner.model.encoder.state_dict().items()}
    linear_probe(learner, C=0.5)
    model = learner.model.eval()
    xs, ys = zip(
        *[(data.train_ds[i]["image"], data.train_ds[i]["label"]) for i in range(len(data.train_ds))]
    )
    x = torch.stack(xs)
    with torch.no_grad():
        pooled = model.encode(x).mean(dim=(2, 3, 4))
        codes = model.head.norm(pooled).double().numpy()  # what the linear layer sees
        probs = torch.softmax(model(x)["logits"], dim=1)[:, 1].numpy()
    mean, std = codes.mean(0), np.maximum(codes.std(0), 1e-6)
    clf = LogisticRegression(C=0.5, max_iter=2000, class_weight="balanced")
    clf.fit((codes - mean) / std, np.array(ys))
    assert np.allclose(probs, clf.predict_proba((codes - mean) / std)[:, 1], atol=1e-4)
    for k, v in learner.model.encoder.state_dict().items():
        assert torch.equal(v, encoder_before[k])


def test_linear_probe_chooses_c_by_grouped_cv_on_training_scans_only(
    make_data: MakeData, tmp_path: Path
) -> None:
    from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from transmri.models import regional_features
    from transmri.training.recipes import PROBE_C_GRID

    data = make_data(24)
    learner = _clf(data, tmp_path / "run", head="regional")
    info = linear_probe(learner, C=None)
    assert info["C"] in PROBE_C_GRID
    model = learner.model.eval()
    xs, ys = zip(
        *[(data.train_ds[i]["image"], data.train_ds[i]["label"]) for i in range(len(data.train_ds))]
    )
    with torch.no_grad():
        codes = model.head.norm(regional_features(model.encoder, torch.stack(xs))).double().numpy()
    y = np.array(ys)
    groups = np.asarray(data.split_table("train").subjects)
    smallest = min(np.unique(groups[y == c]).size for c in np.unique(y))
    search = GridSearchCV(
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, class_weight="balanced")),
        {"logisticregression__C": list(PROBE_C_GRID)},
        scoring="roc_auc",
        cv=StratifiedGroupKFold(n_splits=min(5, smallest), shuffle=True, random_state=0),
    ).fit(codes, y, groups=groups)
    assert info["C"] == search.best_params_["logisticregression__C"]
    assert FineTuneRecipe(probe="logreg", probe_c=None).probe_c is None


def test_apply_recipe_lpft_l2sp_llrd(make_data: MakeData, tmp_path: Path) -> None:
    data = make_data(16)
    rates: list[list[float]] = []

    def adam(groups: list[dict[str, Any]], lr: float, weight_decay: float) -> torch.optim.Optimizer:
        rates.append([g["lr"] for g in groups])
        return torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay)

    learner = _clf(data, tmp_path / "run", opt_fn=adam)
    recipe = FineTuneRecipe(
        epochs=2, lr=1e-3, lr_decay=0.5, probe="logreg", l2sp_alpha=0.1, l2sp_beta=0.01,
        keep_probe=False, early_stop=None,
    )  # fmt: skip
    apply_recipe(learner, recipe)
    n = len(learner.model.layer_groups())
    assert rates == [[1e-3 * 0.5 ** (n - 1 - i) for i in range(n)]]
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert {"val_auc", "train_l2sp", "train_l2_head"} <= set(history.columns)
    assert np.isfinite(history["train_loss"]).all()
    assert learner.loss_fn is None  # the L2-SP wrapper was for this recipe only
    assert all(p.requires_grad for p in learner.model.parameters())
    assert learner.recipe_log_ == {
        "probe_c": 1.0, "probe_val_auc": None, "finetuned_val_auc": None, "kept": "finetuned"
    }  # fmt: skip


def test_apply_recipe_keeps_the_probe_unless_fine_tuning_beats_it_on_validation(
    make_data: MakeData, tmp_path: Path
) -> None:
    data = make_data(16)
    learner = _clf(data, tmp_path / "run")
    recipe = FineTuneRecipe(epochs=1, lr=1e-9, probe="logreg", keep_probe=True, early_stop=None)
    apply_recipe(learner, recipe)  # a learning rate too small to change anything
    log = learner.recipe_log_
    assert log["kept"] == "probe" and log["probe_c"] == 1.0
    assert log["finetuned_val_auc"] == pytest.approx(log["probe_val_auc"], abs=1e-6)


def test_apply_recipe_head_probe_keeps_the_encoder_frozen(
    make_data: MakeData, tmp_path: Path
) -> None:
    data = make_data(16)
    learner = _clf(data, tmp_path / "run", norm="batch")
    before = {k: v.clone() for k, v in learner.model.encoder.state_dict().items()}
    recipe = FineTuneRecipe(epochs=0, probe="head", probe_epochs=2, recompute_norm=True)
    apply_recipe(learner, recipe)
    after = learner.model.encoder.state_dict()
    changed = {k for k, v in after.items() if not torch.equal(v, before[k])}
    assert changed and all("running" in k or "num_batches" in k for k in changed)  # stats only
    assert learner.fitted_


def test_data_with_augment_keeps_the_splits(make_data: MakeData) -> None:
    data = make_data(16)
    augmented = data_with_augment(data, "light")
    for split in ("train", "val", "test"):
        assert augmented.subjects(split) == data.subjects(split)
    assert augmented.train_ds.transform is not None and augmented.val_ds.transform is None
    assert data_with_augment(data, None) is data


def test_select_recipe_is_nested_and_never_reads_test_labels(
    make_data: MakeData, tmp_path: Path
) -> None:
    data = make_data(24)
    test_subjects = set(data.subjects("test"))
    # Spy: any read of a test label would carry this unknown class into an inner DataBunch.
    data.table.frame.iloc[data.splits.test, data.table.frame.columns.get_loc("label")] = "LEAK"
    seen: list[set[str]] = []

    def make_learner(inner: DataBunch, path: Path) -> Learner:
        assert len(inner.splits.test) == 0
        seen.append(set(inner.subjects("train")) | set(inner.subjects("val")))
        return _clf(inner, path)

    candidates = {
        "probe": FineTuneRecipe(epochs=0, probe="logreg"),
        "finetune": FineTuneRecipe(epochs=1, early_stop=None),
    }
    chosen = select_recipe(candidates, make_learner, data, tmp_path / "select", folds=2)
    assert chosen.name in candidates and chosen.recipe == candidates[chosen.name]
    assert len(chosen.scores) == 4 and set(chosen.scores["candidate"]) == set(candidates)
    assert seen and all(not (s & test_subjects) for s in seen)
    pooled = set(data.subjects("train")) | set(data.subjects("val"))
    assert all(s == pooled for s in seen)
