"""Factories and transfer: alpha used, strict keywords, checks on load, fine-tuning that learns."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from transmri.data import DataBunch
from transmri.errors import ConfigError, DataFormatError, DataLeakageError
from transmri.training import (
    Callback,
    FitState,
    Learner,
    MultiTaskLoss,
    create_autoencoder,
    create_classifier,
    create_classifier_from_encoder,
    create_mixed,
)

MakeData = Callable[..., DataBunch]
FAST = {"batch_size": 4, "progress": False}


def test_create_mixed_really_uses_alpha(make_data: MakeData, tmp_path: Path) -> None:
    data = make_data()
    learner = create_mixed(data, tmp_path / "run", alpha=1.0, channels=(4, 8), **FAST)
    assert isinstance(learner.loss_fn, MultiTaskLoss) and learner.loss_fn.alpha == 1.0
    learner.fit(1)
    row = learner.history_[0]
    assert row["train_loss"] == pytest.approx(row["train_mse"])  # alpha = 1: CE has no weight
    with pytest.raises(ConfigError, match="alpha: apply to the default objective"):
        learner.fit(1, alpha=0.2)  # set alpha on the factory, not silently twice


def test_factories_reject_unknown_keywords(make_data: MakeData, tmp_path: Path) -> None:
    data = make_data()
    for factory in (create_autoencoder, create_classifier, create_mixed):
        with pytest.raises(TypeError, match="bogus"):
            factory(data, tmp_path / "run", bogus=1)
    with pytest.raises(ConfigError, match="arch: expected one of 'cae', 'srcae', 'vae'"):
        create_autoencoder(data, tmp_path / "run", arch="unet")
    with pytest.raises(ConfigError, match="norm: the 'srcae' architecture has no normalisation"):
        create_autoencoder(data, tmp_path / "run", arch="srcae", norm="batch")


def test_vae_and_srcae_train(make_data: MakeData, tmp_path: Path) -> None:
    data = make_data()
    vae = create_autoencoder(data, tmp_path / "vae", arch="vae", channels=(4, 8), **FAST)
    assert vae.config.model_type == "vae"
    vae.fit(1, beta=0.5)
    assert {"train_kl", "val_kl"} <= set(vae.history_[0])
    create_autoencoder(data, tmp_path / "sr", arch="srcae", **FAST).fit(1)


def test_classifier_needs_two_classes(make_data: MakeData, tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="at least 2 classes, got classes \\[\\]"):
        create_classifier(make_data(labelled=False), tmp_path / "run")


def _pretrain(data: DataBunch, path: Path, epochs: int = 4) -> Path:
    learner = create_autoencoder(data, path, channels=(8, 16, 32, 16), **FAST)
    learner.fit(epochs, 3e-3)
    return learner.save_encoder()


def test_encoder_card_contents(make_data: MakeData, tmp_path: Path) -> None:
    source = make_data(n=12, prefix="src", folder="src")
    card_path = _pretrain(source, tmp_path / "pre", epochs=1)
    card = json.loads(card_path.read_text())
    assert card["architecture"]["name"] == "cae_encoder" and card["input_shape"] == [16, 16, 16]
    assert card["preprocessing"] == source.preprocessing.to_dict()
    expected = sorted(set(source.subjects("train")) | set(source.subjects("val")))
    assert card["training_subjects"] == expected
    assert "val_loss" in card["metrics"] and card["transmri_version"]


def test_transfer_checks_shape_preprocessing_and_leakage(
    make_data: MakeData, tmp_path: Path
) -> None:
    source = make_data(n=12, folder="src")
    card = _pretrain(source, tmp_path / "pre", epochs=1)
    other_shape = make_data(n=12, folder="tgt", prefix="tgt", shape=(8, 8, 8))
    with pytest.raises(
        ConfigError, match=r"target_shape: encoder \(16, 16, 16\), data \(8, 8, 8\)"
    ):
        create_classifier_from_encoder(other_shape, card, tmp_path / "ft")
    leaky = make_data(n=12, folder="same", split_seed=1)  # same ids, other test split
    with pytest.raises(DataLeakageError, match=r"target test set share .* subject"):
        Learner.from_pretrained(leaky, tmp_path / "pre", tmp_path / "ft2")
    learner = Learner.from_pretrained(leaky, card, tmp_path / "ft3", check_leakage=False, **FAST)
    assert learner.pretrained_card_ is not None and learner.config.model_type == "classifier"


def test_fine_tuning_a_pretrained_encoder_learns(make_data: MakeData, tmp_path: Path) -> None:
    """Class 1 of make_cohort has a dark blob: fine-tuning must find it for every seed."""
    source = make_data(
        n=24, prefix="src", folder="src", shape=(20, 24, 20), val_size=0.2, test_size=0.1
    )
    card = _pretrain(source, tmp_path / "pre")
    for seed in (0, 1, 2):
        target = make_data(
            n=40,
            seed=10 + seed,
            prefix="tgt",
            folder=f"tgt{seed}",
            shape=(20, 24, 20),
            split_seed=seed,
        )
        learner = create_classifier_from_encoder(
            target, card, tmp_path / f"ft{seed}", seed=seed, **FAST
        )
        encoder_before = {k: v.clone() for k, v in learner.model.encoder.state_dict().items()}
        learner.fine_tune(1, 5, 3e-3, lr_mult=0.5, monitor="val_auc")
        best = max(row["val_auc"] for row in learner.history_)
        assert best >= 0.8, (seed, [row["val_auc"] for row in learner.history_])
        # the best epoch's weights are the ones kept, and they hold on held-out scans
        assert learner.evaluate("val")["auc"] == pytest.approx(best)
        assert learner.evaluate("test")["auc"] >= 0.7
        assert not all(
            torch.equal(encoder_before[k], v) for k, v in learner.model.encoder.state_dict().items()
        )


def test_gradual_unfreezing_trains_top_groups_first(make_data: MakeData, tmp_path: Path) -> None:
    data = make_data()
    learner = create_classifier(data, tmp_path / "run", channels=(4, 8, 8), **FAST)
    rates: list[int] = []

    class Record(Callback):
        def on_fit_start(self, learner: Learner, state: FitState) -> None:
            rates.append(len(learner.optimizer_.param_groups))

    learner.callbacks.append(Record())
    learner.fine_tune(1, 3, 1e-3, gradual=True)
    assert rates == [1, 2, 3, 4]  # head; head + last block; ...; everything
    assert len(learner.history_) == 4


def test_a_shape_too_small_is_refused_before_the_run_folder_is_written(
    make_data: MakeData, tmp_path: Path
) -> None:
    data = make_data(8, shape=(4, 4, 4))
    learner = create_autoencoder(data, tmp_path / "run", **FAST)
    with pytest.raises(ConfigError, match=r"input size 4 along D is too small: at least 8"):
        learner.fit(1, 1e-3)
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())
