"""The recipes compared by :func:`~transmri.evaluation.transfer.transfer_curve`, and their registry.

A method is a function ``(MethodContext) -> MethodResult``: it gets the
training, validation and test scans of one draw (and a DataBunch of them),
trains however it likes, and returns class probabilities for the test scans
in the order of ``context.test``. Register your own with
:func:`register_method`; :func:`available_methods` lists them.

Built in:

- ``scratch``: the encoder's architecture with fresh weights plus a head,
  trained end to end (early stopping and model selection on the validation
  split);
- ``finetune``: the pretrained encoder plus a head, head first, then every
  layer with discriminative learning rates (:meth:`Learner.fine_tune`);
- ``linear_probe``: logistic regression on the frozen encoder's pooled codes;
- ``ridge``: a ridge classifier on downsampled voxels (Wen et al. 2020 found
  CNNs often fail to beat such linear baselines).

The linear methods select their regularisation by a subject-grouped,
stratified internal cross-validation on the training *and* validation scans
(their inner validation), so every method sees the same labelled subjects.

Example:
    >>> @register_method("my_recipe")  # doctest: +SKIP
    ... def my_recipe(context: MethodContext) -> MethodResult:
    ...     ...
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from transmri.data import DataBunch, ScanTable
from transmri.data.split import grouped_kfold
from transmri.errors import ConfigError

if TYPE_CHECKING:
    from transmri.evaluation.transfer_plan import TransferConfig
    from transmri.training import Learner

__all__ = [
    "MethodContext",
    "MethodResult",
    "available_methods",
    "get_method",
    "logistic_on_codes",
    "method_needs_encoder",
    "register_method",
]

TransferMethod = Callable[["MethodContext"], "MethodResult"]


@dataclass(frozen=True)
class MethodContext:
    """Everything one method run gets.

    Attributes:
        method: the method's registered name.
        train: the training scans.
        val: the inner validation scans (early stopping / model selection only).
        test: the test scans; probabilities must follow this table's order.
        data: a DataBunch built from these three splits (with the cache).
        encoder: the pretrained encoder's card or folder, or ``None``.
        work_dir: a folder of this run's own (e.g. a Learner's run folder).
        config: the benchmark's settings.
        seed: seeds weight initialisation and shuffling of this run.
    """

    method: str
    train: ScanTable
    val: ScanTable
    test: ScanTable
    data: DataBunch
    encoder: Path | None
    work_dir: Path
    config: TransferConfig
    seed: int

    @property
    def classes(self) -> list[str]:
        """Class names; column ``i`` of the probabilities is ``classes[i]``."""
        return list(self.data.classes)


@dataclass(frozen=True)
class MethodResult:
    """What a method returns.

    Attributes:
        probs: ``(n_test, n_classes)`` probabilities, rows in ``context.test`` order.
        converged: whether training converged (see the method's docstring).
        notes: anything worth recording (selected hyper-parameters, why not converged).
    """

    probs: np.ndarray
    converged: bool
    notes: str = ""


@dataclass(frozen=True)
class _Entry:
    function: TransferMethod
    needs_encoder: bool


_REGISTRY: dict[str, _Entry] = {}


def register_method(
    name: str, *, needs_encoder: bool = False, replace: bool = False
) -> Callable[[TransferMethod], TransferMethod]:
    """Register a transfer method under ``name`` (a decorator).

    Args:
        name: the name used in ``TransferConfig.methods`` and in ``comparison.csv``.
        needs_encoder: the method uses the pretrained encoder (it is refused
            when ``transfer_curve`` is given none).
        replace: allow replacing a method of the same name.

    Raises:
        ConfigError: a bad name, or a name already taken (without ``replace``).
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ConfigError(f"method name: expected an identifier such as 'ridge', got {name!r}")
    if name in _REGISTRY and not replace:
        raise ConfigError(f"method name: {name!r} is already registered; pass replace=True")

    def decorate(function: TransferMethod) -> TransferMethod:
        if not callable(function):
            raise TypeError(f"{name}: expected a callable (MethodContext) -> MethodResult")
        _REGISTRY[name] = _Entry(function, bool(needs_encoder))
        return function

    return decorate


def available_methods() -> tuple[str, ...]:
    """Names of the registered methods, in registration order."""
    return tuple(_REGISTRY)


def get_method(name: str) -> TransferMethod:
    """The function registered as ``name``.

    Raises:
        ConfigError: an unknown name (the known ones are listed).
    """
    if name not in _REGISTRY:
        raise ConfigError(
            f"methods: unknown method {name!r}; expected some of {available_methods()}"
        )
    return _REGISTRY[name].function


def method_needs_encoder(name: str) -> bool:
    """Whether the method ``name`` uses the pretrained encoder."""
    get_method(name)
    return _REGISTRY[name].needs_encoder


# ------------------------------------------------------------------ helpers
def _learner_options(context: MethodContext) -> dict[str, Any]:
    return {
        "batch_size": context.config.batch_size,
        "seed": context.seed,
        "progress": False,
        "overwrite": True,
    }


def _fit_options(context: MethodContext) -> dict[str, Any]:
    config = context.config
    return {
        "wd": config.weight_decay,
        "early_stop": config.early_stop,
        "monitor": config.monitor,
    }


def _cnn_result(learner: Learner, context: MethodContext) -> MethodResult:
    """Test probabilities of a trained Learner, and whether its training converged.

    Converged: the validation loss fell below its value after the first epoch
    at some later epoch, and the selected model's validation AUC is above 0.5.
    """
    from transmri.evaluation.metrics import classification_metrics

    history = learner.history_
    losses = [float(row["val_loss"]) for row in history if "val_loss" in row]
    fell = len(losses) > 1 and min(losses[1:]) < losses[0]
    val = learner.predict("val")
    val_auc = classification_metrics(
        val.labels, val.probs, classes=context.classes, n_boot=0
    ).point["auc"]
    probs = learner.predict("test").probs
    reasons = []
    if not fell:
        reasons.append(
            "validation loss never fell below its first-epoch value"
            if len(losses) > 1
            else "only one epoch: no fall of the validation loss to see"
        )
    if not val_auc > 0.5:
        reasons.append(f"validation AUC {val_auc:.3f} <= 0.5")
    if not context.config.keep_checkpoints:
        shutil.rmtree(learner.path / "checkpoints", ignore_errors=True)
    notes = f"epochs {len(history)}; val_auc {val_auc:.3f}"
    if reasons:
        notes += "; not converged: " + ", ".join(reasons)
    return MethodResult(probs=probs, converged=fell and val_auc > 0.5, notes=notes)


def _fit_linear(
    estimator: Any,
    grid: dict[str, list[float]],
    x: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    context: MethodContext,
) -> tuple[Any, bool, str]:
    """Standardise, select the grid value by grouped CV, refit on everything.

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
        make_pipeline(StandardScaler(), estimator),
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
@register_method("scratch")
def scratch(context: MethodContext) -> MethodResult:
    """Train the encoder's architecture (fresh weights) plus a head from scratch.

    Without an encoder, ``config.scratch_arch``'s default encoder is used.
    """
    from transmri.training import Learner, create_classifier, load_encoder

    config = context.config
    data = context.data
    if context.encoder is None:
        learner = create_classifier(
            data,
            context.work_dir,
            arch=config.scratch_arch,
            head=config.head,
            dropout=config.dropout,
            **_learner_options(context),
        )
    else:
        from transmri.models import EncoderClassifier, build_model

        _, card = load_encoder(context.encoder)
        torch.manual_seed(context.seed)
        built = build_model(card["architecture"])
        model = EncoderClassifier(
            getattr(built, "encoder", built),
            data.num_classes,
            head=config.head,
            dropout=config.dropout,
            input_shape=data.input_shape,
        )
        learner = Learner(
            data, model, context.work_dir, model_type="classifier", **_learner_options(context)
        )
    learner.fit(config.epochs, config.lr, **_fit_options(context))
    return _cnn_result(learner, context)


@register_method("finetune", needs_encoder=True)
def finetune(context: MethodContext) -> MethodResult:
    """Fine-tune the pretrained encoder: head only, then every layer (``Learner.fine_tune``)."""
    from transmri.training import Learner

    config = context.config
    learner = Learner.from_pretrained(
        context.data,
        context.encoder,  # type: ignore[arg-type]  # needs_encoder guarantees it
        context.work_dir,
        head=config.head,
        dropout=config.dropout,
        **_learner_options(context),
    )
    learner.fine_tune(
        config.epochs_frozen,
        config.epochs_unfrozen,
        config.lr,
        lr_mult=config.lr_mult,
        **_fit_options(context),
    )
    return _cnn_result(learner, context)


@register_method("linear_probe", needs_encoder=True)
def linear_probe(context: MethodContext) -> MethodResult:
    """Logistic regression (C by grouped internal CV) on the frozen encoder's pooled codes."""
    from transmri.training import Learner

    learner = Learner.from_pretrained(
        context.data,
        context.encoder,  # type: ignore[arg-type]  # needs_encoder guarantees it
        context.work_dir,
        **_learner_options(context),
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


@register_method("ridge")
def ridge(context: MethodContext) -> MethodResult:
    """Ridge classifier (alpha by grouped internal CV) on downsampled voxels.

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
