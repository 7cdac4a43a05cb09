"""Linear methods of the transfer benchmark: ``linear_probe``, ``ridge``, the regional probes.

- ``linear_probe``: logistic regression on the frozen encoder's pooled codes;
- ``ridge``: a ridge classifier on downsampled voxels (Wen et al. 2020 found
  CNNs often fail to beat such linear baselines);
- ``regional_probe`` / ``regional_random``: logistic regression on
  :func:`~transmri.models.regional_features` (every layer group's feature map
  of the frozen encoder, average-pooled to ``config.probe_grid`` boxes per
  axis; ``config.probe_levels`` picks the layers) of the pretrained encoder,
  or of the same architecture with fresh random weights seeded by the run:
  the control that says how much of a regional probe's score is the
  pretraining and how much is the read-out itself.

They select their regularisation by a subject-grouped, stratified internal
cross-validation on the training *and* validation scans (their inner
validation), so every method sees the same labelled subjects.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from transmri.data import DataBunch
from transmri.data.split import grouped_kfold
from transmri.models import build_model, regional_features
from transmri.models.features import REGIONAL_GRID
from transmri.training import Learner, load_encoder
from transmri.transfer.context import MethodContext, MethodResult

__all__ = [
    "PROBE_METHODS",
    "linear_probe",
    "logistic_on_codes",
    "regional_codes",
    "regional_probe",
    "regional_random",
    "ridge",
]


def _fit_linear(
    estimator: Any,
    grid: dict[str, list[float]],
    x: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    context: MethodContext,
    *,
    scale: bool = True,
) -> tuple[Any, bool, str]:
    """Standardise, select the grid value by grouped CV, refit on everything.

    ``scale=False`` centres the columns without dividing by their spread:
    for voxels, which share one intensity scale. Dividing blows up the voxels
    at the brain's edge that are non-zero in a few training scans only (on
    MNI-registered IXI scans it cost the voxel ridge 0.11 AUC on sex at
    N = 80 and doubled its age MAE; see ``docs/RESULTS.md``).

    Returns:
        ``(fitted search, converged, notes)``; not converged when the solver
        warned that it did not converge.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    binary = len(context.classes) == 2
    scoring = "roc_auc" if binary else "balanced_accuracy"
    search = GridSearchCV(
        make_pipeline(StandardScaler(with_std=scale), estimator),
        {f"{type(estimator).__name__.lower()}__{k}": v for k, v in grid.items()},
        scoring=scoring,
        cv=grouped_kfold(y, groups, max_folds=context.config.cv_folds, seed=context.seed),
        error_score="raise",
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        # Folds of a tiny training set can hold a single class for scoring: harmless here.
        warnings.filterwarnings("ignore", category=UserWarning)
        warnings.filterwarnings("ignore", category=RuntimeWarning)
        search.fit(x, y, groups=groups)
    failed = any(issubclass(w.category, ConvergenceWarning) for w in caught)
    chosen = {k.split("__", 1)[1]: v for k, v in search.best_params_.items()}
    notes = f"selected {chosen} by {search.cv.get_n_splits()}-fold grouped CV ({scoring})"
    if failed:
        notes += "; not converged: the solver warned it did not converge"
    return search, not failed, notes


def _full_probs(scores: np.ndarray, present: np.ndarray, n_classes: int) -> np.ndarray:
    """Probabilities over every class from an estimator's per-present-class scores."""
    out = np.zeros((scores.shape[0], n_classes), dtype=np.float64)
    out[:, present] = scores
    return out


def _fit_rows(context: MethodContext) -> tuple[np.ndarray, np.ndarray]:
    """Class indices and subjects of the training + validation scans, in that order."""
    index = {c: i for i, c in enumerate(context.classes)}
    tables = (context.train, context.val)
    y = np.array([index[str(v)] for t in tables for v in t.frame["label"]], dtype=np.int64)
    groups = np.array([s for t in tables for s in t.subjects])
    return y, groups


# ------------------------------------------------------------------ methods
def linear_probe(context: MethodContext) -> MethodResult:
    """Logistic regression (C by grouped internal CV) on the frozen encoder's pooled codes."""
    learner = Learner.from_pretrained(
        context.data,
        context.encoder,  # type: ignore[arg-type]  # needs_encoder guarantees it
        context.work_dir,
        **context.learner_options(),
    )
    codes = [learner.encode_data(split)[0] for split in ("train", "val", "test")]
    return logistic_on_codes(context, codes, np.logspace(-4, 2, 7))


def logistic_on_codes(
    context: MethodContext, codes: list[np.ndarray], cs: np.ndarray, notes: str = ""
) -> MethodResult:
    """Logistic regression on ``[train, val, test]`` codes; C from ``cs`` by grouped CV.

    Fitted on the training and validation scans (the grouped CV is their
    inner validation); the test codes are only predicted.
    """
    from sklearn.linear_model import LogisticRegression

    y, groups = _fit_rows(context)
    search, converged, chosen = _fit_linear(
        LogisticRegression(max_iter=5000),
        {"C": [float(c) for c in cs]},
        np.concatenate(codes[:2]),
        y,
        groups,
        context,
    )
    probs = _full_probs(search.predict_proba(codes[2]), search.classes_, len(context.classes))
    return MethodResult(
        probs=probs, converged=converged, notes=f"{notes}; {chosen}" if notes else chosen
    )


def _voxels(data: DataBunch, split: str, factor: int) -> np.ndarray:
    """Flattened, ``factor``-times average-pooled volumes of one split (no augmentation)."""
    dataset = data.dataset(split)  # type: ignore[arg-type]
    rows = []
    for i in range(len(dataset)):
        volume = torch.from_numpy(dataset.volume(i))[None, None]
        if factor > 1:
            volume = torch.nn.functional.avg_pool3d(volume, factor, ceil_mode=True)
        rows.append(volume.reshape(-1).numpy())
    return np.stack(rows)


def ridge(context: MethodContext) -> MethodResult:
    """Ridge classifier (alpha by grouped internal CV) on downsampled voxels, centred not scaled.

    Probabilities are the sigmoid (binary) or softmax of the decision values;
    the AUC depends only on their order.
    """
    from scipy.special import expit
    from sklearn.linear_model import RidgeClassifier

    factor = context.config.ridge_downsample
    x_fit = np.concatenate([_voxels(context.data, s, factor) for s in ("train", "val")])
    y, groups = _fit_rows(context)
    n_features = x_fit.shape[1]
    search, converged, notes = _fit_linear(
        RidgeClassifier(),
        {"alpha": [float(a) for a in n_features * np.logspace(-5, 3, 9)]},
        x_fit,
        y,
        groups,
        context,
        scale=False,
    )
    decision = np.asarray(search.decision_function(_voxels(context.data, "test", factor)))
    if decision.ndim == 1:
        positive = expit(decision)
        scores = np.stack([1.0 - positive, positive], axis=1)
    else:
        shifted = np.exp(decision - decision.max(axis=1, keepdims=True))
        scores = shifted / shifted.sum(axis=1, keepdims=True)
    probs = _full_probs(scores, search.classes_, len(context.classes))
    return MethodResult(probs=probs, converged=converged, notes=f"{n_features} voxels; {notes}")


# ---------------------------------------------------------- regional probes
PROBE_METHODS: tuple[str, ...] = ("regional_probe", "regional_random")


def regional_codes(
    encoder: nn.Module,
    data: DataBunch,
    split: str,
    *,
    grid: int = REGIONAL_GRID,
    levels: str = "all",
    batch_size: int = 8,
) -> np.ndarray:
    """Regional features of every scan of ``split`` (eval mode, no gradients, no augmentation).

    Returns:
        ``(n_scans, n_features)`` float32, rows in the split table's order.
    """
    dataset = data.dataset(split)  # type: ignore[arg-type]
    encoder.eval()
    rows: list[np.ndarray] = []
    with torch.no_grad():
        for start in range(0, len(dataset), batch_size):
            stop = min(start + batch_size, len(dataset))
            batch = np.stack(
                [np.asarray(dataset.volume(i), np.float32) for i in range(start, stop)]
            )
            x = torch.from_numpy(batch)[:, None]
            rows.append(regional_features(encoder, x, grid=grid, levels=levels).numpy())
    return np.concatenate(rows).astype(np.float32, copy=False)


def _probe(context: MethodContext, encoder: nn.Module) -> MethodResult:
    config = context.config
    codes = [
        regional_codes(encoder, context.data, split, grid=config.probe_grid,
                       levels=config.probe_levels, batch_size=config.batch_size)
        for split in ("train", "val", "test")
    ]  # fmt: skip
    where = (
        f"{codes[0].shape[1]} regional features (grid {config.probe_grid}, {config.probe_levels})"
    )
    return logistic_on_codes(context, codes, np.logspace(-5, 1, 7), notes=where)


def _encoder_module(context: MethodContext, *, pretrained: bool) -> nn.Module:
    """The pretrained encoder, or the same architecture freshly initialised with the run's seed."""
    encoder, card = load_encoder(context.encoder)  # type: ignore[arg-type]  # needs_encoder
    if pretrained:
        return encoder
    torch.manual_seed(context.seed)
    built = build_model(card["architecture"])
    return getattr(built, "encoder", built)


def regional_probe(context: MethodContext) -> MethodResult:
    """Logistic regression on the frozen pretrained encoder's regional, multi-layer features."""
    return _probe(context, _encoder_module(context, pretrained=True))


def regional_random(context: MethodContext) -> MethodResult:
    """The ``regional_probe`` read-out on a randomly initialised encoder (the control)."""
    return _probe(context, _encoder_module(context, pretrained=False))
