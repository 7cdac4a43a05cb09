"""Classification and reconstruction metrics, with subject-grouped bootstrap intervals.

Every classification number is computed on the whole split; the interval
around it comes from a percentile bootstrap that resamples *subjects* (all
scans of a drawn subject enter together), so that several scans of one person
do not pass for independent evidence.

Example:
    >>> import numpy as np
    >>> y = np.array(["CN", "AD", "AD", "CN"])
    >>> p = np.array([[0.8, 0.2], [0.3, 0.7], [0.4, 0.6], [0.6, 0.4]])
    >>> report = classification_metrics(y, p, classes=["CN", "AD"], n_boot=0)
    >>> report.point["accuracy"], report.point["auc"]
    (1.0, 1.0)
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch
from scipy.stats import rankdata

from transmri._files import atomic_write_text
from transmri._validation import check_existing_file, check_fraction, check_positive_int
from transmri.errors import DataFormatError

__all__ = [
    "METRIC_NAMES",
    "MetricsReport",
    "binary_auc",
    "classification_auc",
    "classification_metrics",
    "encode_labels",
    "read_metrics",
    "reconstruction_metrics",
    "write_metrics",
]

#: Metrics of :func:`classification_metrics`, in the order reports show them.
METRIC_NAMES: tuple[str, ...] = (
    "accuracy",
    "balanced_accuracy",
    "auc",
    "sensitivity",
    "specificity",
    "f1",
)

_FORMAT_VERSION = 1


@dataclass(frozen=True, eq=False)
class MetricsReport:
    """Point estimates and bootstrap intervals of a classifier on one split.

    Attributes:
        point: Metric name -> estimate on the whole split (``nan`` if undefined).
        ci_low: Metric name -> lower end of the percentile interval.
        ci_high: Metric name -> upper end of the percentile interval.
        confusion_matrix: ``(k, k)`` counts, rows = true class, columns = predicted.
        per_class: One row per class: ``precision, recall, f1, support``.
        classes: Class names, in the order of the probability columns.
        n_samples: Number of scans in the split.
        n_groups: Number of subjects (bootstrap units).
        n_boot: Number of bootstrap resamples (0: no intervals).
        ci: Coverage of the intervals, e.g. 0.95.
        seed: Seed of the bootstrap.
        notes: Plain-language remarks (undefined metrics, skipped resamples).
    """

    point: dict[str, float]
    ci_low: dict[str, float]
    ci_high: dict[str, float]
    confusion_matrix: np.ndarray
    per_class: pd.DataFrame
    classes: tuple[str, ...]
    n_samples: int
    n_groups: int
    n_boot: int
    ci: float
    seed: int
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict (``nan`` written as ``null``); see :func:`write_metrics`."""
        return {
            "format_version": _FORMAT_VERSION,
            "classes": list(self.classes),
            "n_samples": self.n_samples,
            "n_groups": self.n_groups,
            "n_boot": self.n_boot,
            "ci": self.ci,
            "seed": self.seed,
            "metrics": {
                name: {
                    "estimate": _json_float(self.point[name]),
                    "ci_low": _json_float(self.ci_low[name]),
                    "ci_high": _json_float(self.ci_high[name]),
                }
                for name in self.point
            },
            "confusion_matrix": self.confusion_matrix.astype(int).tolist(),
            "per_class": {
                str(cls): {
                    "precision": _json_float(row["precision"]),
                    "recall": _json_float(row["recall"]),
                    "f1": _json_float(row["f1"]),
                    "support": int(row["support"]),
                }
                for cls, row in self.per_class.iterrows()
            },
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "metrics") -> MetricsReport:
        """Rebuild a report from :meth:`to_dict` output.

        Args:
            data: The dict, e.g. read from ``metrics_test.json``.
            source: Where it came from, for error messages.

        Raises:
            DataFormatError: A key is missing or has the wrong type.
        """
        required = ("classes", "metrics", "confusion_matrix", "per_class")
        missing = [key for key in required if key not in data]
        if missing:
            raise DataFormatError(f"{source}: expected keys {list(required)}, missing {missing}")
        try:
            metrics = data["metrics"]
            per_class = pd.DataFrame.from_dict(
                {k: dict(v) for k, v in data["per_class"].items()}, orient="index"
            )
            per_class = per_class.reindex(columns=["precision", "recall", "f1", "support"])
            per_class = per_class.astype(float).astype({"support": int})
            per_class.index.name = "class"
            return cls(
                point={k: _from_json_float(v["estimate"]) for k, v in metrics.items()},
                ci_low={k: _from_json_float(v["ci_low"]) for k, v in metrics.items()},
                ci_high={k: _from_json_float(v["ci_high"]) for k, v in metrics.items()},
                confusion_matrix=np.asarray(data["confusion_matrix"], dtype=np.int64),
                per_class=per_class,
                classes=tuple(str(c) for c in data["classes"]),
                n_samples=int(data.get("n_samples", 0)),
                n_groups=int(data.get("n_groups", 0)),
                n_boot=int(data.get("n_boot", 0)),
                ci=float(data.get("ci", 0.95)),
                seed=int(data.get("seed", 0)),
                notes=tuple(str(n) for n in data.get("notes", ())),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataFormatError(
                f"{source}: expected the format of MetricsReport.to_dict(), got an error: {exc}"
            ) from exc

    def to_frame(self) -> pd.DataFrame:
        """One row per metric: ``metric, estimate, ci_low, ci_high``."""
        return pd.DataFrame(
            {
                "metric": list(self.point),
                "estimate": [self.point[k] for k in self.point],
                "ci_low": [self.ci_low[k] for k in self.point],
                "ci_high": [self.ci_high[k] for k in self.point],
            }
        )


def _json_float(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _from_json_float(value: object) -> float:
    return float("nan") if value is None else float(value)  # type: ignore[arg-type]


def encode_labels(y_true: npt.ArrayLike, classes: Sequence[Any]) -> np.ndarray:
    """Return ``y_true`` as int indices into ``classes``.

    Labels may be class names (any value found in ``classes``) or integer
    indices ``0 .. len(classes) - 1``.

    Raises:
        DataFormatError: A label is neither a class nor a valid index.
    """
    values = np.asarray(y_true)
    if values.ndim != 1:
        raise DataFormatError(f"y_true: expected a 1D array of labels, got shape {values.shape}")
    lookup = {c: i for i, c in enumerate(classes)}
    lookup.update({str(c): i for i, c in enumerate(classes)})
    try:
        return np.array([lookup[v] for v in values.tolist()], dtype=np.int64)
    except (KeyError, TypeError):
        pass
    if np.issubdtype(values.dtype, np.integer) and (
        values.size == 0 or (values.min() >= 0 and values.max() < len(classes))
    ):
        return values.astype(np.int64)
    unknown = sorted({str(v) for v in values.tolist() if v not in lookup})[:5]
    raise DataFormatError(
        f"y_true: expected labels among classes {list(map(str, classes))} "
        f"(or indices 0..{len(classes) - 1}), found {unknown}"
    )


def _check_proba(proba: Any, n: int, k: int) -> np.ndarray:
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim == 1 and k == 2:
        p = np.stack([1.0 - p, p], axis=1)
    if p.ndim != 2 or p.shape != (n, k):
        raise DataFormatError(
            f"proba: expected shape ({n}, {k}) (samples x classes)"
            f"{' or (' + str(n) + ',) for the positive class' if k == 2 else ''}, "
            f"got {p.shape}"
        )
    if not np.isfinite(p).all():
        raise DataFormatError("proba: expected finite probabilities, found NaN or Inf")
    return p


def binary_auc(positive: npt.ArrayLike, score: npt.ArrayLike) -> float:
    """ROC AUC of ``score`` for the samples where ``positive`` is true (Mann-Whitney, ties half).

    Equals scikit-learn's ``roc_auc_score(positive, score)``; ``nan`` when
    ``positive`` is all true or all false (the AUC is undefined then).
    """
    pos = np.asarray(positive, dtype=bool)
    n_pos = int(pos.sum())
    n_neg = pos.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(np.asarray(score, dtype=np.float64))
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def classification_auc(y: npt.ArrayLike, probs: npt.ArrayLike) -> float:
    """The package's one ROC AUC of class indices ``y`` against ``(n, k)`` probabilities.

    Every AUC transmri reports (``history.csv``'s ``val_auc``, ``metrics_<split>.json``,
    the fine-tuning recipes' model selection, the ROC figure) is this one.

    - Two classes: the AUC of ``probs[:, 1]`` for class 1.
    - More classes: one-vs-rest macro, the mean over the classes present in
      ``y`` of the AUC of ``probs[:, c]`` for class ``c``. A class absent from
      ``y`` is left out (its one-vs-rest AUC is undefined), as balanced
      accuracy leaves it out; the probabilities are used as given.
    - ``nan`` when ``y`` holds fewer than two classes.

    Samples with a negative label (unlabelled) are ignored.

    Example:
        >>> classification_auc([0, 0, 1, 1], [[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8]])
        1.0
    """
    labels = np.asarray(y, dtype=np.int64).reshape(-1)
    p = np.asarray(probs, dtype=np.float64)
    keep = labels >= 0
    labels, p = labels[keep], p[keep]
    present = np.unique(labels)
    if present.size < 2:
        return float("nan")
    if p.shape[1] == 2:
        return binary_auc(labels == 1, p[:, 1])
    return float(np.mean([binary_auc(labels == c, p[:, c]) for c in present]))


def _confusion(y: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(y * k + pred, minlength=k * k).reshape(k, k)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _all_metrics(y: np.ndarray, p: np.ndarray, k: int) -> dict[str, float]:
    pred = p.argmax(axis=1)
    cm = _confusion(y, pred, k)
    n = cm.sum()
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    recall = _safe_div(tp, support)
    spec = _safe_div(n - support - predicted + tp, n - support)
    f1_den = support + predicted
    f1 = _safe_div(2 * tp, f1_den)
    out = {
        "accuracy": float(tp.sum() / n),
        # Classes absent from y_true are left out (as scikit-learn does).
        "balanced_accuracy": _nanmean(recall),
    }
    out["auc"] = classification_auc(y, p)
    if k == 2:
        out["sensitivity"] = float(recall[1])
        out["specificity"] = float(recall[0])
        out["f1"] = float(f1[1]) if f1_den[1] > 0 else 0.0
    else:
        out["sensitivity"] = _nanmean(recall)
        out["specificity"] = _nanmean(spec)
        # Macro F1 over the classes present in y_true or y_pred (scikit-learn's default).
        out["f1"] = _nanmean(f1)
    return {name: out[name] for name in METRIC_NAMES}


def _nanmean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else float("nan")


def _per_class(y: np.ndarray, p: np.ndarray, classes: tuple[str, ...]) -> pd.DataFrame:
    k = len(classes)
    cm = _confusion(y, p.argmax(axis=1), k)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    precision = np.nan_to_num(_safe_div(tp, predicted.astype(np.float64)))
    recall = np.nan_to_num(_safe_div(tp, support.astype(np.float64)))
    f1 = np.nan_to_num(_safe_div(2 * tp, (support + predicted).astype(np.float64)))
    frame = pd.DataFrame(
        {"precision": precision, "recall": recall, "f1": f1, "support": support.astype(int)},
        index=pd.Index(classes, name="class"),
    )
    return frame


def _group_members(groups: Any, n: int) -> list[np.ndarray]:
    if groups is None:
        return [np.array([i]) for i in range(n)]
    g = np.asarray(groups)
    if g.shape != (n,):
        raise DataFormatError(
            f"groups: expected one subject per sample, shape ({n},), got {g.shape}"
        )
    _, inverse = np.unique(g.astype(str), return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.flatnonzero(np.diff(inverse[order])) + 1
    return np.split(order, bounds)


def classification_metrics(
    y_true: npt.ArrayLike,
    proba: Any,
    *,
    classes: Sequence[Any],
    groups: npt.ArrayLike | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
) -> MetricsReport:
    """Accuracy, balanced accuracy, ROC AUC, sensitivity, specificity and F1 with intervals.

    Binary (two classes): ``classes[1]`` is the positive class; AUC uses its
    probability, sensitivity is its recall, specificity the recall of
    ``classes[0]`` and F1 is the positive class's. Multi-class: AUC is the
    one-vs-rest macro mean over the classes present (:func:`classification_auc`),
    sensitivity the macro recall, specificity the macro specificity and F1 the
    macro F1. Predictions are the arg-max of ``proba``.

    Intervals are percentile intervals over ``n_boot`` bootstrap resamples
    that draw whole subjects (``groups``) with replacement; without
    ``groups`` every scan is its own subject. A resample holding a single
    class has no AUC and is skipped for the AUC interval only. A split with a
    single class reports AUC as ``nan`` with a note, it does not fail.

    Args:
        y_true: True labels: class names or indices into ``classes``.
        proba: ``(n, k)`` class probabilities (binary: also ``(n,)`` of ``classes[1]``).
        classes: Class names, in the order of the columns of ``proba``.
        groups: Subject of each sample; all of a subject's scans are resampled together.
        n_boot: Number of bootstrap resamples; 0 gives ``nan`` intervals.
        seed: Seed of the bootstrap.
        ci: Interval coverage in (0, 1).

    Returns:
        A :class:`MetricsReport`.

    Raises:
        DataFormatError: Shapes disagree, a label is unknown or ``proba`` is not finite.
        ConfigError: ``n_boot``, ``ci`` or ``classes`` are invalid.
    """
    class_names = tuple(str(c) for c in classes)
    if len(class_names) < 2 or len(set(class_names)) != len(class_names):
        raise DataFormatError(
            f"classes: expected at least two distinct class names, got {list(class_names)}"
        )
    n_boot = check_positive_int("n_boot", n_boot, minimum=0)
    ci = check_fraction("ci", ci)
    y = encode_labels(y_true, classes)
    if y.size == 0:
        raise DataFormatError("y_true: expected at least one sample, got none")
    k = len(class_names)
    p = _check_proba(proba, y.size, k)
    members = _group_members(groups, y.size)

    point = _all_metrics(y, p, k)
    notes: list[str] = []
    present = np.unique(y)
    if present.size < k:
        absent = [class_names[c] for c in range(k) if c not in present]
        notes.append(
            f"AUC undefined: the split holds no sample of class {', '.join(map(repr, absent))}"
            if math.isnan(point["auc"])
            else f"no sample of class {', '.join(map(repr, absent))} in the split"
            + (" (AUC: one-vs-rest mean over the classes present)" if k > 2 else "")
        )

    low = dict.fromkeys(point, float("nan"))
    high = dict.fromkeys(point, float("nan"))
    if n_boot > 0:
        rng = np.random.default_rng(seed)
        samples = np.full((n_boot, len(METRIC_NAMES)), np.nan)
        for b in range(n_boot):
            drawn = rng.integers(0, len(members), size=len(members))
            idx = np.concatenate([members[g] for g in drawn])
            values = _all_metrics(y[idx], p[idx], k)
            samples[b] = [values[name] for name in METRIC_NAMES]
        alpha = (1.0 - ci) / 2.0
        for j, name in enumerate(METRIC_NAMES):
            column = samples[:, j]
            valid = column[~np.isnan(column)]
            skipped = n_boot - valid.size
            if valid.size and not math.isnan(point[name]):
                low[name] = float(np.quantile(valid, alpha))
                high[name] = float(np.quantile(valid, 1.0 - alpha))
            if skipped and not math.isnan(point[name]):
                notes.append(
                    f"{name}: {skipped} of {n_boot} bootstrap resamples had it undefined "
                    "(a single class drawn) and were skipped"
                )

    return MetricsReport(
        point=point,
        ci_low=low,
        ci_high=high,
        confusion_matrix=_confusion(y, p.argmax(axis=1), k),
        per_class=_per_class(y, p, class_names),
        classes=class_names,
        n_samples=int(y.size),
        n_groups=len(members),
        n_boot=n_boot,
        ci=ci,
        seed=int(seed),
        notes=tuple(notes),
    )


def write_metrics(report: MetricsReport, path: str | os.PathLike[str]) -> Path:
    """Write ``report.to_dict()`` as JSON to ``path`` (temp file, then rename).

    This is the ``metrics_<split>.json`` format that :func:`build_report` reads.
    """
    text = json.dumps(report.to_dict(), indent=2, allow_nan=False)
    return atomic_write_text(path, text + "\n")


def read_metrics(path: str | os.PathLike[str]) -> MetricsReport:
    """Read a file written by :func:`write_metrics`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        DataFormatError: The file is not valid JSON or not in the expected format.
    """
    file = check_existing_file(path, what="metrics file")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"{file}: expected JSON, got a parse error: {exc}") from exc
    if not isinstance(data, dict):
        raise DataFormatError(f"{file}: expected a JSON object, got {type(data).__name__}")
    return MetricsReport.from_dict(data, source=str(file))


def _as_volumes(name: str, x: Any) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x))
    t = t.to(torch.float32)
    if t.ndim == 3:
        t = t[None, None]
    elif t.ndim == 4:
        t = t[:, None]
    elif t.ndim != 5 or t.shape[1] != 1:
        raise DataFormatError(
            f"{name}: expected (D, H, W), (N, D, H, W) or (N, 1, D, H, W), got {tuple(t.shape)}"
        )
    return t


def reconstruction_metrics(x: Any, x_hat: Any, *, data_range: float = 1.0) -> dict[str, float]:
    """Mean squared error, PSNR and 3D SSIM between volumes and their reconstructions.

    Each metric is computed per volume, then averaged over volumes. PSNR is
    ``10 log10(data_range**2 / MSE)`` (``inf`` for a perfect reconstruction).
    SSIM is MONAI's :class:`~monai.metrics.SSIMMetric` in 3D with a gaussian
    window (sigma 1.5) of size 11, shrunk to the largest odd size that fits
    the smallest dimension of small volumes.

    Args:
        x: Volumes ``(D, H, W)``, ``(N, D, H, W)`` or ``(N, 1, D, H, W)`` (array or tensor).
        x_hat: Reconstructions, the same shape.
        data_range: Intensity range (1.0 for min-max scaled inputs).

    Returns:
        ``{"mse": ..., "psnr": ..., "ssim": ...}``.

    Example:
        >>> v = np.random.default_rng(0).random((12, 12, 12))
        >>> reconstruction_metrics(v, v)["ssim"]
        1.0
    """
    from monai.metrics import SSIMMetric

    data_range = float(data_range)
    if not math.isfinite(data_range) or data_range <= 0:
        raise DataFormatError(f"data_range: expected a finite number > 0, got {data_range!r}")
    a = _as_volumes("x", x)
    b = _as_volumes("x_hat", x_hat)
    if a.shape != b.shape:
        raise DataFormatError(
            f"x_hat: expected the shape of x {tuple(a.shape)}, got {tuple(b.shape)}"
        )
    mse = ((a - b) ** 2).flatten(1).mean(dim=1).double()
    with np.errstate(divide="ignore"):
        psnr = 10.0 * np.log10(data_range**2 / mse.numpy())
    smallest = min(a.shape[2:])
    win = min(11, smallest if smallest % 2 else smallest - 1)
    if win < 3:
        raise DataFormatError(
            f"x: expected every spatial size >= 3 for 3D SSIM, got {tuple(a.shape[2:])}"
        )
    metric = SSIMMetric(spatial_dims=3, data_range=data_range, win_size=win, reduction="none")
    ssim = torch.as_tensor(metric(b, a)).reshape(-1).double()
    return {
        "mse": float(mse.mean()),
        "psnr": float(np.mean(psnr)),
        "ssim": float(ssim.mean()),
    }
