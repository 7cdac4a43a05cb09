"""Tests of transmri.evaluation.report."""

from __future__ import annotations

import base64
import html
import json
import re
import struct
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from transmri.errors import DataFormatError
from transmri.evaluation.report import build_report

# In page order: the answer first, the evidence next, the bookkeeping last.
SECTIONS = ("summary", "comparison", "metrics", "history", "embeddings", "figures", "data", "run")


def images(page: str) -> list[bytes]:
    found = re.findall(r'<img src="data:image/png;base64,([^"]+)"', page)
    return [base64.b64decode(data, validate=True) for data in found]


def test_full_run_folder_gives_every_section(fake_run: Callable[..., Path]) -> None:
    run = fake_run()
    path = build_report(run)
    assert path == run / "report.html"
    page = path.read_text(encoding="utf-8")
    starts = [page.index(f'<section id="{section}">') for section in SECTIONS]
    assert starts == sorted(starts)
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
    assert "<figcaption>Sample scan, this classifier run (sample_scan.png)</figcaption>" in page
    assert "<figcaption>Training curves of this classifier run (history.csv)</figcaption>" in page
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
    assert (
        "<figcaption>Confusion matrix test, this classifier run (confusion_matrix_test.png)"
        "</figcaption>" in page
    )


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


def comparison_rows(means: dict[str, list[float]], *, n_train: int = 40) -> pd.DataFrame:
    """``comparison.csv`` rows: one per repeat of each method, AUC as given."""
    return pd.DataFrame(
        [
            {"method": method, "n_train": n_train, "repeat": i, "auc": auc, "n_test": 60}
            for method, aucs in means.items()
            for i, auc in enumerate(aucs)
        ]
    )


def summary_of(page: str) -> str:
    start = page.index('<section id="summary">')
    return page[start : page.index("</section>", start)]


def sentences(summary: str) -> list[str]:
    """The summary's verdicts as plain text (the conclusion is in bold)."""
    verdicts = re.search(r'<ul class="verdicts">(.*?)</ul>', summary)
    assert verdicts is not None
    items = re.findall(r"<li>(.*?)</li>", verdicts.group(1))
    return [html.unescape(re.sub(r"</?strong>", "", item)) for item in items]


def test_summary_comes_first_and_metadata_last_in_details(fake_run: Callable[..., Path]) -> None:
    page = build_report(fake_run()).read_text()
    summary = page.index('<section id="summary">')
    assert page.index("Synthetic data.") < summary
    assert summary < page.index("<h2>Transfer comparison</h2>") < page.index("model.code_size")
    provenance = page[page.index("<h1>") : summary]
    assert "Run folder <code>run</code>" in provenance
    assert "created 2025-01-01 00:00 UTC" in provenance and "transmri 0.1.0" in provenance
    # run metadata and configuration: collapsed <details>, each holding its table
    assert page.count("<details>") == page.count("</details>") == 2
    assert "<details open" not in page
    run = page[page.index('<section id="run">') :]
    config = run.index("<summary>Configuration (")
    assert config < run.index("model.code_size") < run.index("</details>", config)
    assert run.index("<summary>Run metadata (") < run.index("transmri_version")
    # per training size: a table with the best mean in bold, and one sentence
    summary_html = summary_of(page)
    for n in (8, 16, 32):
        assert f"<caption>N = {n} training scans</caption>" in summary_html
        assert f"At N={n}, the best transfer method, transfer (method &#x27;transfer&#x27;)" in (
            summary_html
        )
    assert len(sentences(summary_html)) == 3
    assert summary_html.count("<strong>transfer</strong>") == 3
    assert all("paired difference vs scratch" in s for s in sentences(summary_html))
    # the single model's headline test metrics, with the small test set flagged
    assert "Test split (metrics_test.json): 16 scans of 8 subjects" in summary_html
    assert "n=16 test scans: intervals are wide." in summary_html


