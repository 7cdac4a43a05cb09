"""One self-contained HTML report of a run folder.

:func:`build_report` reads what a run folder holds (layout in
``docs/ARCHITECTURE.md``) and writes one HTML file: inline CSS, images as
base64 PNG data URIs, no script and no external resource, so it opens
offline and can be mailed. Only ``run.json`` is required; each other section
appears when its files exist and says plainly when they do not.

Files read (all in ``run_dir``):

- ``run.json``: ``kind``, ``created``, ``config`` ... shown as tables. The
  data are declared synthetic when it (or ``data.json``) holds a key
  ``"synthetic": true`` at any depth.
- ``data_stats.csv`` (any table, shown as is) or ``data.json`` (shown as keys).
- ``history.csv``: curves through :func:`~transmri.evaluation.plots.plot_history`.
- ``metrics_<split>.json``: the format written by
  :func:`~transmri.evaluation.metrics.write_metrics`.
- ``predictions_<split>.csv``: ``subject, label, prob_<class>...``; gives the
  confusion matrix and ROC (unless ``figures/confusion_matrix_<split>.png`` /
  ``figures/roc_<split>.png`` exist) and the metrics when no JSON exists.
- ``embeddings_<split>.csv``: ``subject, label, e0 .. ek``; gives t-SNE and
  PCA (unless ``figures/tsne_<split>.png`` / ``figures/pca_<split>.png`` exist).
- ``figures/*.png``: embedded, captioned from the file name.
- ``comparison.csv``: ``method, n_train, repeat, auc, balanced_accuracy ...``.

Example:
    >>> build_report("runs/demo")  # doctest: +SKIP
    PosixPath('runs/demo/report.html')
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from transmri._validation import check_existing_dir, check_existing_file
from transmri.errors import DataFormatError
from transmri.evaluation._files import FIGURE_DPI, atomic_write_text
from transmri.evaluation.metrics import (
    MetricsReport,
    classification_metrics,
    encode_labels,
    read_metrics,
)
from transmri.evaluation.plots import (
    plot_confusion_matrix,
    plot_history,
    plot_learning_curve,
    plot_pca,
    plot_roc,
    plot_tsne,
    summarize_comparison,
)

__all__ = ["build_report"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SPLIT_ORDER = ("train", "val", "test")
_MAX_TABLE_ROWS = 200

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1100px; color: #1d1d1f; line-height: 1.45; padding: 0 1em; }
h1 { border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { margin-top: 2em; border-bottom: 1px solid #bbb; }
table { border-collapse: collapse; margin: .8em 0; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f0f0f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { font-size: .85em; color: #555; }
pre { background: #f6f6f8; padding: .8em; overflow-x: auto; font-size: .8em; }
.absent { color: #777; font-style: italic; }
.banner { background: #fff3cd; border: 1px solid #e0c36b; padding: .6em 1em; }
.note { color: #8a4b00; }
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: object) -> str:
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return "n/a"
        return f"{value:.4g}"
    return str(value)


def _table(headers: Sequence[object], rows: Iterable[Sequence[object]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for value in row:
            numeric = isinstance(value, int | float | np.number) and not isinstance(value, bool)
            cls = ' class="num"' if numeric else ""
            cells.append(f"<td{cls}>{_e(_fmt(value))}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _frame_table(frame: pd.DataFrame, *, index: bool = False) -> str:
    shown = frame.head(_MAX_TABLE_ROWS)
    if index:
        shown = shown.reset_index()
    rows = [list(r) for r in shown.itertuples(index=False, name=None)]
    note = ""
    if len(frame) > _MAX_TABLE_ROWS:
        note = f'<p class="note">First {_MAX_TABLE_ROWS} of {len(frame)} rows shown.</p>'
    return _table([str(c) for c in shown.columns], rows) + note


def _absent(text: str) -> str:
    return f'<p class="absent">{_e(text)}</p>'


def _img(png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{_e(caption)}">'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def _figure_png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=FIGURE_DPI)
    return buffer.getvalue()


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"{path}: expected JSON, got a parse error: {exc}") from exc


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"{path}: expected a CSV table, got: {exc}") from exc


def _flatten(data: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(data, Mapping):
        rows: list[tuple[str, str]] = []
        for key, value in data.items():
            rows.extend(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return rows
    if isinstance(data, list) and len(data) > 20:
        return [(prefix, f"[{len(data)} items] " + json.dumps(data[:5])[:-1] + ", ...]")]
    return [(prefix, json.dumps(data) if isinstance(data, list | bool) or data is None else data)]


def _says_synthetic(data: Any) -> bool:
    if isinstance(data, Mapping):
        return any(
            (key == "synthetic" and value is True) or _says_synthetic(value)
            for key, value in data.items()
        )
    if isinstance(data, list):
        return any(_says_synthetic(v) for v in data)
    return False


def _splits(run_dir: Path, pattern: str) -> list[str]:
    prefix, suffix = pattern.split("{split}")
    found = [
        p.name[len(prefix) : len(p.name) - len(suffix)]
        for p in run_dir.glob(pattern.replace("{split}", "*"))
        if p.is_file()
    ]
    return sorted(found, key=lambda s: (_SPLIT_ORDER.index(s) if s in _SPLIT_ORDER else 9, s))


def _caption(path: Path) -> str:
    text = re.sub(r"[_\-]+", " ", path.stem).strip()
    return text[:1].upper() + text[1:]


def _section(anchor: str, heading: str, body: str) -> str:
    return f'<section id="{_e(anchor)}"><h2>{_e(heading)}</h2>{body}</section>'


def _run_section(run: Mapping[str, Any], run_json: Path) -> str:
    top = [(k, v) for k, v in run.items() if k != "config"]
    parts = [_table(["key", "value"], _flatten(dict(top)))] if top else []
    config = run.get("config")
    if isinstance(config, Mapping) and config:
        parts.append("<h3>Configuration</h3>")
        parts.append(_table(["setting", "value"], _flatten(config)))
    else:
        parts.append(_absent(f"{run_json.name} holds no 'config' object."))
    return _section("run", "Run", "".join(parts))


def _data_section(run_dir: Path) -> str:
    stats, manifest = run_dir / "data_stats.csv", run_dir / "data.json"
    parts = []
    if stats.is_file():
        parts.append(f"<p>From {_e(stats.name)}.</p>" + _frame_table(_read_csv(stats)))
    if manifest.is_file():
        data = _read_json(manifest)
        parts.append(f"<h3>{_e(manifest.name)}</h3>" + _table(["key", "value"], _flatten(data)))
    if not parts:
        parts.append(_absent("No data_stats.csv or data.json: data statistics are not shown."))
    return _section("data", "Data", "".join(parts))


def _history_section(run_dir: Path) -> str:
    path = run_dir / "history.csv"
    if not path.is_file():
        return _section("history", "Training", _absent("No history.csv: curves are not shown."))
    history = _read_csv(path)
    if history.empty:
        return _section("history", "Training", _absent("history.csv has no rows."))
    body = _img(_figure_png(plot_history(history)), "Training curves (history.csv)")
    body += "<h3>Last epoch</h3>" + _frame_table(history.tail(1))
    return _section("history", "Training", body)


def _metrics_block(report: MetricsReport, source: str) -> str:
    frame = report.to_frame()
    level = f"{report.ci:.0%}"
    rows = [[r.metric, r.estimate, r.ci_low, r.ci_high] for r in frame.itertuples(index=False)]
    parts = [
        f"<p>{_e(source)}: {report.n_samples} scans of {report.n_groups} subjects; "
        f"{level} percentile intervals from {report.n_boot} bootstrap resamples of subjects.</p>",
        _table(["metric", "estimate", f"{level} low", f"{level} high"], rows),
        "<h4>Confusion matrix (rows: true, columns: predicted)</h4>",
        _table(
            ["true \\ predicted", *report.classes],
            [[c, *map(int, row)] for c, row in zip(report.classes, report.confusion_matrix)],
        ),
        "<h4>Per class</h4>",
        _frame_table(report.per_class, index=True),
    ]
    parts.extend(f'<p class="note">{_e(note)}</p>' for note in report.notes)
    return "".join(parts)


def _predictions(path: Path) -> tuple[pd.DataFrame, list[str]]:
    frame = _read_csv(path)
    classes = [c[len("prob_") :] for c in frame.columns if c.startswith("prob_")]
    missing = [c for c in ("label",) if c not in frame.columns]
    if missing or len(classes) < 2:
        raise DataFormatError(
            f"{path}: expected columns subject, label and prob_<class> for >= 2 classes, "
            f"found {list(frame.columns)}"
        )
    frame = frame[frame["label"].notna()].reset_index(drop=True)
    unknown = sorted(set(frame["label"].astype(str)) - set(classes))
    if unknown:
        raise DataFormatError(
            f"{path}, column 'label': expected labels among the prob_ columns' classes "
            f"{classes}, found {unknown[:5]}"
        )
    return frame, classes


def _metrics_section(run_dir: Path) -> str:
    splits = sorted(
        set(_splits(run_dir, "metrics_{split}.json"))
        | set(_splits(run_dir, "predictions_{split}.csv")),
        key=lambda s: (_SPLIT_ORDER.index(s) if s in _SPLIT_ORDER else 9, s),
    )
    if not splits:
        return _section(
            "metrics",
            "Results",
            _absent("No metrics_<split>.json or predictions_<split>.csv: no results are shown."),
        )
    figures = run_dir / "figures"
    parts = []
    for split in splits:
        parts.append(f"<h3>Split: {_e(split)}</h3>")
        metrics_path = run_dir / f"metrics_{split}.json"
        predictions_path = run_dir / f"predictions_{split}.csv"
        predictions = _predictions(predictions_path) if predictions_path.is_file() else None
        if metrics_path.is_file():
            parts.append(_metrics_block(read_metrics(metrics_path), metrics_path.name))
        elif predictions is not None and len(predictions[0]):
            frame, classes = predictions
            groups = frame["subject"].astype(str) if "subject" in frame else None
            report = classification_metrics(
                frame["label"].astype(str),
                frame[[f"prob_{c}" for c in classes]].to_numpy(),
                classes=classes,
                groups=groups,
            )
            parts.append(_metrics_block(report, f"computed from {predictions_path.name}"))
        if predictions is None:
            parts.append(_absent(f"No predictions_{split}.csv: no confusion matrix or ROC plot."))
            continue
        frame, classes = predictions
        if frame.empty:
            parts.append(_absent(f"predictions_{split}.csv holds no labelled rows."))
            continue
        proba = frame[[f"prob_{c}" for c in classes]].to_numpy()
        labels = frame["label"].astype(str)
        if not (figures / f"confusion_matrix_{split}.png").is_file():
            y = encode_labels(labels, classes)
            cm = np.bincount(
                y * len(classes) + proba.argmax(1), minlength=len(classes) ** 2
            ).reshape(len(classes), -1)
            fig = plot_confusion_matrix(cm, classes)
            parts.append(_img(_figure_png(fig), f"Confusion matrix, {split}"))
        if not (figures / f"roc_{split}.png").is_file():
            parts.append(_img(_figure_png(plot_roc(labels, proba, classes)), f"ROC, {split}"))
    return _section("metrics", "Results", "".join(parts))


def _embeddings_section(run_dir: Path) -> str:
    splits = _splits(run_dir, "embeddings_{split}.csv")
    if not splits:
        return _section(
            "embeddings",
            "Latent space",
            _absent("No embeddings_<split>.csv: t-SNE and PCA projections are not shown."),
        )
    figures = run_dir / "figures"
    parts = []
    for split in splits:
        path = run_dir / f"embeddings_{split}.csv"
        frame = _read_csv(path)
        columns = [c for c in frame.columns if re.fullmatch(r"e\d+", str(c))]
        if "label" not in frame.columns or not columns:
            raise DataFormatError(
                f"{path}: expected columns subject, label, e0 .. ek, found {list(frame.columns)}"
            )
        if len(frame) < 3:
            parts.append(_absent(f"{path.name}: {len(frame)} samples, too few to project."))
            continue
        codes = frame[columns].to_numpy(dtype=float)
        labels = frame["label"].fillna("unlabelled").astype(str).to_numpy()
        parts.append(f"<h3>Split: {_e(split)} ({len(frame)} codes of size {len(columns)})</h3>")
        if not (figures / f"tsne_{split}.png").is_file():
            parts.append(_img(_figure_png(plot_tsne(codes, labels)), f"t-SNE, {split}"))
        if not (figures / f"pca_{split}.png").is_file():
            parts.append(_img(_figure_png(plot_pca(codes, labels)), f"PCA, {split}"))
    return _section("embeddings", "Latent space", "".join(parts))


def _figures_section(run_dir: Path) -> str:
    folder = run_dir / "figures"
    files = sorted(folder.glob("*.png")) if folder.is_dir() else []
    parts = []
    for file in files:
        png = file.read_bytes()
        if not png.startswith(_PNG_SIGNATURE):
            parts.append(f'<p class="note">{_e(file.name)}: not a PNG file, skipped.</p>')
            continue
        parts.append(_img(png, _caption(file)))
    if not parts:
        parts.append(_absent("No PNG files in figures/."))
    return _section("figures", "Figures", "".join(parts))


def _comparison_section(run_dir: Path) -> str:
    path = run_dir / "comparison.csv"
    if not path.is_file():
        return _section(
            "comparison",
            "Transfer comparison",
            _absent("No comparison.csv: this run holds no transfer benchmark."),
        )
    frame = _read_csv(path)
    summary = summarize_comparison(frame)
    metrics = [c[: -len("_mean")] for c in summary.columns if c.endswith("_mean")]
    rows = []
    for values in summary.to_dict(orient="records"):
        cells: list[object] = [values["method"], values["n_train"], values["n_repeats"]]
        for m in metrics:
            mean, low, high = values[f"{m}_mean"], values[f"{m}_low"], values[f"{m}_high"]
            interval = "" if math.isnan(low) else f" [{low:.3f}, {high:.3f}]"
            cells.append(f"{mean:.3f}{interval}")
        rows.append(cells)
    body = (
        f"<p>From {_e(path.name)}: mean over repeats with a 95% t-interval of the mean.</p>"
        + _table(["method", "N train", "repeats", *metrics], rows)
    )
    for metric in ("auc", "balanced_accuracy"):
        if metric in frame.columns:
            fig = plot_learning_curve(frame, metric=metric)
            body += _img(_figure_png(fig), f"Learning curve: {metric} against training scans")
    return _section("comparison", "Transfer comparison", body)


def _render(run_dir: Path, title: str | None) -> str:
    run_json = check_existing_file(run_dir / "run.json", what="run.json")
    run = _read_json(run_json)
    if not isinstance(run, dict):
        raise DataFormatError(f"{run_json}: expected a JSON object, got {type(run).__name__}")
    manifest = run_dir / "data.json"
    synthetic = _says_synthetic(run) or (
        manifest.is_file() and _says_synthetic(_read_json(manifest))
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
    sections = [
        _run_section(run, run_json),
        _data_section(run_dir),
        _history_section(run_dir),
        _metrics_section(run_dir),
        _embeddings_section(run_dir),
        _comparison_section(run_dir),
        _figures_section(run_dir),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(heading)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{_e(heading)}</h1>{banner}"
        f"<p>Run folder <code>{_e(run_dir.name)}</code>; kind {_e(run.get('kind', 'unknown'))}; "
        f"report made {_e(made)}.</p>" + "".join(sections) + "</body></html>\n"
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
