"""One self-contained HTML report of a run folder.

:func:`build_report` reads what a run folder holds (layout in
``docs/ARCHITECTURE.md``) and writes one HTML file: inline CSS, images as
base64 PNG data URIs, no script and no external resource, so it opens
offline and can be mailed. Only ``run.json`` is required; each other section
appears when its files exist and says plainly when they do not.

The page answers the question first. Its top holds the title, a banner when
the data are synthetic, one line of provenance and a **Summary**: for a
transfer benchmark (``comparison.csv``) one small table per training size
with each method's mean AUC, its 95% interval over repeats (clipped to
[0, 1]) and the number of repeats, the best mean in bold, and one sentence
giving the paired difference of the best transfer method against scratch,
ridge and the random-weight control, decided by whether that paired interval
excludes 0 (with a note when the best was picked among several methods; see
:mod:`~transmri.evaluation._report_verdict`); for a single model the headline test
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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from transmri._files import atomic_write_text
from transmri._validation import check_existing_dir, check_existing_file
from transmri.errors import DataFormatError
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
    read_json,
    section,
    table,
)
from transmri.evaluation._report_verdict import (
    METRIC_NAMES,
    SMALL_TEST_SET,
    notes_html,
    transfer_summary,
)
from transmri.evaluation.metrics import read_metrics

__all__ = ["build_report"]

_HEADLINE_METRICS = ("auc", "balanced_accuracy", "accuracy", "sensitivity", "specificity")

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
        rows.append([METRIC_NAMES.get(name, name), shown, interval])
    notes = []
    if report.n_samples < SMALL_TEST_SET:
        notes.append(f"n={report.n_samples} test scans: intervals are wide.")
    return (
        f"<p>Test split ({escape(path.name)}): {report.n_samples} scans of {report.n_groups} "
        f"subjects; {level} bootstrap intervals over subjects.</p>"
        + table(["metric", "estimate", f"{level} interval"], rows)
        + notes_html(notes)
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


def _owner(run: Mapping[str, Any]) -> str:
    """Which model the folder's own history, metrics and predictions belong to."""
    kind = run.get("kind")
    if kind == "experiment":
        return "the fine-tuned classifier (fine-tuning step)"
    return f"this {kind} run" if kind else "this run"


def _summary_section(run_dir: Path, *, owner: str = "this run") -> str:
    comparison = run_dir / "comparison.csv"
    metrics = run_dir / "metrics_test.json"
    reconstruction = run_dir / "reconstruction_test.json"
    parts = []
    if comparison.is_file():
        parts.append(transfer_summary(comparison))
    if metrics.is_file():
        if parts:
            parts.append(f"<h3>The trained model on the test split: {escape(owner)}</h3>")
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
    owner = _owner(run)
    # The answer first, the evidence next, the bookkeeping last.
    sections = [
        _summary_section(run_dir, owner=owner),
        comparison_section(run_dir),
        metrics_section(run_dir, owner=owner),
        history_section(run_dir, owner=owner),
        embeddings_section(run_dir, owner=owner),
        figures_section(run_dir, owner=owner),
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