def test_overlapping_intervals_do_not_hide_a_paired_difference(
    fake_run: Callable[..., Path],
) -> None:
    # finetune is 0.09 above scratch in every repeat: per-method intervals overlap,
    # the paired interval is far from 0, so the verdict is "better", not "no clear difference"
    run = fake_run(complete=False)
    comparison_rows(
        {"finetune": [0.64, 0.71, 0.78, 0.71], "scratch": [0.55, 0.62, 0.69, 0.61]}
    ).to_csv(run / "comparison.csv", index=False)
    summary = summary_of(build_report(run).read_text())
    [text] = sentences(summary)
    assert text.startswith(
        "At N=40, the best transfer method, finetune (fine-tuning the pretrained encoder), "
        "AUC 0.71 [0.62, 0.80]; paired difference vs scratch +0.09 [+0.08, +0.10] "
        "over 4 paired repeats"
    )
    assert "finetune: better than scratch" in text
    assert "no clear difference" not in summary
    assert "<strong>finetune</strong>" in summary and "<strong>scratch</strong>" not in summary


def test_verdict_compares_with_scratch_ridge_and_random_control(
    fake_run: Callable[..., Path],
) -> None:
    run = fake_run(complete=False)
    comparison_rows(
        {
            "finetune": [0.73, 0.75, 0.77],
            "linear_probe": [0.60, 0.62, 0.64],
            "scratch": [0.80, 0.81, 0.82],
            "ridge": [0.68, 0.76, 0.79],
            "regional_random": [0.50, 0.55, 0.60],
        }
    ).to_csv(run / "comparison.csv", index=False)
    summary = summary_of(build_report(run).read_text())
    [text] = sentences(summary)
    assert "the best transfer method, finetune" in text
    assert "vs scratch -0.06 [-0.08, -0.04] over 3 paired repeats" in text
    assert "vs ridge +0.01 [" in text and "vs the random-weight control +0.20 [" in text
    assert text.endswith(
        "finetune: worse than scratch; no clear difference from ridge (the paired interval "
        "includes 0); better than the random-weight control."
    )
    # the best was picked among two transfer methods: said once
    assert (
        summary.count(
            "Multiplicity: at each N the best transfer method is picked among 2 "
            "(finetune, linear_probe)"
        )
        == 1
    )


def test_without_scratch_it_says_so_instead_of_the_runner_up(
    fake_run: Callable[..., Path],
) -> None:
    run = fake_run(complete=False)
    comparison_rows({"finetune": [0.60, 0.61, 0.62], "linear_probe": [0.80, 0.81, 0.82]}).to_csv(
        run / "comparison.csv", index=False
    )
    [text] = sentences(summary_of(build_report(run).read_text()))
    assert text == (
        "At N=40, the best transfer method, linear_probe (a linear probe on the frozen encoder), "
        "AUC 0.81 [0.79, 0.83]; no scratch, ridge or random-weight row to compare it with: "
        "no comparison with a baseline is possible."
    )
    run2 = fake_run(complete=False)
    comparison_rows({"finetune": [0.70, 0.71, 0.72], "ridge": [0.60, 0.61, 0.62]}).to_csv(
        run2 / "comparison.csv", index=False
    )
    [text] = sentences(summary_of(build_report(run2).read_text()))
    assert text.endswith(
        "finetune: better than ridge; not compared with training from scratch: "
        "this run has no scratch row."
    )


def test_single_repeat_claims_nothing(fake_run: Callable[..., Path]) -> None:
    run = fake_run(complete=False)
    comparison_rows({"finetune": [0.9], "scratch": [0.5]}, n_train=12).assign(n_test=12).to_csv(
        run / "comparison.csv", index=False
    )
    summary = summary_of(build_report(run).read_text())
    assert "0.90 (no interval)" in summary
    [text] = sentences(summary)
    assert "vs scratch +0.40 (one paired repeat, no interval)" in text
    assert text.endswith("finetune: no difference from scratch can be claimed.")
    assert "n=12 test scans: each score is noisy and intervals are wide." in summary


def test_intervals_stay_in_range_and_counts_carry_none(fake_run: Callable[..., Path]) -> None:
    run = fake_run(complete=False)
    rows = comparison_rows({"finetune": [0.88, 0.99, 1.0], "scratch": [0.5, 0.6, 0.7]})
    rows = rows.assign(converged=[True, True, False, True, True, True], n_fit=30, n_val=10)
    rows.to_csv(run / "comparison.csv", index=False)
    page = build_report(run).read_text()
    summary = summary_of(page)
    assert "0.96 [0.79, 1.00]" in summary  # the t-interval would reach 1.12
    comparison = page[page.index('<section id="comparison">') :]
    every = re.search(r"<h3>Every metric</h3>.*?</table>", comparison)
    assert every is not None
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", every.group(0))
    # method, N, repeats, auc, n_test, converged, n_fit, n_val
    assert cells[:8] == ["finetune", "40", "3", "0.957 [0.791, 1.000]", "60", "2 of 3", "30", "10"]
    assert "[60.000" not in comparison and "-0." not in every.group(0)
    assert "finetune did not converge in 1 of 3 repeat(s) at N=40" in summary


