"""The sections of the HTML report below its summary, and the HTML helpers they share.

Private to :mod:`transmri.evaluation.report`, which orders the sections and
writes the page. Every helper escapes what it is given; a section is one
``<section id=...>`` string, or a note saying plainly which file is missing.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from transmri._files import FIGURE_DPI
from transmri.errors import DataFormatError
from transmri.evaluation.comparison import paired_differences
from transmri.evaluation.intervals import (
    COUNT_COLUMNS,
    PROPORTION_COLUMNS,
    clip_interval,
    difference_range,
)
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

__all__ = [
    "SPLIT_ORDER",
    "absent",
    "caption",
    "comparison_section",
    "data_section",
    "embeddings_section",
    "escape",
    "figure_caption",
    "figure_html",
    "figure_png",
    "figures_section",
    "flatten",
    "format_value",
    "frame_table",
    "history_section",
    "metrics_section",
    "read_csv",
    "read_json",
    "section",
    "split_names",
    "table",
]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SPLIT_ORDER = ("train", "val", "test")
_MAX_TABLE_ROWS = 200


def escape(value: object) -> str:
    return html.escape(str(value), quote=True)


def format_value(value: object) -> str:
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return "n/a"
        return f"{value:.4g}"
    return str(value)


def table(headers: Sequence[object], rows: Iterable[Sequence[object]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for value in row:
            numeric = isinstance(value, int | float | np.number) and not isinstance(value, bool)
            cls = ' class="num"' if numeric else ""
            cells.append(f"<td{cls}>{escape(format_value(value))}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def frame_table(frame: pd.DataFrame, *, index: bool = False) -> str:
    shown = frame.head(_MAX_TABLE_ROWS)
    if index:
        shown = shown.reset_index()
    rows = [list(r) for r in shown.itertuples(index=False, name=None)]
    note = ""
    if len(frame) > _MAX_TABLE_ROWS:
        note = f'<p class="note">First {_MAX_TABLE_ROWS} of {len(frame)} rows shown.</p>'
    return table([str(c) for c in shown.columns], rows) + note


def absent(text: str) -> str:
    return f'<p class="absent">{escape(text)}</p>'


def figure_html(png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{escape(caption)}">'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def figure_png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=FIGURE_DPI)
    return buffer.getvalue()


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"{path}: expected JSON, got a parse error: {exc}") from exc


def read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"{path}: expected a CSV table, got: {exc}") from exc


def flatten(data: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(data, Mapping):
        rows: list[tuple[str, str]] = []
        for key, value in data.items():
            rows.extend(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return rows
    if isinstance(data, list) and len(data) > 20:
        return [(prefix, f"[{len(data)} items] " + json.dumps(data[:5])[:-1] + ", ...]")]
    return [(prefix, json.dumps(data) if isinstance(data, list | bool) or data is None else data)]


def split_names(run_dir: Path, pattern: str) -> list[str]:
    prefix, suffix = pattern.split("{split}")
    found = [
        p.name[len(prefix) : len(p.name) - len(suffix)]
        for p in run_dir.glob(pattern.replace("{split}", "*"))
        if p.is_file()
    ]
    return sorted(found, key=lambda s: (SPLIT_ORDER.index(s) if s in SPLIT_ORDER else 9, s))


def caption(path: Path) -> str:
    text = re.sub(r"[_\-]+", " ", path.stem).strip()
    return text[:1].upper() + text[1:]


#: Figures a run folder may hold, by file-name pattern: which run they show.
_FIGURE_OWNERS = (
    (r"pretrain\w*", "Pretraining run (pretrain/history.csv): training curves of the source model"),
    (r"learning_curve_(\w+)", "Transfer comparison (comparison.csv), every method: {0}"),
    (r"finetune\w*", "Fine-tuning run: {name}"),
)


def figure_caption(path: Path, *, owner: str = "this run") -> str:
    """A figure's caption that says which run it shows (pretraining, comparison, ...)."""
    name = caption(path)
    for pattern, text in _FIGURE_OWNERS:
        match = re.fullmatch(pattern, path.stem)
        if match:
            return text.format(*match.groups(), name=name) + f" ({path.name})"
    return f"{name}, {owner} ({path.name})"


def section(anchor: str, heading: str, body: str) -> str:
    return f'<section id="{escape(anchor)}"><h2>{escape(heading)}</h2>{body}</section>'


