"""Predictions in dataset order, metrics, embeddings, saved weights, and NotFittedError."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import confusion_matrix

from transmri.data import DataBunch
from transmri.errors import CheckpointError, ConfigError, IntegrityError, NotFittedError
from transmri.models import ConvAutoEncoder, ConvEncoder, EncoderClassifier
from transmri.training import Learner

MakeData = Callable[..., DataBunch]


def _clf(data: DataBunch, path: Path, channels: tuple[int, ...] = (4, 8, 8)) -> Learner:
    torch.manual_seed(0)
    model = EncoderClassifier(ConvEncoder(channels=channels), data.num_classes)
    return Learner(data, model, path, model_type="classifier", batch_size=3, progress=False)


def test_nothing_before_fit(make_data: MakeData, tmp_path: Path) -> None:
    learner = _clf(make_data(), tmp_path / "run")
    for call in (learner.predict, learner.save_encoder, learner.save, learner.evaluate):
        with pytest.raises(NotFittedError, match="call fit\\(\\) \\(or load\\(\\)\\) first"):
            call()
    assert not (tmp_path / "run").exists()


def test_predictions_follow_dataset_order(make_data: MakeData, tmp_path: Path) -> None:
    data = make_data(n=20)
    learner = _clf(data, tmp_path / "run").fit(2, 1e-2)
    predictions = learner.predict("test")
    ds = data.test_ds
    learner.model.eval()
    with torch.no_grad():
        images = torch.stack([ds[i]["image"] for i in range(len(ds))])
        expected = torch.softmax(learner.model(images)["logits"], dim=1).numpy()
    np.testing.assert_allclose(predictions.probs, expected, atol=1e-5)
    assert list(predictions.labels) == list(ds.labels)
    assert predictions.subjects == tuple(data.split_table("test").subjects)
    cm = confusion_matrix(ds.labels, expected.argmax(1), labels=[0, 1])
    np.testing.assert_array_equal(predictions.confusion_matrix(), cm)
    frame = pd.read_csv(tmp_path / "run" / "predictions_test.csv")
    assert list(frame.columns) == ["subject", "path", "label", "pred", "prob_AD", "prob_CN"]
    assert list(frame["subject"]) == list(predictions.subjects)
    assert list(frame["label"]) == [data.classes[i] for i in ds.labels]


def test_evaluate_whole_split_and_writes_json(make_data: MakeData, tmp_path: Path) -> None:
    data = make_data()
    learner = _clf(data, tmp_path / "run").fit(1)
    metrics = learner.evaluate("test")
    assert metrics["n"] == len(data.test_ds)
    assert {"loss", "ce", "accuracy", "balanced_accuracy", "auc"} <= set(metrics)
    saved = json.loads((tmp_path / "run" / "metrics_test.json").read_text())
    assert saved["accuracy"] == pytest.approx(metrics["accuracy"])
    torch.manual_seed(0)
    ae = Learner(data, ConvAutoEncoder(channels=(4, 8)), tmp_path / "ae", progress=False).fit(1)
    assert set(ae.evaluate("val")) == {"loss", "mse", "n"}
    with pytest.raises(ConfigError, match="predict: the model returns no 'logits'"):
        ae.predict()


def test_encode_data_is_eval_no_grad_and_ordered(make_data: MakeData, tmp_path: Path) -> None:
    data = make_data()
    learner = _clf(data, tmp_path / "run").fit(1)
    learner.model.train()
    codes, labels, subjects = learner.encode_data("val", to_csv=True)
    assert learner.model.training  # mode restored
    assert codes.shape == (len(data.val_ds), 8) and list(labels) == list(data.val_ds.labels)
    with torch.no_grad():
        image = data.val_ds[0]["image"][None]
        learner.model.eval()
        first = learner.model.encode(image).mean(dim=(2, 3, 4))[0].numpy()
    np.testing.assert_allclose(codes[0], first, atol=1e-5)
    flat, _, _ = learner.encode_data("val", pooled=False)
    assert flat.shape[1] == 8 * 4 * 4 * 4  # two pooling steps on 16^3
    frame = pd.read_csv(tmp_path / "run" / "embeddings_val.csv")
    assert (
        list(frame.columns[:3]) == ["subject", "label", "e0"] and list(frame["subject"]) == subjects
    )


def test_save_load_round_trip_and_checks(make_data: MakeData, tmp_path: Path) -> None:
    data = make_data()
    learner = _clf(data, tmp_path / "run").fit(1)
    weights = learner.save("final")
    assert weights == tmp_path / "run" / "models" / "final.safetensors"
    fresh = _clf(data, tmp_path / "run")
    fresh.reset_model()
    fresh.load("final")
    for key, value in learner.model.state_dict().items():
        assert torch.equal(fresh.model.state_dict()[key], value)
    assert fresh.fitted_
    other = _clf(data, tmp_path / "run", channels=(4, 4))
    with pytest.raises(CheckpointError, match="another architecture"):
        other.load("final")
    data_bytes = bytearray(weights.read_bytes())
    data_bytes[-3] ^= 0x10
    weights.write_bytes(bytes(data_bytes))
    with pytest.raises(IntegrityError, match=r"final.safetensors: sha256 mismatch"):
        fresh.load("final")
    with pytest.raises(ConfigError, match="name: expected letters"):
        fresh.save("../escape")


def test_reset_model_reinitialises(make_data: MakeData, tmp_path: Path) -> None:
    learner = _clf(make_data(), tmp_path / "run").fit(1, 1e-2)
    trained = {k: v.clone() for k, v in learner.model.state_dict().items()}
    learner.reset_model()
    assert not learner.fitted_ and learner.history_ == []
    assert not all(torch.equal(trained[k], v) for k, v in learner.model.state_dict().items())


def test_lr_find_restores_weights(make_data: MakeData, tmp_path: Path) -> None:
    learner = _clf(make_data(), tmp_path / "run")
    before = {k: v.clone() for k, v in learner.model.state_dict().items()}
    lrs, losses, suggestion = learner.lr_find(1e-5, 1.0, steps=6)
    assert len(lrs) == len(losses) <= 6 and lrs[0] == pytest.approx(1e-5)
    assert np.all(np.diff(lrs) > 0) and lrs[0] <= suggestion <= lrs[-1]
    assert all(torch.equal(before[k], v) for k, v in learner.model.state_dict().items())
