"""Tests of transmri.evaluation.plots (and the safe figure write of _files)."""

from __future__ import annotations

import struct
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from transmri import _files
from transmri.errors import ConfigError, DataFormatError
from transmri.evaluation.plots import (
    orthogonal_slices,
    plot_bottleneck_histogram,
    plot_confusion_matrix,
    plot_history,
    plot_learning_curve,
    plot_pca,
    plot_reconstructions,
    plot_roc,
    plot_tsne,
    show_sample,
    summarize_comparison,
)

RNG = np.random.default_rng(0)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def check_saved(fig: Figure, path: Path) -> None:
    """The figure is returned, saved at FIGURE_DPI, not left open in pyplot."""
    assert isinstance(fig, Figure)
    assert path.is_file() and path.stat().st_size > 1000
    width, height = fig.get_size_inches() * _files.FIGURE_DPI
    assert png_size(path) == (round(width), round(height))
    assert plt.get_fignums() == []
    assert not list(path.parent.glob(".*.tmp"))


def test_plot_history_one_panel_per_metric(tmp_path: Path) -> None:
    history = pd.DataFrame(
        {
            "epoch": [1, 2, 3],
            "lr": [1e-3, 5e-4, 1e-4],
            "train_loss": [1.0, 0.6, 0.4],
            "val_loss": [1.1, 0.8, 0.7],
            "val_auc": [0.6, 0.7, 0.75],
            "note": ["a", "b", "c"],  # not numeric: ignored
        }
    )
    fig = plot_history(history, path=tmp_path / "history.png")
    check_saved(fig, tmp_path / "history.png")
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert sorted(ax.get_title() for ax in visible) == ["auc", "loss", "lr"]
    loss = next(ax for ax in visible if ax.get_title() == "loss")
    assert [line.get_label() for line in loss.get_lines()] == ["train_loss", "val_loss"]
    with pytest.raises(DataFormatError, match="non-empty table"):
        plot_history(pd.DataFrame())


def test_plot_tsne_and_pca(tmp_path: Path) -> None:
    emb = RNG.standard_normal((40, 2, 4))  # flattened per sample
    labels = np.repeat(["CN", "AD"], 20)
    fig = plot_tsne(emb, labels, color_by=np.tile(["M", "F"], 20), path=tmp_path / "tsne.png")
    check_saved(fig, tmp_path / "tsne.png")
    assert len([ax for ax in fig.axes if ax.get_legend()]) == 2
    assert "perplexity adapted from 30 to 13" in fig.get_suptitle()  # (40 - 1) / 3
    fig = plot_pca(emb, labels, color_by=np.arange(40.0), path=tmp_path / "pca.png")
    check_saved(fig, tmp_path / "pca.png")
    assert fig.axes[0].get_xlabel().startswith("PC 1 (")


def test_plot_tsne_adapts_perplexity_to_few_samples() -> None:
    fig = plot_tsne(RNG.standard_normal((7, 5)), np.arange(7) % 2, perplexity=30)
    assert "perplexity adapted from 30 to 2" in fig.get_suptitle()
    with pytest.raises(DataFormatError, match=r"at least 3 samples.*got 2"):
        plot_tsne(RNG.standard_normal((2, 5)), [0, 1])
    with pytest.raises(DataFormatError, match=r"one label per embedding, shape \(7,\), got \(6,\)"):
        plot_tsne(RNG.standard_normal((7, 5)), np.arange(6))


def test_bottleneck_histogram_annotates_near_zero_share(tmp_path: Path) -> None:
    dense = RNG.random((20, 100)) + 0.5
    sparse = dense.copy()
    sparse[:, :70] = 0.0  # 70 % of the units are off
    fig = plot_bottleneck_histogram(dense, other=sparse, path=tmp_path / "hist.png")
    check_saved(fig, tmp_path / "hist.png")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["without L1", "with L1"]
    notes = [ax.texts[0].get_text() for ax in fig.axes]
    assert notes[0].startswith("near zero: 0.0%")
    assert notes[1].startswith("near zero: 70.0%")
    by_class = plot_bottleneck_histogram(dense, labels=np.repeat(["a", "b"], 10))
    assert [t.get_text() for t in by_class.axes[0].get_legend().get_texts()] == ["a", "b"]


def test_reconstructions_confusion_roc_sample(tmp_path: Path) -> None:
    x = RNG.random((4, 1, 10, 12, 10))
    fig = plot_reconstructions(x, x * 0.9, n=2, path=tmp_path / "rec.png")
    check_saved(fig, tmp_path / "rec.png")
    assert len(fig.axes) == 12  # 2 subjects x (3 input + 3 reconstruction slices)
    cm = np.array([[5, 1], [2, 4]])
    fig = plot_confusion_matrix(cm, ["CN", "AD"], path=tmp_path / "cm.png")
    check_saved(fig, tmp_path / "cm.png")
    assert "5\n83%" in [t.get_text() for t in fig.axes[0].texts]
    y = np.array(["CN", "AD"] * 10)
    p1 = np.where(y == "AD", 0.8, 0.3)
    fig = plot_roc(y, p1, ["CN", "AD"], path=tmp_path / "roc.png")
    check_saved(fig, tmp_path / "roc.png")
    assert fig.axes[0].get_legend().get_texts()[0].get_text() == "AD (AUC 1.000)"
    fig = show_sample(x[0], title="subject 0", path=tmp_path / "sample.png")
    check_saved(fig, tmp_path / "sample.png")
    with pytest.raises(DataFormatError, match=r"cm: expected shape \(3, 3\)"):
        plot_confusion_matrix(cm, ["a", "b", "c"])
    with pytest.raises(DataFormatError, match=r"expected a 3D volume.*\(2, 10, 12, 10\)"):
        show_sample(x[:2, 0])