def data_section(run_dir: Path) -> str:
    stats, manifest = run_dir / "data_stats.csv", run_dir / "data.json"
    parts = []
    if stats.is_file():
        parts.append(f"<p>From {escape(stats.name)}.</p>" + frame_table(read_csv(stats)))
    if manifest.is_file():
        data = read_json(manifest)
        parts.append(f"<h3>{escape(manifest.name)}</h3>" + table(["key", "value"], flatten(data)))
    skipped = run_dir / "skipped.csv"
    if skipped.is_file():
        parts.append(_skipped_block(skipped))
    if not parts:
        parts.append(absent("No data_stats.csv or data.json: data statistics are not shown."))
    return section("data", "Data", "".join(parts))


def _skipped_block(path: Path, *, shown: int = 50) -> str:
    """What the adapters and filters dropped: counts per reason, then the first rows."""
    from transmri.data.table import fold_reasons

    frame = read_csv(path)
    if len(frame) == 0:
        return f"<h3>Skipped</h3><p>No scan or row was skipped ({escape(path.name)}).</p>"
    counts = fold_reasons(frame["reason"].astype(str).tolist())
    more = f" (the first {shown} shown)" if len(frame) > shown else ""
    return (
        f"<h3>Skipped</h3><p>{len(frame)} scan(s) or row(s) skipped, every one listed in "
        f"{escape(path.name)}{more}.</p>"
        + table(["reason", "count"], counts.items())
        + frame_table(frame.head(shown))
    )


def history_section(run_dir: Path, *, owner: str = "this run") -> str:
    path = run_dir / "history.csv"
    if not path.is_file():
        return section("history", "Training", absent("No history.csv: curves are not shown."))
    history = read_csv(path)
    if history.empty:
        return section("history", "Training", absent("history.csv has no rows."))
    body = figure_html(
        figure_png(plot_history(history)), f"Training curves of {owner} (history.csv)"
    )
    body += "<h3>Last epoch</h3>" + frame_table(history.tail(1))
    return section("history", "Training", body)


def _metrics_block(report: MetricsReport, source: str) -> str:
    frame = report.to_frame()
    level = f"{report.ci:.0%}"
    rows = [[r.metric, r.estimate, r.ci_low, r.ci_high] for r in frame.itertuples(index=False)]
    parts = [
        f"<p>{escape(source)}: {report.n_samples} scans of {report.n_groups} subjects; "
        f"{level} percentile intervals from {report.n_boot} bootstrap resamples of subjects.</p>",
        table(["metric", "estimate", f"{level} low", f"{level} high"], rows),
        "<h4>Confusion matrix (rows: true, columns: predicted)</h4>",
        table(
            ["true \\ predicted", *report.classes],
            [[c, *map(int, row)] for c, row in zip(report.classes, report.confusion_matrix)],
        ),
        "<h4>Per class</h4>",
        frame_table(report.per_class, index=True),
    ]
    parts.extend(f'<p class="note">{escape(note)}</p>' for note in report.notes)
    return "".join(parts)


def _predictions(path: Path) -> tuple[pd.DataFrame, list[str]]:
    frame = read_csv(path)
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


def _reconstruction_block(path: Path) -> str:
    data = read_json(path)
    found = data if isinstance(data, dict) else {}
    values = [[k, found.get(k)] for k in ("mse", "psnr", "ssim")]
    bad = [k for k, v in values if not isinstance(v, int | float) or isinstance(v, bool)]
    if bad:
        raise DataFormatError(
            f"{path}: expected a JSON object with numbers under 'mse', 'psnr' and 'ssim'; "
            f"missing or not a number: {bad}"
        )
    n = found.get("n_samples")
    over = f"mean over {int(n)} scans" if isinstance(n, int | float) else "mean over scans"
    return (
        f"<h4>Reconstruction ({escape(path.name)}, {over}; PSNR and SSIM use each scan's "
        "intensity range)</h4>" + table(["metric", "value"], values)
    )


