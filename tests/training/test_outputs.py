"""Predictions in dataset order, metrics, embeddings, saved weights, and NotFittedError."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import confusion_matrix, roc_auc_score

from transmri.data import DataBunch, PreprocessConfig, ScanTable
from transmri.errors import CheckpointError, ConfigError, IntegrityError, NotFittedError
from transmri.evaluation import build_report
from transmri.evaluation.metrics import read_metrics
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
    metrics = learner.evaluate("test", n_boot=50)
    assert metrics["n"] == len(data.test_ds)
    assert {"loss", "ce", "accuracy", "balanced_accuracy", "auc", "f1"} <= set(metrics)
    # The file is the evaluation stage's format (subject-grouped bootstrap intervals).
    saved = read_metrics(tmp_path / "run" / "metrics_test.json")
    assert saved.point["accuracy"] == pytest.approx(metrics["accuracy"])
    assert saved.n_groups == len(set(data.subjects("test"))) and saved.n_boot == 50
    assert saved.ci_low["accuracy"] <= metrics["accuracy"] <= saved.ci_high["accuracy"]
    torch.manual_seed(0)
    ae = Learner(data, ConvAutoEncoder(channels=(4, 8)), tmp_path / "ae", progress=False).fit(1)
    scores = ae.evaluate("val")
    assert set(scores) == {"loss", "mse", "psnr", "ssim", "n"}
    assert 0 < scores["ssim"] <= 1 and np.isfinite(scores["psnr"])
    assert not (tmp_path / "ae" / "metrics_val.json").exists()
    written = json.loads((tmp_path / "ae" / "reconstruction_val.json").read_text())
    assert written["n_samples"] == len(data.val_ds)
    assert written["ssim"] == pytest.approx(scores["ssim"])
    with pytest.raises(ConfigError, match="predict: the model returns no 'logits'"):
        ae.predict()


def test_report_renders_what_evaluate_wrote(make_data: MakeData, tmp_path: Path) -> None:
    data = make_data()
    learner = _clf(data, tmp_path / "run").fit(1)
    metrics = learner.evaluate("test", n_boot=20)
    page = build_report(tmp_path / "run").read_text()
    assert "metrics_test.json: " in page and "bootstrap resamples of subjects" in page
    table = page[page.index("metrics_test.json: ") :]
    for name in ("accuracy", "balanced_accuracy", "auc"):
        assert f'<td>{name}</td><td class="num">{metrics[name]:.4g}</td>' in table
    torch.manual_seed(0)
    ae = Learner(data, ConvAutoEncoder(channels=(4, 8)), tmp_path / "ae", progress=False).fit(1)
    ae.evaluate("test")
    page = build_report(tmp_path / "ae").read_text()
    assert "Reconstruction (reconstruction_test.json, mean over" in page
    assert "<td>ssim</td>" in page


def test_pretrained_encoder_encodes_before_fit_but_cannot_predict(
    make_data: MakeData, tmp_path: Path
) -> None:
    from transmri.training import create_autoencoder

    source = make_data(n=12, folder="src", prefix="src")
    pretrain = create_autoencoder(source, tmp_path / "pre", channels=(4, 8), progress=False)
    card = pretrain.fit(1).save_encoder()
    target = make_data(n=12, folder="tgt", prefix="tgt")
    learner = Learner.from_pretrained(target, card, tmp_path / "ft", progress=False)
    assert learner.encoder_fitted_ and not learner.fitted_
    codes, _, _ = learner.encode_data("val")
    with torch.no_grad():
        pretrain.model.eval()
        image = target.val_ds[0]["image"][None]
        expected = pretrain.model.encode(image).mean(dim=(2, 3, 4))[0].numpy()
    np.testing.assert_allclose(codes[0], expected, atol=1e-5)  # the pretrained weights
    for call in (learner.predict, learner.evaluate):
        with pytest.raises(
            NotFittedError, match=r"the encoder is pretrained but the new head has not been trained"
        ):
            call()
    learner.reset_model()
    assert not learner.encoder_fitted_
    with pytest.raises(NotFittedError, match="encode_data: the encoder has not been trained"):
        learner.encode_data("val")
    # a fresh Learner (random weights) still refuses to encode
    with pytest.raises(NotFittedError, match="encode_data: the encoder has not been trained"):
        _clf(target, tmp_path / "fresh").encode_data("val")


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


def test_load_refuses_non_safetensors_and_incomplete_cards(
    make_data: MakeData, tmp_path: Path
) -> None:
    data = make_data()
    learner = _clf(data, tmp_path / "run").fit(1)
    weights = learner.save("final")
    card_file = weights.with_suffix(".json")
    card = json.loads(card_file.read_text())
    # Not safetensors, but the card's checksum matches (e.g. a file saved by another tool).
    weights.write_bytes(b"this is not a safetensors file at all")
    card["sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
    card_file.write_text(json.dumps(card))
    with pytest.raises(
        CheckpointError, match=r"final.safetensors: expected a safetensors file, got an unreadable"
    ):
        learner.load("final")
    del card["sha256"]
    card_file.write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match=r"final.json: expected a 'sha256' entry"):
        learner.load("final")
    card["sha256"] = "0" * 64
    del card["model"]
    card_file.write_text(json.dumps(card))
    with pytest.raises(IntegrityError, match=r"final.safetensors: sha256 mismatch"):
        learner.load("final")


def test_save_survives_a_second_saver_and_names_an_interrupted_save(
    make_data: MakeData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = make_data()
    first = _clf(data, tmp_path / "run").fit(1)
    second = _clf(data, tmp_path / "run", channels=(4, 8, 8))
    second.model.load_state_dict(first.model.state_dict())
    with torch.no_grad():
        for p in second.model.parameters():
            p.add_(1.0)
    second.fitted_ = True
    # Another saver writes the same name while this one is between writing its
    # temporary file and renaming it: the two must not share a temporary file.
    import safetensors.torch

    real_save_file = safetensors.torch.save_file
    calls: list[str] = []

    def interleaved(tensors: dict, filename: str, metadata: dict | None = None) -> None:
        calls.append(filename)
        real_save_file(tensors, filename, metadata=metadata)
        if len(calls) == 1:
            second.save("final")

    monkeypatch.setattr(safetensors.torch, "save_file", interleaved)
    first.save("final")
    monkeypatch.undo()
    assert len(calls) == 2 and calls[0] != calls[1]
    check = _clf(data, tmp_path / "run")
    check.load("final")  # the save that finished last wins, weights and card agree
    for key, value in first.model.state_dict().items():
        assert torch.equal(check.model.state_dict()[key], value)
    assert not list((tmp_path / "run" / "models").glob(".*.tmp"))


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


def test_history_val_auc_is_metrics_val_auc_with_a_class_absent(
    make_cohort: Callable[..., Path], tmp_path: Path
) -> None:
    # Issue 18: history.csv (training loop) and metrics_val.json (evaluation)
    # computed the AUC twice, with different rules for a class absent from the split.
    csv = make_cohort(15, shape=(16, 16, 16))
    frame = pd.read_csv(csv)
    frame["label"] = [("A", "B", "C")[i % 3] for i in range(len(frame))]
    frame.to_csv(csv, index=False)
    table = ScanTable.from_csv(csv, mask_col="mask")
    val = [0, 1, 3, 4]  # A, B, A, B: class C is absent from validation
    data = DataBunch.from_splits(
        train=table.subset([i for i in range(len(table)) if i not in val]),
        val=table.subset(val),
        preprocessing=PreprocessConfig(target_shape=(16, 16, 16)),
        cache_dir=tmp_path / "cache",
    )
    assert list(data.classes) == ["A", "B", "C"]
    learner = _clf(data, tmp_path / "run").fit(1, 1e-2)
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    learner.evaluate("val", n_boot=0)
    report = read_metrics(tmp_path / "run" / "metrics_val.json")
    predictions = learner.predict("val")
    present = np.unique(predictions.labels)
    by_hand = np.mean(
        [roc_auc_score(predictions.labels == c, predictions.probs[:, c]) for c in present]
    )
    assert list(present) == [0, 1]
    assert np.isfinite(report.point["auc"])
    assert history["val_auc"].iloc[-1] == pytest.approx(report.point["auc"], abs=1e-9)
    assert report.point["auc"] == pytest.approx(by_hand, abs=1e-9)