def test_roc_multiclass_and_one_class() -> None:
    y = np.array([0, 1, 2] * 5)
    p = np.eye(3)[y] * 0.6 + 0.4 / 3
    fig = plot_roc(y, p, ["a", "b", "c"])
    assert len(fig.axes[0].get_legend().get_texts()) == 3
    fig = plot_roc(np.zeros(4, int), np.full(4, 0.5), ["neg", "pos"])
    assert "undefined" in fig.axes[0].get_legend().get_texts()[0].get_text()


def test_orthogonal_slices_shapes() -> None:
    vol = np.arange(4 * 5 * 6).reshape(4, 5, 6)
    sag, cor, axi = orthogonal_slices(vol)
    assert (sag.shape, cor.shape, axi.shape) == ((6, 5), (6, 4), (5, 4))
    np.testing.assert_array_equal(sag, vol[2].T)


def comparison_frame() -> pd.DataFrame:
    rows = []
    for method, base in (("scratch", 0.6), ("transfer", 0.7)):
        for n_train in (10, 20):
            for repeat, noise in enumerate((-0.02, 0.0, 0.02)):
                rows.append(
                    {
                        "method": method,
                        "n_train": n_train,
                        "repeat": repeat,
                        "auc": base + noise + n_train / 1000,
                        "balanced_accuracy": base,
                    }
                )
    return pd.DataFrame(rows)


def test_summarize_comparison_and_learning_curve(tmp_path: Path) -> None:
    summary = summarize_comparison(comparison_frame())
    assert len(summary) == 4
    row = summary[(summary.method == "transfer") & (summary.n_train == 20)].iloc[0]
    assert row["n_repeats"] == 3
    assert row["auc_mean"] == pytest.approx(0.72)
    # t interval: mean +- t(0.975, 2) * sd / sqrt(3), sd = 0.02
    assert row["auc_high"] - row["auc_mean"] == pytest.approx(
        4.302653 * 0.02 / np.sqrt(3), rel=1e-4
    )
    fig = plot_learning_curve(comparison_frame(), metric="auc", path=tmp_path / "curve.png")
    check_saved(fig, tmp_path / "curve.png")
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["scratch", "transfer"]
    assert len(ax.collections) == 2  # one band per method
    with pytest.raises(DataFormatError, match=r"missing \['n_train'\]"):
        plot_learning_curve(comparison_frame().drop(columns="n_train"))
    with pytest.raises(ConfigError, match="ci: expected"):
        summarize_comparison(comparison_frame(), ci=0)


def test_failed_save_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fig = show_sample(RNG.random((6, 6, 6)))

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(fig, "savefig", broken)
    with pytest.raises(OSError, match="disk full"):
        _files.save_figure(fig, tmp_path / "out.png")
    assert list(tmp_path.iterdir()) == []


def test_summary_gives_proportions_wilson_and_counts_no_interval() -> None:
    frame = comparison_frame().assign(
        converged=[True, True, False] * 4, n_test=18, auc=lambda f: f["auc"] + 0.29
    )
    summary = summarize_comparison(frame, metrics=["auc", "converged", "n_test"])
    row = summary[(summary.method == "transfer") & (summary.n_train == 20)].iloc[0]
    assert row["converged_mean"] == pytest.approx(2 / 3)
    # Wilson 95% interval of 2 of 3, inside [0, 1] (a t-interval gives [-0.77, 2.10])
    assert (row["converged_low"], row["converged_high"]) == pytest.approx(
        (0.2077, 0.9385), abs=1e-3
    )
    assert row["n_test_mean"] == 18 and np.isnan(row["n_test_low"]) and np.isnan(row["n_test_high"])
    assert row["auc_high"] == 1.0  # 1.01 +- ...: clipped to the range of AUC


def test_one_training_size_gives_a_dot_plot_not_a_line() -> None:
    frame = comparison_frame()
    fig = plot_learning_curve(frame[frame.n_train == 10], metric="auc", title="Transfer comparison")
    ax = fig.axes[0]
    assert not [line for line in ax.get_lines() if len(line.get_xdata()) > 1]  # no line drawn
    assert [t.get_text() for t in ax.get_xticklabels()] == ["scratch", "transfer"]
    assert ax.get_title().startswith("Transfer comparison\nauc at N=10 (one training size")
