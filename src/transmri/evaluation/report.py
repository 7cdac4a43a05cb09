"""One self-contained HTML report of a run folder.

:func:`build_report` reads what a run folder holds (layout in
``docs/ARCHITECTURE.md``) and writes one HTML file: inline CSS, images as
base64 PNG data URIs, no script and no external resource, so it opens
offline and can be mailed. Only ``run.json`` is required; each other section
appears when its files exist and says plainly when they do not.

The page answers the question first. Its top holds the title, a banner when
the data are synthetic, one line of provenance and a **Summary**: for a
transfer benchmark (``comparison.csv``) one small table per training size
with each method's mean AUC, its 95% interval over repeats and the number
of repeats, the best mean in bold, and one sentence that names a winner only
when the intervals do not overlap; for a single model the headline test
metrics with their intervals. Then come the learning curve, the metrics,
training curves, confusion matrices and ROC, projections, figures and data
statistics; run metadata and the configuration come last, collapsed in
``<details>`` elements.

Files read (all in ``run_dir``):

- ``run.json``: ``kind``, ``created``, ``transmri_version``, ``config`` ...
  shown as tables. The data are declared synthetic when it (or ``data.json``)
  holds a key ``"synthetic": true`` at any depth.
- ``data_stats.csv`` (any table, shown as is) or ``data.json`` (shown as keys).
- ``history.csv``: curves through :func:`~transmri.evaluation.plots.plot_history`.
- ``metrics_<split>.json``: the format written by
  :func:`~transmri.evaluation.metrics.write_metrics`.
- ``reconstruction_<split>.json``: ``{"split", "n_samples", "mse", "psnr",
  "ssim"}`` (written by ``Learner.evaluate``/``Learner.report`` for models
  that reconstruct), shown as a table.
- ``predictions_<split>.csv``: ``subject, label, prob_<class>...``; gives the
  confusion matrix and ROC (unless ``figures/confusion_matrix_<split>.png`` /
  ``figures/roc_<split>.png`` exist) and the metrics when no JSON exists.
- ``embeddings_<split>.csv``: ``subject, label, e0 .. ek``; gives t-SNE and
  PCA (unless ``figures/tsne_<split>.png`` / ``figures/pca_<split>.png`` exist).
- ``figures/*.png``: embedded, captioned from the file name.
- ``comparison.csv``: ``method, n_train, repeat, auc, balanced_accuracy ...``
  (optional ``converged``, ``n_test`` and ``test_subjects_hash`` columns add
  notes to the summary).

Example:
    >>> build_report("runs/demo")  # doctest: +SKIP
    PosixPath('runs/demo/report.html')
"""

from __future__ import annotations

import datetime as _dt
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from transmri._validation import check_existing_dir, check_existing_file
from transmri.errors import DataFormatError
from transmri.evaluation._files import atomic_write_text
from transmri.evaluation._report_sections import (
    absent,
    comparison_section,
    data_section,
    embeddings_section,
    escape,
    figures_section,
    flatten,
    history_section,
    metrics_section,
    read_csv,
    read_json,
    section,
    table,
)
from transmri.evaluation.metrics import read_metrics
from transmri.evaluation.plots import summarize_comparison

__all__ = ["build_report"]

#: Below this many test scans the summary warns that intervals are wide.
_SMALL_TEST_SET = 30
#: The metric the summary compares methods on, first one found in ``comparison.csv``.
_SUMMARY_METRICS = ("auc", "balanced_accuracy", "accuracy")
_HEADLINE_METRICS = ("auc", "balanced_accuracy", "accuracy", "sensitivity", "specificity")
_METRIC_NAMES = {
    "auc": "AUC",
    "balanced_accuracy": "balanced accuracy",
    "accuracy": "accuracy",
    "sensitivity": "sensitivity",
    "specificity": "specificity",
    "f1": "F1",
}
_METHOD_NAMES = {
    "finetune": "fine-tuning the pretrained encoder",
    "scratch": "training from scratch",
    "linear_probe": "a linear probe on the frozen encoder",
    "regional_probe": "a regional linear probe on the frozen encoder",
    "regional_random": "a regional linear probe on a random encoder",
    "ridge": "a ridge classifier on voxels",
}
_REFERENCE_METHOD = "scratch"

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.2em auto;
       max-width: 1100px; color: #1d1d1f; line-height: 1.45; padding: 0 1em; }