def test_differences_csv_appears_in_the_page(fake_run: Callable[..., Path]) -> None:
    run = fake_run(complete=False)
    comparison_rows({"finetune": [0.7, 0.8, 0.9], "scratch": [0.5, 0.6, 0.7]}).to_csv(
        run / "comparison.csv", index=False
    )
    pd.DataFrame(
        [{"method": "finetune", "reference": "scratch", "n_train": 40, "n_pairs": 3,
          "auc_diff": 0.2, "auc_low": -0.4, "auc_high": 1.3, "auc_wins": 1.0}]
    ).to_csv(run / "differences.csv", index=False)  # fmt: skip
    page = build_report(run).read_text()
    block = page[page.index("<h3>Paired differences (differences.csv)</h3>") :]
    row = re.findall(r"<td[^>]*>([^<]*)</td>", block[: block.index("</table>")])
    assert row == ["finetune", "scratch", "40", "3", "+0.200 [-0.400, +1.000] (higher in 3 of 3)"]


def test_summary_without_results_says_so(fake_run: Callable[..., Path]) -> None:
    page = build_report(fake_run(complete=False)).read_text()
    assert "No comparison.csv, metrics_test.json or reconstruction_test.json" in summary_of(page)


def test_single_model_summary_gives_headline_test_metrics(fake_run: Callable[..., Path]) -> None:
    run = fake_run()
    (run / "comparison.csv").unlink()
    summary = summary_of(build_report(run).read_text())
    assert "Transfer benchmark" not in summary and "<h3>" not in summary
    assert "Test split (metrics_test.json): 16 scans of 8 subjects" in summary
    names = re.findall(r"<tr><td>([a-zA-Z ]+)</td>", summary)
    assert names == ["AUC", "balanced accuracy", "accuracy", "sensitivity", "specificity"]
    assert re.search(r"<td>AUC</td><td>0\.\d\d</td><td>\[0\.\d\d, [01]\.\d\d\]</td>", summary)
    assert "n=16 test scans: intervals are wide." in summary


def test_experiment_figures_say_which_run_they_show(fake_run: Callable[..., Path]) -> None:
    run = fake_run()
    manifest = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**manifest, "kind": "experiment"}))
    (run / "figures" / "sample_scan.png").rename(run / "figures" / "pretraining_curves.png")
    page = build_report(run).read_text()
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", page)
    assert (
        "Pretraining run (pretrain/history.csv): training curves of the source model "
        "(pretraining_curves.png)" in captions
    )
    assert (
        "Training curves of the fine-tuned classifier (fine-tuning step) (history.csv)" in captions
    )
    assert "ROC, test, the fine-tuned classifier (fine-tuning step)" in captions
    assert any(c.startswith("Transfer comparison (comparison.csv), every method") for c in captions)
    assert "The trained model on the test split: the fine-tuned classifier" in page


def test_equal_outcomes_are_said_once(fake_run: Callable[..., Path]) -> None:
    run = fake_run(complete=False)
    comparison_rows(
        {"finetune": [0.9], "scratch": [0.5], "ridge": [0.6], "regional_random": [0.7]}
    ).to_csv(run / "comparison.csv", index=False)
    [text] = sentences(summary_of(build_report(run).read_text()))
    assert text.endswith(
        "finetune: no difference from scratch, ridge or the random-weight control can be claimed."
    )


def test_skipped_rows_are_listed_in_the_data_section(fake_run: Callable[..., Path]) -> None:
    run = fake_run(synthetic=False, complete=False)
    pd.DataFrame(
        {
            "cohort": ["target", "target", "source"],
            "item": ["/d/a.nii.gz", "/d/b.nii.gz", "/d/c.nii.gz"],
            "reason": ["data.target.filter: site 'IOP' not kept"] * 2 + ["no scan"],
        }
    ).to_csv(run / "skipped.csv", index=False)
    page = build_report(run).read_text()
    data = page[page.index('<section id="data">') :]
    assert "3 scan(s) or row(s) skipped, every one listed in skipped.csv" in data
    assert "data.target.filter: site &#x27;IOP&#x27; not kept" in data and "/d/c.nii.gz" in data
