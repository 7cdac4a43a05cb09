"""Tests of transmri.evaluation.metrics."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from transmri.errors import ConfigError, DataFormatError
from transmri.evaluation.metrics import (
    METRIC_NAMES,
    MetricsReport,
    classification_metrics,
    encode_labels,
    read_metrics,
    reconstruction_metrics,
    write_metrics,
)


def binary_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p1 = np.clip(0.35 * y + 0.65 * rng.random(n), 0, 1)
    return y, np.stack([1 - p1, p1], axis=1)


def multiclass_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    logits = rng.standard_normal((n, 3)) + 1.2 * np.eye(3)[y]
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return y, p


def test_binary_point_estimates_equal_scikit_learn() -> None:
    y, p = binary_data(150)
    names = np.array(["CN", "AD"])[y]
    report = classification_metrics(names, p, classes=["CN", "AD"], n_boot=0)
    pred = p.argmax(1)
    assert report.point["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert report.point["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert report.point["auc"] == pytest.approx(skm.roc_auc_score(y, p[:, 1]))
    assert report.point["sensitivity"] == pytest.approx(skm.recall_score(y, pred, pos_label=1))
    assert report.point["specificity"] == pytest.approx(skm.recall_score(y, pred, pos_label=0))
    assert report.point["f1"] == pytest.approx(skm.f1_score(y, pred))
    np.testing.assert_array_equal(report.confusion_matrix, skm.confusion_matrix(y, pred))
    precision, recall, f1, support = skm.precision_recall_fscore_support(y, pred)
    np.testing.assert_allclose(report.per_class["precision"], precision)
    np.testing.assert_allclose(report.per_class["recall"], recall)
    np.testing.assert_allclose(report.per_class["f1"], f1)
    np.testing.assert_array_equal(report.per_class["support"], support)
    assert list(report.per_class.index) == ["CN", "AD"]
    assert math.isnan(report.ci_low["auc"])  # n_boot=0: no interval


def test_binary_accepts_positive_class_probability_and_ties() -> None:
    y = np.array([0, 0, 1, 1, 1, 0])
    p1 = np.array([0.2, 0.5, 0.5, 0.9, 0.5, 0.1])  # ties across classes
    report = classification_metrics(y, p1, classes=["neg", "pos"], n_boot=0)
    assert report.point["auc"] == pytest.approx(skm.roc_auc_score(y, p1))


def test_multiclass_point_estimates_equal_scikit_learn() -> None:
    y, p = multiclass_data(200)
    report = classification_metrics(y, p, classes=["a", "b", "c"], n_boot=0)
    pred = p.argmax(1)
    assert report.point["auc"] == pytest.approx(
        skm.roc_auc_score(y, p, multi_class="ovr", average="macro")
    )
    assert report.point["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert report.point["sensitivity"] == pytest.approx(skm.recall_score(y, pred, average="macro"))
    assert report.point["f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    cm = skm.confusion_matrix(y, pred)
    spec = [
        (cm.sum() - cm[c].sum() - cm[:, c].sum() + cm[c, c]) / (cm.sum() - cm[c].sum())
        for c in range(3)
    ]
    assert report.point["specificity"] == pytest.approx(np.mean(spec))


def test_intervals_contain_point_and_shrink_with_more_data() -> None:
    widths = []
    for n in (60, 600):
        y, p = binary_data(n, seed=1)
        report = classification_metrics(y, p, classes=["CN", "AD"], n_boot=400, seed=3)
        for name in METRIC_NAMES:
            assert report.ci_low[name] <= report.point[name] <= report.ci_high[name], name
        widths.append(report.ci_high["auc"] - report.ci_low["auc"])
    assert widths[1] < 0.6 * widths[0]


def test_bootstrap_is_deterministic_in_seed() -> None:
    y, p = binary_data(80)
    a = classification_metrics(y, p, classes=[0, 1], n_boot=100, seed=5)
    b = classification_metrics(y, p, classes=[0, 1], n_boot=100, seed=5)
    c = classification_metrics(y, p, classes=[0, 1], n_boot=100, seed=6)
    assert a.ci_low == b.ci_low
    assert a.ci_low != c.ci_low


def test_grouped_bootstrap_resamples_whole_subjects() -> None:
    # 20 subjects x 10 near-identical scans: the effective sample size is 20, not 200.
    rng = np.random.default_rng(0)
    subject_label = rng.integers(0, 2, 20)
    subject_score = np.clip(0.3 * subject_label + 0.7 * rng.random(20), 0, 1)
    y = np.repeat(subject_label, 10)
    p1 = np.repeat(subject_score, 10) + rng.normal(0, 0.001, 200)
    groups = np.repeat([f"sub-{i:02d}" for i in range(20)], 10)
    p = np.stack([1 - p1, p1], 1)
    grouped = classification_metrics(y, p, classes=[0, 1], groups=groups, n_boot=500)
    flat = classification_metrics(y, p, classes=[0, 1], n_boot=500)
    assert grouped.n_groups == 20 and flat.n_groups == 200
    assert grouped.point == flat.point  # the estimate uses the whole split either way
    width = {r: r.ci_high["accuracy"] - r.ci_low["accuracy"] for r in (grouped, flat)}
    assert width[grouped] > 2 * width[flat]


def test_one_class_split_reports_undefined_auc() -> None:
    y = np.array(["AD"] * 6)
    p = np.tile([0.3, 0.7], (6, 1))
    report = classification_metrics(y, p, classes=["CN", "AD"], n_boot=50)
    assert math.isnan(report.point["auc"])
    assert math.isnan(report.ci_low["auc"]) and math.isnan(report.ci_high["auc"])
    assert math.isnan(report.point["specificity"])
    assert report.point["accuracy"] == 1.0
    assert any("AUC undefined" in note and "'CN'" in note for note in report.notes)
    assert json.dumps(report.to_dict(), allow_nan=False)  # nan written as null


def test_bootstrap_resamples_with_one_class_are_skipped_for_auc_only() -> None:
    y = np.array([1] * 9 + [0])  # one negative: many resamples miss it
    p1 = np.linspace(0.2, 0.9, 10)
    report = classification_metrics(y, p1, classes=[0, 1], n_boot=200, seed=0)
    assert not math.isnan(report.ci_low["auc"])
    assert not math.isnan(report.ci_low["accuracy"])
    assert any(note.startswith("auc:") and "skipped" in note for note in report.notes)


def test_report_round_trips_through_json(tmp_path) -> None:
    y, p = multiclass_data(60)
    report = classification_metrics(y, p, classes=["a", "b", "c"], n_boot=50)
    path = write_metrics(report, tmp_path / "metrics_test.json")
    data = json.loads(path.read_text())
    assert data["metrics"]["auc"]["estimate"] == pytest.approx(report.point["auc"])
    assert list(data["per_class"]) == ["a", "b", "c"]
    again = read_metrics(path)
    assert isinstance(again, MetricsReport)
    assert again.point == pytest.approx(report.point)
    assert again.ci_high == pytest.approx(report.ci_high)
    np.testing.assert_array_equal(again.confusion_matrix, report.confusion_matrix)
    assert again.per_class.equals(report.per_class)
    frame = report.to_frame()
    assert list(frame.columns) == ["metric", "estimate", "ci_low", "ci_high"]
    assert list(frame["metric"]) == list(METRIC_NAMES)
    assert not list(tmp_path.glob(".*tmp"))  # no temp file left behind


def test_read_metrics_names_the_bad_file(tmp_path) -> None:
    bad = tmp_path / "metrics_val.json"
    bad.write_text("{not json")
    with pytest.raises(DataFormatError, match=r"metrics_val\.json: expected JSON"):
        read_metrics(bad)
    bad.write_text('{"classes": ["a", "b"]}')
    with pytest.raises(DataFormatError, match=r"missing \['metrics'"):
        read_metrics(bad)
    with pytest.raises(FileNotFoundError, match="not found"):
        read_metrics(tmp_path / "nope.json")


def test_input_errors_say_expected_and_found() -> None:
    y, p = binary_data(10)
    with pytest.raises(DataFormatError, match=r"expected shape \(10, 2\).*got \(10, 3\)"):
        classification_metrics(y, np.ones((10, 3)), classes=["a", "b"])
    with pytest.raises(
        DataFormatError, match=r"expected labels among classes \['CN', 'AD'\].*'MCI'"
    ):
        classification_metrics(["CN", "MCI"], [[0.5, 0.5]] * 2, classes=["CN", "AD"])
    with pytest.raises(DataFormatError, match=r"groups: expected one subject per sample"):
        classification_metrics(y, p, classes=[0, 1], groups=["s"] * 3)
    with pytest.raises(DataFormatError, match="NaN or Inf"):
        classification_metrics(y, np.full((10, 2), np.nan), classes=[0, 1])
    with pytest.raises(ConfigError, match=r"ci: expected a number in \(0, 1\), got 1.5"):
        classification_metrics(y, p, classes=[0, 1], ci=1.5)
    with pytest.raises(DataFormatError, match="at least two distinct"):
        classification_metrics(y, p, classes=["a"])


def test_encode_labels_accepts_names_or_indices() -> None:
    np.testing.assert_array_equal(encode_labels(["AD", "CN"], ["CN", "AD"]), [1, 0])
    np.testing.assert_array_equal(encode_labels(np.array([1, 0]), ["CN", "AD"]), [1, 0])
    with pytest.raises(DataFormatError, match=r"indices 0\.\.1"):
        encode_labels(np.array([2]), ["CN", "AD"])


def test_reconstruction_metrics_values() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((2, 1, 12, 14, 12)).astype(np.float32)
    perfect = reconstruction_metrics(x, x)
    assert perfect["mse"] == 0.0 and math.isinf(perfect["psnr"])
    assert perfect["ssim"] == pytest.approx(1.0)
    shifted = reconstruction_metrics(x, x + 0.1)
    assert shifted["mse"] == pytest.approx(0.01, rel=1e-4)
    assert shifted["psnr"] == pytest.approx(20.0, abs=1e-3)
    noisy = reconstruction_metrics(
        torch.from_numpy(x), torch.from_numpy(x) + 0.3 * torch.rand(x.shape)
    )
    assert noisy["ssim"] < shifted["ssim"] <= 1.0
    # a 3D volume and a batch of one give the same numbers
    single = reconstruction_metrics(x[0, 0], x[0, 0] + 0.1)
    assert single["psnr"] == pytest.approx(20.0, abs=1e-3)


def test_reconstruction_metrics_shape_errors() -> None:
    with pytest.raises(DataFormatError, match=r"expected the shape of x \(1, 1, 8, 8, 8\)"):
        reconstruction_metrics(np.zeros((8, 8, 8)), np.zeros((8, 8, 9)))
    with pytest.raises(DataFormatError, match=r"expected \(D, H, W\).*got \(2, 3, 8, 8, 8\)"):
        reconstruction_metrics(np.zeros((2, 3, 8, 8, 8)), np.zeros((2, 3, 8, 8, 8)))
    with pytest.raises(DataFormatError, match="spatial size >= 3"):
        reconstruction_metrics(np.zeros((2, 8, 8)), np.zeros((2, 8, 8))[None])


def test_classification_auc_is_one_rule_for_every_case() -> None:
    from sklearn.metrics import roc_auc_score

    from transmri.evaluation.metrics import classification_auc

    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(3), size=30)
    y = np.arange(30) % 3
    ovr = roc_auc_score(y, p, multi_class="ovr", average="macro")
    assert classification_auc(y, p) == pytest.approx(ovr)
    # class 2 absent: the mean over the present classes, probabilities as given
    y2 = np.arange(30) % 2
    expected = np.mean([roc_auc_score(y2 == c, p[:, c]) for c in (0, 1)])
    assert classification_auc(y2, p) == pytest.approx(expected)
    report = classification_metrics(y2, p, classes=["a", "b", "c"], n_boot=0)
    assert report.point["auc"] == pytest.approx(expected)
    assert any("no sample of class 'c'" in n and "present" in n for n in report.notes)
    # binary: the AUC of column 1; unlabelled (-1) scans ignored; one class: nan
    b = np.stack([1 - p[:, 0], p[:, 0]], axis=1)
    assert classification_auc(y2, b) == pytest.approx(roc_auc_score(y2, b[:, 1]))
    assert classification_auc(np.r_[y2, -1], np.r_[b, [[0.5, 0.5]]]) == classification_auc(y2, b)
    assert math.isnan(classification_auc(np.zeros(5, int), b[:5]))
