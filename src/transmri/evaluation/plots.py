"""Figures of a run: curves, projections, code histograms, slices, ROC and confusion.

Every function takes plain data (arrays, frames), returns a
:class:`matplotlib.figure.Figure` and, when ``path`` is given, saves it as a
PNG at :data:`~transmri._files.FIGURE_DPI` (temp file, then
rename). Figures are built with the object-oriented API and are never
registered with ``pyplot``: nothing stays open in a global figure list, and a
caller may keep, save again or drop the returned figure.

Example:
    >>> import pandas as pd
    >>> history = pd.DataFrame({"epoch": [1, 2], "train_loss": [1.0, 0.5], "val_loss": [1.1, 0.7]})
    >>> fig = plot_history(history)
    >>> len(fig.axes)
    1
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from transmri._files import save_figure
from transmri._validation import check_fraction, check_positive_int
from transmri.errors import DataFormatError
from transmri.evaluation.intervals import (
    COUNT_COLUMNS,
    PROPORTION_COLUMNS,
    as_flags,
    mean_interval,
    wilson_interval,
)
from transmri.evaluation.metrics import binary_auc, classification_auc, encode_labels

__all__ = [
    "orthogonal_slices",
    "plot_bottleneck_histogram",
    "plot_confusion_matrix",
    "plot_history",
    "plot_learning_curve",
    "plot_pca",
    "plot_reconstructions",
    "plot_roc",
    "plot_tsne",
    "show_sample",
    "summarize_comparison",
]

PathLike = str | os.PathLike[str]

_SPLIT_PREFIXES = ("train_", "val_", "test_")
_PLANES = ("sagittal", "coronal", "axial")


def _finish(fig: Figure, path: PathLike | None) -> Figure:
    if path is not None:
        save_figure(fig, path)
    return fig


def _volume3d(name: str, volume: Any) -> np.ndarray:
    if hasattr(volume, "detach"):
        volume = volume.detach().cpu().numpy()
    arr = np.asarray(volume, dtype=np.float32)
    while arr.ndim > 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 3:
        raise DataFormatError(f"{name}: expected a 3D volume (D, H, W), got shape {arr.shape}")
    return arr


def orthogonal_slices(
    volume: Any, *, at: Sequence[int] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three orthogonal 2D slices of a 3D volume (through its centre by default).

    Args:
        volume: ``(D, H, W)`` array or tensor (leading singleton axes are dropped).
        at: Voxel ``(i, j, k)`` the slices go through; the centre if ``None``.

    Returns:
        Slices across axes 0, 1 and 2, each transposed so that the next axis runs upward.
    """
    arr = _volume3d("volume", volume)
    i, j, k = (s // 2 for s in arr.shape) if at is None else (int(a) for a in at)
    return arr[i].T, arr[:, j].T, arr[:, :, k].T


def _show_slices(axes: Any, volume: np.ndarray, **kwargs: Any) -> list[Any]:
    images = []
    for ax, section, plane in zip(axes, orthogonal_slices(volume, **kwargs), _PLANES):
        images.append(ax.imshow(section, cmap="gray", origin="lower", interpolation="nearest"))
        ax.set_title(plane, fontsize=8)
        ax.set_axis_off()
    return images


def plot_history(history: pd.DataFrame, *, path: PathLike | None = None) -> Figure:
    """Training curves: one panel per tracked metric, train and validation together.

    Columns ``train_<m>``, ``val_<m>`` (and ``test_<m>``) share the panel of
    ``<m>``; any other numeric column (``lr``) gets its own panel. The x axis
    is the ``epoch`` column, or the row number without one.

    Args:
        history: One row per epoch, e.g. the run folder's ``history.csv``.
        path: Save the figure there as a PNG.

    Raises:
        DataFormatError: The frame has no rows or no numeric column to plot.
    """
    if not isinstance(history, pd.DataFrame) or history.empty:
        raise DataFormatError("history: expected a non-empty table with one row per epoch")
    x = history["epoch"] if "epoch" in history else pd.Series(np.arange(1, len(history) + 1))
    panels: dict[str, list[str]] = {}
    for column in history.columns:
        if column == "epoch" or not pd.api.types.is_numeric_dtype(history[column]):
            continue
        base = column
        for prefix in _SPLIT_PREFIXES:
            if column.startswith(prefix):
                base = column[len(prefix) :]
                break
        panels.setdefault(base, []).append(column)
    if not panels:
        raise DataFormatError(
            f"history: expected numeric columns such as train_loss, val_loss; "
            f"got {list(history.columns)}"
        )
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig = Figure(figsize=(4.0 * ncols, 3.0 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (base, columns) in zip(axes, panels.items()):
        for column in columns:
            ax.plot(x, history[column], marker="o", markersize=3, label=column)
        ax.set_title(base)
        ax.set_xlabel("epoch")
        if base == "lr":
            ax.set_yscale("log")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    return _finish(fig, path)


def _embedding_matrix(embeddings: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    if hasattr(embeddings, "detach"):
        embeddings = embeddings.detach().cpu().numpy()
    emb = np.asarray(embeddings, dtype=np.float64)
    if emb.ndim < 2:
        raise DataFormatError(f"embeddings: expected (samples, features), got shape {emb.shape}")
    emb = emb.reshape(emb.shape[0], -1)
    lab = np.asarray(labels)
    if lab.shape != (emb.shape[0],):
        raise DataFormatError(
            f"labels: expected one label per embedding, shape ({emb.shape[0]},), got {lab.shape}"
        )
    if emb.shape[0] < 3:
        raise DataFormatError(
            f"embeddings: expected at least 3 samples for a 2D projection, got {emb.shape[0]}"
        )
    if not np.isfinite(emb).all():
        raise DataFormatError("embeddings: expected finite values, found NaN or Inf")
    return emb, lab


def _scatter(ax: Axes, coords: np.ndarray, values: np.ndarray, title: str) -> None:
    numeric = pd.api.types.is_numeric_dtype(values.dtype) and np.unique(values).size > 10
    if numeric:
        points = ax.scatter(coords[:, 0], coords[:, 1], c=values, cmap="viridis", s=14)
        ax.get_figure().colorbar(points, ax=ax, label=title)  # type: ignore[union-attr]
    else:
        for i, value in enumerate(sorted(np.unique(values.astype(str)))):
            chosen = values.astype(str) == value
            ax.scatter(coords[chosen, 0], coords[chosen, 1], s=14, color=f"C{i % 10}", label=value)
        ax.legend(title=title, fontsize=7, title_fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def _projection_figure(
    coords: np.ndarray, labels: np.ndarray, color_by: Any, title: str, axis_names: Sequence[str]
) -> Figure:
    extra = None
    if color_by is not None:
        extra = np.asarray(color_by)
        if extra.shape != labels.shape:
            raise DataFormatError(
                f"color_by: expected one value per embedding, shape {labels.shape}, "
                f"got {extra.shape}"
            )
    ncols = 1 if extra is None else 2
    fig = Figure(figsize=(5.0 * ncols, 4.5), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False).ravel()
    _scatter(axes[0], coords, labels, "label")
    if extra is not None:
        _scatter(axes[1], coords, extra, "color_by")
    for ax in axes:
        ax.set_xlabel(axis_names[0])
        ax.set_ylabel(axis_names[1])
    fig.suptitle(title, fontsize=10)
    return fig


def plot_tsne(
    embeddings: Any,
    labels: Any,
    *,
    color_by: Any = None,
    perplexity: float = 30.0,
    seed: int = 0,
    path: PathLike | None = None,
) -> Figure:
    """2D t-SNE of codes, coloured by label (and by ``color_by`` in a second panel).

    A perplexity is a soft neighbourhood size, and t-SNE's neighbour search
    needs about ``3 x perplexity`` neighbours per sample: when
    ``3 x perplexity > n - 1`` the perplexity is lowered to ``(n - 1) / 3`` and
    the title says so.

    Args:
        embeddings: ``(n, ...)`` codes, flattened per sample.
        labels: ``n`` labels (colours of the first panel).
        color_by: Optional ``n`` values (site, sex, age) for a second panel.
        perplexity: Wanted t-SNE perplexity.
        seed: Random state of t-SNE.
        path: Save the figure there as a PNG.

    Raises:
        DataFormatError: Fewer than 3 samples, or labels of the wrong length.
    """
    from sklearn.manifold import TSNE

    emb, lab = _embedding_matrix(embeddings, labels)
    n = emb.shape[0]
    wanted = float(perplexity)
    if not math.isfinite(wanted) or wanted <= 0:
        raise DataFormatError(f"perplexity: expected a finite number > 0, got {perplexity!r}")
    used = min(wanted, (n - 1) / 3.0)
    coords = TSNE(n_components=2, perplexity=used, random_state=seed, init="pca").fit_transform(emb)
    title = f"t-SNE of {n} codes (perplexity {used:g})"
    if used < wanted:
        title = (
            f"t-SNE of {n} codes (perplexity adapted from {wanted:g} to {used:.3g}: few samples)"
        )
    return _finish(_projection_figure(coords, lab, color_by, title, ("t-SNE 1", "t-SNE 2")), path)


def plot_pca(
    embeddings: Any,
    labels: Any,
    *,
    color_by: Any = None,
    path: PathLike | None = None,
) -> Figure:
    """First two principal components of codes, coloured like :func:`plot_tsne`.

    The axis labels give the share of variance each component explains.

    Raises:
        DataFormatError: Fewer than 3 samples, or labels of the wrong length.
    """
    from sklearn.decomposition import PCA

    emb, lab = _embedding_matrix(embeddings, labels)
    if emb.shape[1] < 2:
        emb = np.concatenate([emb, np.zeros_like(emb)], axis=1)
    pca = PCA(n_components=2).fit(emb)
    coords = pca.transform(emb)
    ratio = np.nan_to_num(pca.explained_variance_ratio_)
    names = (f"PC 1 ({ratio[0]:.0%})", f"PC 2 ({ratio[1]:.0%})")
    title = f"PCA of {emb.shape[0]} codes"
    return _finish(_projection_figure(coords, lab, color_by, title, names), path)


def _unit_means(name: str, codes: Any) -> np.ndarray:
    if hasattr(codes, "detach"):
        codes = codes.detach().cpu().numpy()
    arr = np.asarray(codes, dtype=np.float64)
    if arr.ndim < 2 or arr.shape[0] == 0:
        raise DataFormatError(f"{name}: expected codes (samples, ...), got shape {arr.shape}")
    return arr.reshape(arr.shape[0], -1)


def _histogram_panel(
    ax: Axes, codes: np.ndarray, labels: np.ndarray | None, title: str, zero_tol: float
) -> None:
    means = codes.mean(axis=0)
    scale = float(np.abs(means).max()) or 1.0
    near_zero = float(np.mean(np.abs(means) <= zero_tol * scale))
    bins = np.linspace(
        means.min(), means.max() if means.max() > means.min() else means.min() + 1, 51
    )
    if labels is None:
        ax.hist(means, bins=bins.tolist(), color="C0")
    else:
        for i, value in enumerate(sorted(np.unique(labels.astype(str)))):
            chosen = labels.astype(str) == value
            ax.hist(
                codes[chosen].mean(axis=0),
                bins=bins.tolist(),
                alpha=0.5,
                color=f"C{i}",
                label=value,
            )
        ax.legend(fontsize=7)
    ax.set_title(title)
    ax.set_xlabel("mean activation of a code unit")
    ax.set_ylabel("code units")
    ax.text(
        0.97,
        0.95,
        f"near zero: {near_zero:.1%}\n(|a| <= {zero_tol:g} x max)",
        transform=ax.transAxes,
        ha="right",
        va="top",
        fontsize=8,
        bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"},
    )


def plot_bottleneck_histogram(
    codes: Any,
    *,
    labels: Any = None,
    other: Any = None,
    names: tuple[str, str] = ("without L1", "with L1"),
    zero_tol: float = 0.01,
    path: PathLike | None = None,
) -> Figure:
    """Histogram of code activations, as in the paper's sparsity figure.

    Following the paper, each code unit's activation is averaged over the
    samples, and the histogram counts units. The share of units whose mean
    activation is within ``zero_tol`` of the largest absolute mean is
    annotated. With ``other`` (the codes of a second model, e.g. trained with
    an L1 penalty), the two histograms are drawn side by side.

    Args:
        codes: ``(n, ...)`` codes of one model.
        labels: Optional ``n`` labels: one histogram per class, overlaid.
        other: Optional codes of a second model (its own ``n``).
        names: Panel titles for ``codes`` and ``other``.
        zero_tol: "Near zero" threshold relative to the largest absolute mean activation.
        path: Save the figure there as a PNG.
    """
    zero_tol = check_fraction("zero_tol", zero_tol)
    first = _unit_means("codes", codes)
    lab = None if labels is None else np.asarray(labels)
    if lab is not None and lab.shape != (first.shape[0],):
        raise DataFormatError(
            f"labels: expected one label per code, shape ({first.shape[0]},), got {lab.shape}"
        )
    panels = [(first, lab, names[0] if other is not None else "code activations")]
    if other is not None:
        panels.append((_unit_means("other", other), None, names[1]))
    fig = Figure(figsize=(5.0 * len(panels), 3.8), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False).ravel()
    for ax, (data, data_labels, title) in zip(axes, panels):
        _histogram_panel(ax, data, data_labels, title, zero_tol)
    return _finish(fig, path)


def _volume_batch(name: str, volumes: Any) -> np.ndarray:
    if hasattr(volumes, "detach"):
        volumes = volumes.detach().cpu().numpy()
    arr = np.asarray(volumes, dtype=np.float32)
    if arr.ndim == 5 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4:
        raise DataFormatError(
            f"{name}: expected (N, D, H, W) or (N, 1, D, H, W) volumes, got shape {arr.shape}"
        )
    return arr


def plot_reconstructions(
    inputs: Any, reconstructions: Any, *, n: int = 3, path: PathLike | None = None
) -> Figure:
    """Inputs next to their reconstructions: three orthogonal centre slices each.

    Args:
        inputs: ``(N, D, H, W)`` or ``(N, 1, D, H, W)`` volumes.
        reconstructions: The same shape.
        n: Number of subjects (rows) shown.
        path: Save the figure there as a PNG.
    """
    n = check_positive_int("n", n)
    x = _volume_batch("inputs", inputs)
    y = _volume_batch("reconstructions", reconstructions)
    if x.shape != y.shape:
        raise DataFormatError(
            f"reconstructions: expected the shape of inputs {x.shape}, got {y.shape}"
        )
    rows = min(n, x.shape[0])
    fig = Figure(figsize=(9.0, 1.8 * rows + 0.4), layout="constrained")
    axes = fig.subplots(rows, 6, squeeze=False)
    for r in range(rows):
        _show_slices(axes[r, :3], x[r])
        _show_slices(axes[r, 3:], y[r])
        axes[r, 0].text(-0.1, 0.5, f"#{r}", transform=axes[r, 0].transAxes, ha="right")
    fig.suptitle("input (left three) | reconstruction (right three)", fontsize=10)
    return _finish(fig, path)


def plot_confusion_matrix(
    cm: Any, classes: Sequence[Any], *, path: PathLike | None = None
) -> Figure:
    """Confusion matrix with counts and row percentages (rows: true, columns: predicted)."""
    matrix = np.asarray(cm)
    k = len(classes)
    if matrix.shape != (k, k):
        raise DataFormatError(
            f"cm: expected shape ({k}, {k}) for classes {list(map(str, classes))}, "
            f"got {matrix.shape}"
        )
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros(matrix.shape, dtype=float), where=rows > 0)
    side = 2.0 + 0.9 * k
    fig = Figure(figsize=(side + 1.0, side), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, label="share of true class")
    for i in range(k):
        for j in range(k):
            colour = "white" if share[i, j] > 0.5 else "black"
            ax.text(
                j,
                i,
                f"{matrix[i, j]:g}\n{share[i, j]:.0%}",
                ha="center",
                va="center",
                color=colour,
                fontsize=9,
            )
    names = [str(c) for c in classes]
    ax.set_xticks(range(k), names, rotation=45, ha="right")
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    return _finish(fig, path)


def plot_roc(
    y_true: Any, proba: Any, classes: Sequence[Any], *, path: PathLike | None = None
) -> Figure:
    """ROC curve(s) with AUC: of ``classes[1]`` if binary, one-vs-rest per class otherwise.

    A class without positive or negative samples has no curve; the legend says
    so. With more than two classes the title gives their mean, the AUC of
    :func:`~transmri.evaluation.metrics.classification_auc`.
    """
    from sklearn.metrics import roc_curve

    y = encode_labels(y_true, classes)
    p = np.asarray(proba, dtype=np.float64)
    k = len(classes)
    if p.ndim == 1 and k == 2:
        p = np.stack([1 - p, p], axis=1)
    if p.shape != (y.size, k):
        raise DataFormatError(f"proba: expected shape ({y.size}, {k}), got {p.shape}")
    fig = Figure(figsize=(5.0, 4.5), layout="constrained")
    ax = fig.subplots()
    targets = [1] if k == 2 else list(range(k))
    for c in targets:
        positive = y == c
        name = str(classes[c])
        if positive.all() or not positive.any():
            ax.plot([], [], label=f"{name}: undefined (one class only)")
            continue
        fpr, tpr, _ = roc_curve(positive, p[:, c])
        auc = binary_auc(positive, p[:, c])
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})")
    if k > 2:  # the macro mean of the curves' AUCs, as metrics_<split>.json reports it
        ax.set_title(f"one-vs-rest macro AUC {classification_auc(y, p):.3f}", fontsize=10)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    ax.set_xlabel("false positive rate (1 - specificity)")
    ax.set_ylabel("true positive rate (sensitivity)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.legend(loc="lower right", fontsize=8)
    return _finish(fig, path)


def show_sample(volume: Any, *, title: str | None = None, path: PathLike | None = None) -> Figure:
    """Three orthogonal centre slices of one volume."""
    arr = _volume3d("volume", volume)
    fig = Figure(figsize=(9.0, 3.3), layout="constrained")
    axes = fig.subplots(1, 3)
    _show_slices(axes, arr)
    fig.suptitle(title or f"volume {arr.shape}", fontsize=10)
    return _finish(fig, path)


def summarize_comparison(
    frame: pd.DataFrame, *, metrics: Sequence[str] | None = None, ci: float = 0.95
) -> pd.DataFrame:
    """Mean and interval of each metric across repeats, per method and training size.

    A score gets a Student t interval of its mean, clipped to the score's
    range (AUC stays in [0, 1]); a proportion such as ``converged`` gets the
    share of repeats with a Wilson interval; a count or size (``n_test``,
    ``n_fit``, ``n_val``) gets its mean and no interval (see
    :mod:`~transmri.evaluation.intervals`).

    Args:
        frame: Transfer benchmark rows: ``method, n_train, repeat`` and metric columns.
        metrics: Metric columns to summarise; default every numeric column but the keys.
        ci: Coverage of the interval of the mean (Student t over repeats).

    Returns:
        One row per ``(method, n_train)``: ``n_repeats`` and ``<m>_mean, <m>_low,
        <m>_high`` per metric (``nan`` interval for a single repeat and for counts).

    Raises:
        DataFormatError: A required column is missing.
    """
    ci = check_fraction("ci", ci)
    keys = ["method", "n_train", "repeat"]
    if metrics is None:
        metrics = [
            c for c in frame.columns if c not in keys and pd.api.types.is_numeric_dtype(frame[c])
        ]
    missing = [c for c in [*keys, *metrics] if c not in frame.columns]
    if missing:
        raise DataFormatError(
            f"comparison: expected columns {[*keys, *metrics]}, missing {missing} "
            f"(found {list(frame.columns)})"
        )
    rows = []
    for (method, n_train), group in frame.groupby(["method", "n_train"], sort=True):
        row: dict[str, Any] = {"method": method, "n_train": n_train, "n_repeats": len(group)}
        for m in metrics:
            low = high = float("nan")
            if m in PROPORTION_COLUMNS:
                flags = as_flags(group[m].dropna().tolist())
                mean = sum(flags) / len(flags) if flags else float("nan")
                low, high = wilson_interval(sum(flags), len(flags), ci=ci)
            elif m in COUNT_COLUMNS:
                values = pd.to_numeric(group[m], errors="coerce").dropna()
                mean = float(values.mean()) if len(values) else float("nan")
            else:
                values = pd.to_numeric(group[m], errors="coerce")
                mean, low, high = mean_interval(values.to_numpy(dtype=float), metric=m, ci=ci)
            row.update({f"{m}_mean": mean, f"{m}_low": low, f"{m}_high": high})
        rows.append(row)
    return pd.DataFrame(rows)


def plot_learning_curve(
    frame: pd.DataFrame,
    *,
    metric: str = "auc",
    ci: float = 0.95,
    title: str | None = None,
    path: PathLike | None = None,
) -> Figure:
    """Metric against the number of training scans, one line per method.

    Lines are the mean across repeats; the band is the ``ci`` interval of
    that mean (see :func:`summarize_comparison`). With a single training size
    there is no curve to draw: each method is then one dot with its interval
    as an error bar (a dot plot), methods along the x axis.

    Args:
        frame: Columns ``method, n_train, repeat, <metric>``.
        metric: The column to plot.
        ci: Coverage of the band.
        title: What the figure shows (which run); prefixed to the default title.
        path: Save the figure there as a PNG.
    """
    summary = summarize_comparison(frame, metrics=[metric], ci=ci)
    if summary.empty:
        raise DataFormatError("comparison: expected at least one row, got none")
    fig = Figure(figsize=(6.0, 4.2), layout="constrained")
    ax = fig.subplots()
    sizes = sorted(summary["n_train"].unique())
    if len(sizes) == 1:
        _dot_plot(ax, summary, metric)
        heading = f"{metric} at N={sizes[0]} (one training size: no curve)"
    else:
        for i, (method, group) in enumerate(summary.groupby("method", sort=True)):
            group = group.sort_values("n_train")
            colour = f"C{i % 10}"
            ax.plot(
                group["n_train"],
                group[f"{metric}_mean"],
                marker="o",
                color=colour,
                label=str(method),
            )
            ax.fill_between(
                group["n_train"],
                group[f"{metric}_low"],
                group[f"{metric}_high"],
                color=colour,
                alpha=0.2,
                linewidth=0,
            )
        ax.set_xlabel("training scans (N)")
        ax.legend(fontsize=8)
        heading = f"{metric}: mean and {ci:.0%} interval over repeats"
    ax.set_ylabel(metric)
    ax.set_title(heading if title is None else f"{title}\n{heading}", fontsize=10)
    ax.grid(alpha=0.3)
    return _finish(fig, path)


def _dot_plot(ax: Axes, summary: pd.DataFrame, metric: str) -> None:
    """One dot per method with its interval as an error bar (no line between methods)."""
    summary = summary.sort_values("method").reset_index(drop=True)
    means = summary[f"{metric}_mean"].to_numpy(dtype=float)
    lows = summary[f"{metric}_low"].to_numpy(dtype=float)
    highs = summary[f"{metric}_high"].to_numpy(dtype=float)
    for i, (mean, low, high) in enumerate(zip(means, lows, highs)):
        has_interval = not (math.isnan(low) or math.isnan(high))
        err = [[mean - low], [high - mean]] if has_interval else None
        ax.errorbar([i], [mean], yerr=err, fmt="o", color=f"C{i % 10}", capsize=4)
    ax.set_xticks(range(len(summary)), [str(m) for m in summary["method"]], rotation=30)
    ax.set_xlim(-0.6, len(summary) - 0.4)
    ax.set_xlabel("method")
