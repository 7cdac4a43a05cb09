"""The Learner's figures and report: PNGs in figures/, the right data, clear errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from transmri.data import DataBunch
from transmri.errors import ConfigError, NotFittedError
from transmri.evaluation import read_metrics
from transmri.models import ConvAutoEncoder, ConvEncoder, EncoderClassifier
from transmri.training import Learner

MakeData = Callable[..., DataBunch]
SMALL = (4, 8, 8)
PNG = b"\x89PNG\r\n\x1a\n"


def _clf(data: DataBunch, path: Path) -> Learner:
    torch.manual_seed(0)
    model = EncoderClassifier(ConvEncoder(channels=SMALL), data.num_classes)
    return Learner(data, model, path, model_type="classifier", batch_size=4, progress=False)


def _ae(data: DataBunch, path: Path) -> Learner:
    torch.manual_seed(0)
    return Learner(data, ConvAutoEncoder(channels=SMALL), path, batch_size=4, progress=False)


@pytest.fixture
def data(make_data: MakeData) -> DataBunch:
    return make_data(n=16)


@pytest.fixture
def clf(data: DataBunch, tmp_path: Path) -> Learner:
    return _clf(data, tmp_path / "clf").fit(2, 3e-3)


def _png(path: Path) -> bytes:
    assert path.is_file(), f"{path} was not written"
    content = path.read_bytes()
    assert content.startswith(PNG)
    return content


def test_every_plot_needs_a_fitted_model(data: DataBunch, tmp_path: Path) -> None:
    learner = _clf(data, tmp_path / "run")
    calls: list[Callable[[], Any]] = [
        learner.plot_history,
        learner.plot_tsne,
        learner.plot_pca,
        learner.plot_bottleneck_histogram,
        learner.plot_reconstructions,
        learner.plot_confusion_matrix,
        learner.plot_roc,
        learner.plot_saliency,
        learner.report,
    ]
    for call in calls:
        with pytest.raises(NotFittedError, match=r"call fit\(\) \(or load\(\)\) first"):
            call()
    assert not (tmp_path / "run").exists()


def test_history_figure_and_custom_name(clf: Learner) -> None:
    figure = clf.plot_history()
    assert isinstance(figure, Figure)
    _png(clf.path / "figures" / "history.png")
    clf.plot_history(name="curves")
    _png(clf.path / "figures" / "curves.png")
    with pytest.raises(ConfigError, match=r"name: expected letters.*'\.\./x'"):
        clf.plot_history(name="../x")


def test_history_of_a_loaded_model_is_explained(clf: Learner, data: DataBunch) -> None:
    clf.save()
    fresh = _clf(data, clf.path)
    fresh.load()
    with pytest.raises(NotFittedError, match=r"no training history.*history\.csv"):
        fresh.plot_history()


def test_projections_use_the_codes_and_table_columns(clf: Learner, data: DataBunch) -> None:
    figure = clf.plot_tsne("test", color_by="sex")
    _png(clf.path / "figures" / "tsne_test.png")
    assert len(figure.axes) == 2  # label panel + "sex" panel
    legend = figure.axes[1].get_legend()
    assert {t.get_text() for t in legend.get_texts()} == set(data.split_table("test").frame["sex"])
    labels = {t.get_text() for t in figure.axes[0].get_legend().get_texts()}
    assert labels <= set(data.classes)
    pca = clf.plot_pca("val", color_by="age")
    _png(clf.path / "figures" / "pca_val.png")
    assert len(pca.axes) == 2 and "PC 1" in pca.axes[0].get_xlabel()
    with pytest.raises(ConfigError, match=r"color_by: expected a column of the test table.*'site'"):
        clf.plot_tsne(color_by="site")


def test_bottleneck_histogram_side_by_side(clf: Learner, data: DataBunch, tmp_path: Path) -> None:
    single = clf.plot_bottleneck_histogram()
    assert len(single.axes) == 1
    other = _ae(data, tmp_path / "ae_l1").fit(1, l1_reg=1e-3)
    both = clf.plot_bottleneck_histogram(other, names=("plain", "L1"))
    assert [ax.get_title() for ax in both.axes] == ["plain", "L1"]
    # the histogram counts the code's units: every element of the (unpooled) code map
    n_units = int(np.prod(clf.model.code_shape(data.input_shape)))
    counts = sum(p.get_height() for p in single.axes[0].patches)
    assert counts == n_units
    _png(clf.path / "figures" / "bottleneck_test.png")
    untrained = _ae(data, tmp_path / "untrained")
    with pytest.raises(NotFittedError):
        clf.plot_bottleneck_histogram(untrained)


def test_reconstructions_only_for_autoencoders(
    clf: Learner, data: DataBunch, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=r"returns no 'reconstruction'.*'classifier'"):
        clf.plot_reconstructions()
    ae = _ae(data, tmp_path / "ae").fit(1)
    figure = ae.plot_reconstructions("val", n=2)
    assert len(figure.axes) == 2 * 6
    _png(ae.path / "figures" / "reconstructions_val.png")
    with pytest.raises(ConfigError, match=r"returns no 'logits'"):
        ae.plot_confusion_matrix()
    with pytest.raises(ConfigError, match=r"plot_saliency: the model returns no 'logits'"):
        ae.plot_saliency()


def test_confusion_matrix_and_roc_match_predictions(clf: Learner) -> None:
    figure = clf.plot_confusion_matrix("test")
    predictions = clf.predict("test")
    cm = predictions.confusion_matrix()
    texts = [t.get_text() for t in figure.axes[0].texts]
    assert [int(t.split("\n")[0]) for t in texts] == [int(v) for v in cm.ravel()]
    _png(clf.path / "figures" / "confusion_matrix_test.png")
    roc = clf.plot_roc("test")
    assert "AUC" in roc.axes[0].get_legend().get_texts()[0].get_text()
    _png(clf.path / "figures" / "roc_test.png")


@pytest.mark.parametrize("method", ["occlusion", "gradient"])
def test_saliency_of_one_scan(clf: Learner, data: DataBunch, method: str) -> None:
    clf.model.train()
    figure = clf.plot_saliency(1, "test", method=method)
    assert clf.model.training  # the mode was restored
    subject = data.split_table("test").subjects[1]
    assert method in figure.get_suptitle() and subject in figure.get_suptitle()
    _png(clf.path / "figures" / f"saliency_test_1_{method}.png")
    with pytest.raises(ConfigError, match=r"index: expected a position in 0\.\.3"):
        clf.plot_saliency(99)
    with pytest.raises(ConfigError, match=r"method: expected one of 'occlusion', 'gradient'"):
        clf.plot_saliency(method="lime")


def test_report_writes_what_the_report_reads(clf: Learner, data: DataBunch) -> None:
    clf.evaluate("test")  # a metrics file in evaluate()'s own format is replaced
    frame = data.table.frame
    data.table = data.table.with_frame(frame.assign(synthetic=True))
    html = clf.report(n_boot=50)
    run = clf.path
    assert html == run / "report.html" and html.is_file()
    for split in ("val", "test"):
        predictions = pd.read_csv(run / f"predictions_{split}.csv")
        assert list(predictions["subject"]) == list(data.subjects(split))
        metrics = read_metrics(run / f"metrics_{split}.json")
        assert metrics.n_boot == 50 and metrics.n_samples == len(predictions)
        assert metrics.point["auc"] == pytest.approx(clf.evaluate(split)["auc"])
        embeddings = pd.read_csv(run / f"embeddings_{split}.csv")
        assert list(embeddings.columns[:2]) == ["subject", "label"]
        assert embeddings.shape == (len(predictions), 2 + 8)  # pooled code of 8 channels
    stats = pd.read_csv(run / "data_stats.csv")
    assert list(stats["split"]) == ["train", "val", "test"]
    assert json.loads((run / "run.json").read_text())["synthetic"] is True
    page = html.read_text()
    assert 'id="synthetic"' in page and "metrics_test.json" in page and "t-SNE" in page


def test_report_of_an_autoencoder(data: DataBunch, tmp_path: Path) -> None:
    ae = _ae(data, tmp_path / "ae").fit(1)
    out = ae.report(splits=("test",), path=tmp_path / "ae.html")
    assert out == tmp_path / "ae.html" and out.is_file()
    scores = json.loads((ae.path / "reconstruction_test.json").read_text())
    assert scores["mse"] == pytest.approx(ae.evaluate("test")["mse"], rel=1e-4)
    assert 0 < scores["ssim"] <= 1
    _png(ae.path / "figures" / "reconstructions_test.png")
    assert not (ae.path / "predictions_test.csv").exists()
    assert (ae.path / "embeddings_test.csv").is_file()
    assert "synthetic" not in json.loads((ae.path / "run.json").read_text())
    with pytest.raises(ConfigError, match=r"splits: expected one of"):
        ae.report(splits=("holdout",))