def metrics_section(run_dir: Path, *, owner: str = "this run") -> str:
    splits = sorted(
        set(split_names(run_dir, "metrics_{split}.json"))
        | set(split_names(run_dir, "predictions_{split}.csv"))
        | set(split_names(run_dir, "reconstruction_{split}.json")),
        key=lambda s: (SPLIT_ORDER.index(s) if s in SPLIT_ORDER else 9, s),
    )
    if not splits:
        return section(
            "metrics",
            "Results",
            absent("No metrics_<split>.json or predictions_<split>.csv: no results are shown."),
        )
    figures = run_dir / "figures"
    parts = []
    for split in splits:
        parts.append(f"<h3>Split: {escape(split)} ({escape(owner)})</h3>")
        metrics_path = run_dir / f"metrics_{split}.json"
        predictions_path = run_dir / f"predictions_{split}.csv"
        reconstruction_path = run_dir / f"reconstruction_{split}.json"
        if reconstruction_path.is_file():
            parts.append(_reconstruction_block(reconstruction_path))
            if not metrics_path.is_file() and not predictions_path.is_file():
                continue
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
            parts.append(absent(f"No predictions_{split}.csv: no confusion matrix or ROC plot."))
            continue
        frame, classes = predictions
        if frame.empty:
            parts.append(absent(f"predictions_{split}.csv holds no labelled rows."))
            continue
        proba = frame[[f"prob_{c}" for c in classes]].to_numpy()
        labels = frame["label"].astype(str)
        if not (figures / f"confusion_matrix_{split}.png").is_file():
            y = encode_labels(labels, classes)
            cm = np.bincount(
                y * len(classes) + proba.argmax(1), minlength=len(classes) ** 2
            ).reshape(len(classes), -1)
            fig = plot_confusion_matrix(cm, classes)
            parts.append(figure_html(figure_png(fig), f"Confusion matrix, {split}, {owner}"))
        if not (figures / f"roc_{split}.png").is_file():
            parts.append(
                figure_html(figure_png(plot_roc(labels, proba, classes)), f"ROC, {split}, {owner}")
            )
    return section("metrics", "Results", "".join(parts))


def embeddings_section(run_dir: Path, *, owner: str = "this run") -> str:
    splits = split_names(run_dir, "embeddings_{split}.csv")
    if not splits:
        return section(
            "embeddings",
            "Latent space",
            absent("No embeddings_<split>.csv: t-SNE and PCA projections are not shown."),
        )
    figures = run_dir / "figures"
    parts = []
    for split in splits:
        path = run_dir / f"embeddings_{split}.csv"
        frame = read_csv(path)
        columns = [c for c in frame.columns if re.fullmatch(r"e\d+", str(c))]
        if "label" not in frame.columns or not columns:
            raise DataFormatError(
                f"{path}: expected columns subject, label, e0 .. ek, found {list(frame.columns)}"
            )
        if len(frame) < 3:
            parts.append(absent(f"{path.name}: {len(frame)} samples, too few to project."))
            continue
        codes = frame[columns].to_numpy(dtype=float)
        labels = frame["label"].fillna("unlabelled").astype(str).to_numpy()
        parts.append(f"<h3>Split: {escape(split)} ({len(frame)} codes of size {len(columns)})</h3>")
        if not (figures / f"tsne_{split}.png").is_file():
            parts.append(
                figure_html(
                    figure_png(plot_tsne(codes, labels)), f"t-SNE, {split}, codes of {owner}"
                )
            )
        if not (figures / f"pca_{split}.png").is_file():
            parts.append(
                figure_html(figure_png(plot_pca(codes, labels)), f"PCA, {split}, codes of {owner}")
            )
    return section("embeddings", "Latent space", "".join(parts))


def figures_section(run_dir: Path, *, owner: str = "this run") -> str:
    folder = run_dir / "figures"
    files = sorted(folder.glob("*.png")) if folder.is_dir() else []
    parts = []
    for file in files:
        png = file.read_bytes()
        if not png.startswith(_PNG_SIGNATURE):
            parts.append(f'<p class="note">{escape(file.name)}: not a PNG file, skipped.</p>')
            continue
        parts.append(figure_html(png, figure_caption(file, owner=owner)))
    if not parts:
        parts.append(absent("No PNG files in figures/."))
    return section("figures", "Figures", "".join(parts))


def _summary_cell(metric: str, mean: float, low: float, high: float, n: int) -> str:
    """A summary value as its kind asks: a count as "k of n", a size without an interval."""
    if math.isnan(mean):
        return "n/a"
    if metric in PROPORTION_COLUMNS:
        return f"{round(mean * n)} of {n}"
    if metric in COUNT_COLUMNS:
        return f"{mean:g}" if float(mean).is_integer() else f"{mean:.1f} (mean)"
    interval = "" if math.isnan(low) or math.isnan(high) else f" [{low:.3f}, {high:.3f}]"
    return f"{mean:.3f}{interval}"