h1 { margin: 0 0 .3em; font-size: 1.7em; }
h2 { margin-top: 2em; border-bottom: 1px solid #bbb; }
p.provenance { color: #555; font-size: .9em; margin: .2em 0 .6em; }
nav { font-size: .85em; color: #555; margin: .4em 0 1em; }
nav a { color: #2456a6; text-decoration: none; margin-right: .9em; }
table { border-collapse: collapse; margin: .8em 0; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f0f0f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { font-size: .85em; color: #555; }
pre { background: #f6f6f8; padding: .8em; overflow-x: auto; font-size: .8em; }
.absent { color: #777; font-style: italic; }
.banner { background: #fff3cd; border: 1px solid #e0c36b; padding: .5em 1em; margin: .4em 0; }
.note { color: #8a4b00; }
section#summary { background: #f7f9fc; border: 1px solid #d5deea; border-radius: 6px;
                  padding: .2em 1.2em .6em; }
section#summary h2 { margin-top: .5em; border: none; }
.tables { display: flex; flex-wrap: wrap; gap: 0 2em; align-items: flex-start; }
table.summary { font-size: 1em; background: #fff; }
table.summary caption { text-align: left; font-weight: 600; padding-bottom: .2em; }
table.summary tr.best td { background: #e6f2e6; }
.hint { color: #666; font-size: .85em; }
ul.verdicts { padding-left: 1.2em; font-size: 1.05em; }
ul.verdicts li { margin: .3em 0; }
ul.notes { padding-left: 1.2em; font-size: .9em; margin: .3em 0; }
details { margin: .6em 0; border: 1px solid #ddd; border-radius: 4px; padding: .3em .8em; }
details > summary { cursor: pointer; font-weight: 600; }
"""


@dataclass(frozen=True)
class _Estimate:
    """One method's mean metric at one training size, with its interval over repeats."""

    method: str
    mean: float
    low: float
    high: float
    n_repeats: int

    @property
    def has_interval(self) -> bool:
        return not (math.isnan(self.low) or math.isnan(self.high))

    def text(self) -> str:
        if math.isnan(self.mean):
            return "n/a"
        if not self.has_interval:
            return f"{self.mean:.2f} (no interval)"
        return f"{self.mean:.2f} [{self.low:.2f}, {self.high:.2f}]"


def _method_name(method: str) -> str:
    return _METHOD_NAMES.get(method, f"method '{method}'")


def _rank_key(estimate: _Estimate) -> float:
    return -estimate.mean if not math.isnan(estimate.mean) else math.inf


def _verdict(n_train: object, metric: str, estimates: Sequence[_Estimate]) -> tuple[str, str]:
    """One plain sentence comparing the best method with training from scratch.

    Without a ``scratch`` method the two best means are compared. A winner is
    named only when both have intervals and the intervals do not overlap.

    Returns:
        The sentence as ``(evidence, conclusion)``, to be joined by ": ".
    """
    label = _METRIC_NAMES.get(metric, metric)
    ranked = sorted(estimates, key=_rank_key)
    if len(ranked) == 1:
        only = ranked[0]
        return (
            f"At N={n_train}, only {_method_name(only.method)} was run: {label} {only.text()}",
            "nothing to compare it with.",
        )
    reference = next((e for e in ranked if e.method == _REFERENCE_METHOD), ranked[1])
    challenger = next(e for e in ranked if e is not reference)
    head = (
        f"At N={n_train}, {_method_name(challenger.method)}: {label} {challenger.text()} "
        f"vs {_method_name(reference.method)} {reference.text()}"
    )
    difference = challenger.mean - reference.mean
    if math.isnan(difference):
        return f"{head} ({label} undefined for one of them)", "no comparison possible."
    head += f" (difference {difference:+.2f}; "
    if not (challenger.has_interval and reference.has_interval):
        return head + "one repeat gives no interval)", "no clear difference can be claimed."
    if challenger.low <= reference.high and reference.low <= challenger.high:
        return head + "intervals overlap)", "no clear difference."
    winner = challenger if difference > 0 else reference
    return head + "intervals do not overlap)", f"{_method_name(winner.method)} does better."


def _summary_table(n_train: object, metric: str, estimates: Sequence[_Estimate]) -> str:
    ranked = sorted(estimates, key=_rank_key)
    best = ranked[0].mean
    rows = []
    for e in ranked:
        is_best = not math.isnan(best) and e.mean == best
        method = escape(e.method)
        hint = _METHOD_NAMES.get(e.method)
        if is_best:
            method, value = f"<strong>{method}</strong>", f"<strong>{escape(e.text())}</strong>"
        else:
            value = escape(e.text())
        if hint:
            method += f'<br><span class="hint">{escape(hint)}</span>'
        row_class = ' class="best"' if is_best else ""
        rows.append(
            f"<tr{row_class}><td>{method}</td>"
            f'<td class="num">{value}</td><td class="num">{e.n_repeats}</td></tr>'
        )
    label = escape(_METRIC_NAMES.get(metric, metric))
    return (
        f'<table class="summary"><caption>N = {escape(n_train)} training scans</caption>'
        f"<thead><tr><th>method</th><th>{label} [95% interval]</th><th>repeats</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _comparison_notes(frame: pd.DataFrame) -> list[str]:
    notes = []
    if "n_test" in frame.columns:
        sizes = pd.to_numeric(frame["n_test"], errors="coerce").dropna()
        if len(sizes) and sizes.min() < _SMALL_TEST_SET:
            n = int(sizes.min())
            notes.append(f"n={n} test scans: each score is noisy and intervals are wide.")
    if "test_subjects_hash" in frame.columns and frame["test_subjects_hash"].nunique() == 1:
        notes.append(
            "Every repeat is scored on the same test scans: the intervals show the "
            "variation of training, not of test-set sampling."
        )
    if "converged" in frame.columns:
        failed = frame[frame["converged"].astype(str).str.lower().isin(["false", "0", "0.0"])]
        for (method, n_train), group in failed.groupby(["method", "n_train"], sort=True):
            total = int(((frame["method"] == method) & (frame["n_train"] == n_train)).sum())
            notes.append(
                f"{method} did not converge in {len(group)} of {total} repeat(s) at "
                f"N={n_train} (see the notes column of comparison.csv)."
            )
    return notes


def _transfer_summary(path: Path) -> str:
    frame = read_csv(path)
    metric = next((m for m in _SUMMARY_METRICS if m in frame.columns), None)
    if metric is None:
        return absent(
            f"{path.name} has none of the columns {list(_SUMMARY_METRICS)}: "
            "no comparison to summarise."
        )
    summary = summarize_comparison(frame, metrics=[metric])
    tables, verdicts = [], []
    for n_train, group in summary.groupby("n_train", sort=True):
        estimates = [
            _Estimate(
                method=str(row["method"]),
                mean=float(row[f"{metric}_mean"]),
                low=float(row[f"{metric}_low"]),
                high=float(row[f"{metric}_high"]),
                n_repeats=int(row["n_repeats"]),
            )
            for row in group.to_dict(orient="records")
        ]
        tables.append(_summary_table(n_train, metric, estimates))
        verdicts.append(_verdict(n_train, metric, estimates))
    notes = _comparison_notes(frame)
    return (
        f"<p>Transfer benchmark ({escape(path.name)}): mean {escape(_METRIC_NAMES[metric])} "
        "over repeats with a 95% t-interval of the mean; best mean in bold.</p>"
        '<ul class="verdicts">'
        + "".join(f"<li>{escape(v)}: <strong>{escape(c)}</strong></li>" for v, c in verdicts)
        + "</ul>"
        + f'<div class="tables">{"".join(tables)}</div>'
        + _notes_html(notes)
    )


def _notes_html(notes: Sequence[str]) -> str:
    if not notes:
        return ""
    items = "".join(f'<li class="note">{escape(n)}</li>' for n in notes)
    return f'<ul class="notes">{items}</ul>'


def _test_summary(path: Path) -> str:
    report = read_metrics(path)
    names = [m for m in _HEADLINE_METRICS if m in report.point] or list(report.point)
    level = f"{report.ci:.0%}"
    rows = []
    for name in names:
        low, high = report.ci_low[name], report.ci_high[name]
        interval = "n/a" if math.isnan(low) or math.isnan(high) else f"[{low:.2f}, {high:.2f}]"
        estimate = report.point[name]
        shown = "n/a" if math.isnan(estimate) else f"{estimate:.2f}"
        rows.append([_METRIC_NAMES.get(name, name), shown, interval])
    notes = []
    if report.n_samples < _SMALL_TEST_SET:
        notes.append(f"n={report.n_samples} test scans: intervals are wide.")
    return (
        f"<p>Test split ({escape(path.name)}): {report.n_samples} scans of {report.n_groups} "
        f"subjects; {level} bootstrap intervals over subjects.</p>"
        + table(["metric", "estimate", f"{level} interval"], rows)
        + _notes_html(notes)
    )


def _reconstruction_summary(path: Path) -> str:
    data = read_json(path)
    found = data if isinstance(data, dict) else {}
    rows = [
        [name, f"{found[name]:.4g}"]
        for name in ("mse", "psnr", "ssim")
        if isinstance(found.get(name), int | float) and not isinstance(found.get(name), bool)
    ]
    if not rows:
        return ""  # the Results section says what is wrong with the file
    return f"<p>Reconstruction on the test split ({escape(path.name)}).</p>" + table(
        ["metric", "mean"], rows
    )


def _summary_section(run_dir: Path) -> str:
    comparison = run_dir / "comparison.csv"
    metrics = run_dir / "metrics_test.json"
    reconstruction = run_dir / "reconstruction_test.json"
    parts = []
    if comparison.is_file():
        parts.append(_transfer_summary(comparison))
    if metrics.is_file():
        if parts:
            parts.append("<h3>The trained model on the test split</h3>")
        parts.append(_test_summary(metrics))
    if reconstruction.is_file():
        parts.append(_reconstruction_summary(reconstruction))
    if not parts:
        parts.append(
            absent(
                "No comparison.csv, metrics_test.json or reconstruction_test.json: "
                "nothing to summarise; the sections below show what the run holds."
            )
        )
    return section("summary", "Summary", "".join(parts))


def _run_section(run: Mapping[str, Any], run_json: Path, made: str) -> str:
    top = {k: v for k, v in run.items() if k != "config"}
    parts = []
    if top:
        rows = flatten(top)
        parts.append(
            f"<details><summary>Run metadata ({len(rows)} entries from {escape(run_json.name)}: "
            "kind, dates, steps)</summary>" + table(["key", "value"], rows) + "</details>"
        )
    config = run.get("config")
    if isinstance(config, Mapping) and config:
        rows = flatten(config)
        parts.append(
            f"<details><summary>Configuration ({len(rows)} settings)</summary>"
            + table(["setting", "value"], rows)
            + "</details>"
        )
    else:
        parts.append(absent(f"{run_json.name} holds no 'config' object."))
    parts.append(f'<p class="provenance">Report made {escape(made)}.</p>')
    return section("run", "Run metadata and configuration", "".join(parts))


def _says_synthetic(data: Any) -> bool:
    if isinstance(data, Mapping):
        return any(
            (key == "synthetic" and value is True) or _says_synthetic(value)
            for key, value in data.items()
        )
    if isinstance(data, list):
        return any(_says_synthetic(v) for v in data)
    return False


def _when(value: object) -> str:
    """An ISO timestamp as ``YYYY-MM-DD HH:MM UTC``; anything else as given."""
    try:
        moment = _dt.datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(_dt.timezone.utc)
        return moment.strftime("%Y-%m-%d %H:%M UTC")
    return moment.strftime("%Y-%m-%d %H:%M")


def _provenance(run: Mapping[str, Any], run_dir: Path) -> str:
    parts = [f"Run folder <code>{escape(run_dir.name)}</code>"]
    if run.get("kind"):
        parts.append(f"{escape(run['kind'])} run")
    if run.get("created"):
        parts.append(f"created {escape(_when(run['created']))}")
    version = run.get("transmri_version") or run.get("version")
    parts.append(f"transmri {escape(version)}" if version else "transmri version not recorded")
    return f'<p class="provenance">{" · ".join(parts)}</p>'


_NAV = (
    ("summary", "Summary"),
    ("comparison", "Learning curve"),
    ("metrics", "Results"),
    ("history", "Training"),
    ("embeddings", "Latent space"),
    ("figures", "Figures"),
    ("data", "Data"),
    ("run", "Run details"),
)


def _render(run_dir: Path, title: str | None) -> str:
    run_json = check_existing_file(run_dir / "run.json", what="run.json")
    run = read_json(run_json)
    if not isinstance(run, dict):
        raise DataFormatError(f"{run_json}: expected a JSON object, got {type(run).__name__}")
    manifest = run_dir / "data.json"
    synthetic = _says_synthetic(run) or (
        manifest.is_file() and _says_synthetic(read_json(manifest))
    )
    heading = title or str(run.get("name") or f"transmri run: {run_dir.name}")
    banner = (
        '<p class="banner" id="synthetic"><strong>Synthetic data.</strong> These results come '
        "from a generated cohort, not from real patients; they show that the pipeline works, "
        "not how well a method would do on real scans.</p>"
        if synthetic
        else ""
    )
    made = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    # The answer first, the evidence next, the bookkeeping last.
    sections = [
        _summary_section(run_dir),
        comparison_section(run_dir),
        metrics_section(run_dir),
        history_section(run_dir),
        embeddings_section(run_dir),
        figures_section(run_dir),
        data_section(run_dir),
        _run_section(run, run_json, made),
    ]
    nav = "<nav>" + "".join(f'<a href="#{a}">{escape(t)}</a>' for a, t in _NAV) + "</nav>"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(heading)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{escape(heading)}</h1>{banner}{_provenance(run, run_dir)}{nav}"
        + "".join(sections)
        + "</body></html>\n"
    )


def build_report(
    run_dir: str | os.PathLike[str],
    *,
    path: str | os.PathLike[str] | None = None,
    title: str | None = None,
) -> Path:
    """Write one self-contained HTML report of a run folder.

    The whole page is built in memory first and then written through a temp
    file and a rename, so a failure leaves no half-written report (and an
    earlier report, if any, untouched).

    Args:
        run_dir: The run folder; must hold ``run.json``.
        path: Output file; ``run_dir / "report.html"`` if ``None``.
        title: Page title; ``run.json``'s ``name`` or the folder name if ``None``.

    Returns:
        The path of the written report.

    Raises:
        FileNotFoundError: ``run_dir`` or its ``run.json`` does not exist.
        DataFormatError: A file of the run folder is malformed (the message names it).
    """
    folder = check_existing_dir(run_dir, what="run folder")
    page = _render(folder, title)
    return atomic_write_text(folder / "report.html" if path is None else Path(path), page)
