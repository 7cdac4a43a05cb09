"""Tests of transmri.evaluation.report."""

from __future__ import annotations

import base64
import json
import re
import struct
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from transmri.errors import DataFormatError
from transmri.evaluation.report import build_report

SECTIONS = ("run", "data", "history", "metrics", "embeddings", "comparison", "figures")


def images(page: str) -> list[bytes]:
    found = re.findall(r'<img src="data:image/png;base64,([^"]+)"', page)
    return [base64.b64decode(data, validate=True) for data in found]


def test_full_run_folder_gives_every_section(fake_run: Callable[..., Path]) -> None:
    run = fake_run()
    path = build_report(run)
    assert path == run / "report.html"
    page = path.read_text(encoding="utf-8")
    for section in SECTIONS:
        assert f'<section id="{section}">' in page
    assert 'id="synthetic"' in page and "Synthetic data." in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page  # config text escaped
    assert "model.code_size" in page
    # metrics of the test split from the JSON, of val computed from its predictions
    assert "metrics_test.json: 16 scans of 8 subjects" in page
    assert "computed from predictions_val.csv: 12 scans of 6 subjects" in page
    # curves, 2 x (confusion, ROC), 2 x (t-SNE, PCA), 2 learning curves, 1 figure file
    pngs = images(page)
    assert len(pngs) == 1 + 4 + 4 + 2 + 1
    for png in pngs:
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        width, height = struct.unpack(">II", png[16:24])
        assert width > 100 and height > 100
    assert "<figcaption>Sample scan</figcaption>" in page
    assert "transfer" in page and "scratch" in page
    assert not re.search(r"(src|href)=\"(https?:|//)", page)
    assert "<script" not in page
    assert not list(run.glob(".*.tmp"))


def test_minimal_run_folder_says_what_is_absent(fake_run: Callable[..., Path]) -> None:
    run = fake_run(synthetic=False, complete=False)
    out = build_report(run, path=run / "out" / "r.html", title="My <run>")
    page = out.read_text()
    assert "<title>My &lt;run&gt;</title>" in page
    assert 'id="synthetic"' not in page
    assert "No history.csv: curves are not shown." in page
    assert "No metrics_&lt;split&gt;.json or predictions_&lt;split&gt;.csv" in page
    assert "No embeddings_&lt;split&gt;.csv" in page
    assert "No comparison.csv" in page
    assert "No PNG files in figures/." in page
    assert "No data_stats.csv or data.json" in page
    assert images(page) == []


def test_existing_figures_are_not_redrawn(fake_run: Callable[..., Path]) -> None:
    run = fake_run()
    (run / "figures").mkdir(exist_ok=True)
    source = (run / "figures" / "sample_scan.png").read_bytes()
    for name in ("roc_test.png", "confusion_matrix_test.png", "tsne_test.png", "pca_test.png"):
        (run / "figures" / name).write_bytes(source)
    (run / "figures" / "broken.png").write_bytes(b"not a png")
    page = build_report(run).read_text()
    assert len(images(page)) == 1 + 2 + 2 + 2 + 5  # test split's four drawn ones come from files
    assert "broken.png: not a PNG file, skipped." in page
    assert "<figcaption>Confusion matrix test</figcaption>" in page


def test_failure_leaves_no_half_written_report(fake_run: Callable[..., Path]) -> None:
    run = fake_run()
    before = b"<html>an earlier report</html>"
    (run / "report.html").write_bytes(before)
    (run / "metrics_test.json").write_text("{broken")
    with pytest.raises(DataFormatError, match=r"metrics_test\.json: expected JSON"):
        build_report(run)
    assert (run / "report.html").read_bytes() == before
    assert not list(run.glob(".*.tmp"))


def test_bad_inputs_name_the_file(fake_run: Callable[..., Path], tmp_path: Path) -> None:
    run = fake_run()
    pd.DataFrame({"subject": ["a"], "label": ["CN"], "prob_CN": [1.0]}).to_csv(
        run / "predictions_val.csv", index=False
    )
    with pytest.raises(DataFormatError, match=r"predictions_val\.csv: expected columns subject"):
        build_report(run)
    pd.DataFrame({"label": ["MCI"], "prob_CN": [0.5], "prob_AD": [0.5]}).to_csv(
        run / "predictions_val.csv", index=False
    )
    with pytest.raises(DataFormatError, match=r"predictions_val\.csv, column 'label'.*'MCI'"):
        build_report(run)
    (run / "predictions_val.csv").unlink()
    (run / "comparison.csv").write_text("method,auc\nx,0.5\n")
    with pytest.raises(DataFormatError, match=r"comparison: expected columns.*missing"):
        build_report(run)
    with pytest.raises(FileNotFoundError, match="run folder not found"):
        build_report(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"run\.json not found"):
        build_report(tmp_path / "empty")
    (tmp_path / "empty" / "run.json").write_text(json.dumps([1, 2]))
    with pytest.raises(DataFormatError, match="expected a JSON object, got list"):
        build_report(tmp_path / "empty")