def _differences_block(run_dir: Path, frame: pd.DataFrame) -> str:
    """Paired differences as written to differences.csv (or computed when it is absent)."""
    path = run_dir / "differences.csv"
    if path.is_file() and path.stat().st_size > 1:
        differences, source = read_csv(path), escape(path.name)
    else:
        present = set(frame["method"].astype(str))
        parts = [
            paired_differences(frame, reference=r)
            for r in ("scratch", "ridge", "regional_random")
            if r in present and {"auc", "balanced_accuracy"} <= set(frame.columns)
        ]
        parts = [p for p in parts if not p.empty]
        if not parts:
            return absent("No differences.csv and no scratch or ridge rows: no paired differences.")
        differences, source = pd.concat(parts, ignore_index=True), "computed from comparison.csv"
    metrics = [c[: -len("_diff")] for c in differences.columns if c.endswith("_diff")]
    rows = []
    for values in differences.to_dict(orient="records"):
        cells: list[object] = [
            values.get("method"), values.get("reference"), values.get("n_train"),
            values.get("n_pairs"),
        ]  # fmt: skip
        for m in metrics:
            diff = float(values[f"{m}_diff"])
            low, high = clip_interval(
                float(values.get(f"{m}_low", math.nan)),
                float(values.get(f"{m}_high", math.nan)),
                difference_range(m),
            )
            interval = "" if math.isnan(low) or math.isnan(high) else f" [{low:+.3f}, {high:+.3f}]"
            shown = "n/a" if math.isnan(diff) else f"{diff:+.3f}{interval}"
            wins = values.get(f"{m}_wins")
            pairs = values.get("n_pairs")
            if isinstance(wins, float) and not math.isnan(wins) and isinstance(pairs, int | float):
                shown += f" (higher in {round(wins * pairs)} of {int(pairs)})"
            cells.append(shown)
        rows.append(cells)
    return (
        f"<h3>Paired differences ({source})</h3><p>Method minus reference within each repeat "
        "(same training and test subjects), mean over repeats with a 95% t-interval, clipped "
        "to the range a difference can take.</p>"
        + table(["method", "reference", "N train", "pairs", *metrics], rows)
    )


def comparison_section(run_dir: Path) -> str:
    path = run_dir / "comparison.csv"
    if not path.is_file():
        return section(
            "comparison",
            "Transfer comparison",
            absent("No comparison.csv: this run holds no transfer benchmark."),
        )
    frame = read_csv(path)
    summary = summarize_comparison(frame)
    metrics = [c[: -len("_mean")] for c in summary.columns if c.endswith("_mean")]
    rows = []
    for values in summary.to_dict(orient="records"):
        n = int(values["n_repeats"])
        cells: list[object] = [values["method"], values["n_train"], n]
        for m in metrics:
            cells.append(
                _summary_cell(m, values[f"{m}_mean"], values[f"{m}_low"], values[f"{m}_high"], n)
            )
        rows.append(cells)
    body = ""
    one_size = frame["n_train"].nunique() == 1 if "n_train" in frame.columns else False
    for metric in ("auc", "balanced_accuracy"):
        if metric in frame.columns:
            fig = plot_learning_curve(frame, metric=metric, title="Transfer comparison")
            shown = (
                f"Transfer comparison ({path.name}), every method: {metric} at one training "
                "size (dot plot: one dot per method, bar = 95% interval over repeats)"
                if one_size
                else f"Transfer comparison ({path.name}), every method: learning curve of "
                f"{metric} against training scans"
            )
            body += figure_html(figure_png(fig), shown)
    body += (
        f"<h3>Every metric</h3><p>From {escape(path.name)}: mean over repeats with a 95% "
        "t-interval of the mean (clipped to [0, 1] for scores); a proportion such as "
        "converged as a count of repeats; counts and sizes (n_test, n_fit, n_val) without an "
        "interval.</p>" + table(["method", "N train", "repeats", *metrics], rows)
    )
    body += _differences_block(run_dir, frame)
    return section("comparison", "Transfer comparison", body)
