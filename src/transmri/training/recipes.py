"""Fine-tuning recipes for a pretrained encoder on a small target study.

A :class:`FineTuneRecipe` (frozen, validated) names the steps;
:func:`apply_recipe` runs them on a classifier :class:`~transmri.training.Learner`:

1. ``augment``: the DataBunch's training split gets that augmentation preset;
2. ``recompute_norm``: BatchNorm running statistics re-estimated on the
   target training scans (:func:`recompute_norm_stats`); for GroupNorm,
   pretrain with ``norm="group"`` instead (no statistics to adapt);
3. linear probe (LP-FT, Kumar et al. 2022): ``probe="logreg"`` fits a
   logistic regression on the frozen, pooled codes of the training split and
   copies it into the linear head (:func:`linear_probe`); ``probe="head"``
   trains the head alone for ``probe_epochs``;
4. L2-SP (Li et al. 2018): ``alpha/2 ||w - w_pretrained||^2`` on the encoder
   plus ``beta/2 ||w_head||^2`` (:class:`L2SPLoss`, a wrapper that keeps a
   frozen copy of the weights the fine-tuning starts from);
5. fine-tuning of every layer with layer-wise learning-rate decay
   (``lr * lr_decay ** depth-from-top`` over ``model.layer_groups()``),
   optionally with gradual unfreezing, early stopping on validation AUC and
   the best epoch restored; with ``keep_probe=True`` the probed head is kept
   if no fine-tuned epoch beats its validation AUC.

:func:`select_recipe` picks among recipes by validation AUC on inner folds of
the *training* scans only (nested), so the test split is never read.

Example:
    >>> recipe = FineTuneRecipe(probe="logreg", lr_decay=0.5, l2sp_alpha=0.01)  # doctest: +SKIP
    >>> learner = Learner.from_pretrained(data, "runs/pretrain", "runs/ft")  # doctest: +SKIP
    >>> apply_recipe(learner, recipe)  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from transmri._validation import check_choice, check_positive_float, check_positive_int
from transmri.errors import ConfigError
from transmri.training.objectives import ClassificationLoss, Objective

__all__ = [
    "PROBES",
    "PROBE_C_GRID",
    "FineTuneRecipe",
    "L2SPLoss",
    "RecipeSelection",
    "apply_recipe",
    "data_with_augment",
    "linear_probe",
    "recompute_norm_stats",
    "select_recipe",
]

PROBES: tuple[str, ...] = ("none", "logreg", "head")

#: The values of ``C`` that ``probe_c=None`` chooses from.
PROBE_C_GRID: tuple[float, ...] = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)


@dataclass(frozen=True)
class FineTuneRecipe:
    """The steps and hyper-parameters of one fine-tuning recipe (see the module doc).

    Args:
        epochs: epochs with every layer trainable (after the probe).
        lr: learning rate of the head in that stage.
        lr_decay: layer-wise decay: group ``i`` of ``n`` learns at
            ``lr * lr_decay ** (n - 1 - i)`` (1: one rate for all).
        probe: ``"none"``, ``"logreg"`` (LP-FT) or ``"head"`` (train the head on a frozen encoder).
        probe_c: inverse L2 strength of the logistic regression (standardised
            codes); ``None``: chosen from ``PROBE_C_GRID`` by a subject-grouped,
            stratified cross-validation on the training scans (never the
            validation or test scans).
        probe_epochs: epochs of head-only training for ``probe="head"``.
        probe_lr: learning rate of that head-only training.
        keep_probe: keep the probed weights if fine-tuning never beats their val AUC.
        gradual: unfreeze one layer group per epoch from the top.
        l2sp_alpha: L2-SP strength towards the starting encoder weights (0: off).
        l2sp_beta: L2 strength on the head weights (0: off).
        wd: optimiser weight decay (keep 0 with L2-SP).
        recompute_norm: re-estimate BatchNorm statistics on the target training scans.
        augment: augmentation preset of the training split (``None``: leave the data's).
        early_stop: stop after this many epochs without improvement (``None``: never).
        monitor: history column that picks the best epoch.
        schedule: ``None``, ``"onecycle"`` or ``"cosine"``.
    """

    epochs: int = 20
    lr: float = 1e-3
    lr_decay: float = 1.0
    probe: Literal["none", "logreg", "head"] = "none"
    probe_c: float | None = 1.0
    probe_epochs: int = 5
    probe_lr: float = 1e-2
    keep_probe: bool = True
    gradual: bool = False
    l2sp_alpha: float = 0.0
    l2sp_beta: float = 0.0
    wd: float = 0.0
    recompute_norm: bool = False
    augment: str | None = None
    early_stop: int | None = 5
    monitor: str = "val_auc"
    schedule: Literal["onecycle", "cosine"] | None = None

    def __post_init__(self) -> None:
        check_positive_int("epochs", self.epochs, minimum=0)
        check_positive_float("lr", self.lr)
        check_positive_float("lr_decay", self.lr_decay)
        if self.lr_decay > 1:
            raise ConfigError(f"lr_decay: expected a ratio in (0, 1], got {self.lr_decay!r}")
        check_choice("probe", self.probe, PROBES)
        if self.probe_c is not None:
            check_positive_float("probe_c", self.probe_c)
        check_positive_int("probe_epochs", self.probe_epochs)
        check_positive_float("probe_lr", self.probe_lr)
        for name in ("l2sp_alpha", "l2sp_beta", "wd"):
            check_positive_float(name, getattr(self, name), allow_zero=True)
        for name in ("keep_probe", "gradual", "recompute_norm"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name}: expected True or False, got {getattr(self, name)!r}")
        if self.augment is not None:
            from transmri.data.augment import AUGMENT_PRESETS

            check_choice("augment", self.augment, tuple(AUGMENT_PRESETS))
        if self.early_stop is not None:
            check_positive_int("early_stop", self.early_stop)
        if not isinstance(self.monitor, str) or not self.monitor:
            raise ConfigError(
                f"monitor: expected a metric name such as 'val_auc', got {self.monitor!r}"
            )
        if self.schedule is not None:
            check_choice("schedule", self.schedule, ("onecycle", "cosine"))
        if self.epochs == 0 and self.probe == "none":
            raise ConfigError("epochs: 0 with probe='none' would train nothing")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FineTuneRecipe:
        """Rebuild from :meth:`to_dict`; unknown keys raise ``ConfigError``."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"recipe: unknown key(s) {unknown}; expected some of {sorted(known)}")
        return cls(**dict(data))

    def replace(self, **changes: Any) -> FineTuneRecipe:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)


class L2SPLoss:
    """``base + alpha/2 * ||w_enc - w0_enc||^2 + beta/2 * ||w_head||^2`` (Li et al. 2018).

    ``w0`` is a frozen copy of the encoder's parameters taken when the loss is
    built (the pretrained starting point); the head term covers every other
    weight matrix (not biases or normalisation scales). Parts ``l2sp`` and
    ``l2_head`` are logged. The penalties are added only where gradients are
    computed (training steps), so validation and test losses stay the task
    loss alone.

    Args:
        base: the task objective (e.g. class-weighted cross-entropy).
        model: the model being fine-tuned (has an ``encoder``).
        alpha: strength of the pull towards the starting encoder weights.
        beta: strength of the plain L2 penalty on the head.
    """

    def __init__(self, base: Objective, model: nn.Module, *, alpha: float, beta: float) -> None:
        encoder = getattr(model, "encoder", None)
        if not isinstance(encoder, nn.Module):
            raise ConfigError(f"model: L2-SP needs an `encoder`; {type(model).__name__} has none")
        self.base = base
        self.model = model
        self.alpha = check_positive_float("alpha", alpha, allow_zero=True)
        self.beta = check_positive_float("beta", beta, allow_zero=True)
        encoder_ids = {id(p) for p in encoder.parameters()}
        named = list(model.named_parameters())
        self.reference = {n: p.detach().clone() for n, p in named if id(p) in encoder_ids}
        self.head_names = [n for n, p in named if id(p) not in encoder_ids and p.ndim >= 2]

    def penalties(self) -> tuple[Tensor, Tensor]:
        """``(alpha/2 * sum ||w - w0||^2, beta/2 * sum ||w_head||^2)``."""
        params = dict(self.model.named_parameters())
        device = next(iter(params.values())).device
        sp = torch.zeros((), device=device)
        for name, ref in self.reference.items():
            sp = sp + (params[name] - ref.to(params[name].device)).pow(2).sum()
        head = torch.zeros((), device=device)
        for name in self.head_names:
            head = head + params[name].pow(2).sum()
        return self.alpha / 2 * sp, self.beta / 2 * head

    def __call__(
        self, outputs: Mapping[str, Tensor], batch: Mapping[str, Tensor]
    ) -> dict[str, Tensor]:
        parts = dict(self.base(outputs, batch))
        if not torch.is_grad_enabled():  # validation: the task loss alone, comparable to others
            return parts
        sp, head = self.penalties()
        parts["l2sp"], parts["l2_head"] = sp, head
        parts["loss"] = parts["loss"] + sp + head
        return parts

    def __repr__(self) -> str:
        return f"L2SPLoss({self.base!r}, alpha={self.alpha}, beta={self.beta})"


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def recompute_norm_stats(
    model: nn.Module, batches: Iterable[Mapping[str, Tensor]], *, max_batches: int | None = None
) -> int:
    """Re-estimate every BatchNorm's running mean/var on ``batches`` (no weight changes).

    The statistics are reset and accumulated as an exact average over the
    batches (BatchNorm layers in train mode, everything else in eval mode, no
    gradients); momentum and train/eval modes are restored afterwards.

    Returns:
        The number of BatchNorm layers updated (0: nothing to do, e.g. GroupNorm).
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return 0
    momenta = [m.momentum for m in norms]
    was_training = model.training
    device = _device(model)
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches seen
        m.train()
    try:
        for i, batch in enumerate(batches):
            if max_batches is not None and i >= max_batches:
                break
            model(batch["image"].to(device))
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        model.train(was_training)
    return len(norms)


def _plain_loader(data: Any, split: str, batch_size: int) -> DataLoader[Any]:
    """The scans of ``split`` in order, without the training augmentation."""
    dataset = copy.copy(data.dataset(split))
    dataset.transform = None
    return DataLoader(dataset, batch_size=batch_size, shuffle=False)


@torch.no_grad()
def _collect(
    model: nn.Module, data: Any, split: str, batch_size: int, fn: Callable[[Tensor], Tensor]
) -> tuple[np.ndarray, np.ndarray]:
    """``fn(images)`` for every scan of ``split`` (eval mode), with the labels."""
    was_training = model.training
    model.eval()
    out, labels = [], []
    try:
        for batch in _plain_loader(data, split, batch_size):
            out.append(fn(batch["image"].to(_device(model))).float().cpu())
            labels.append(batch["label"])
    finally:
        model.train(was_training)
    return torch.cat(out).numpy(), torch.cat(labels).numpy().astype(np.int64)


def _linear_layer(model: nn.Module) -> nn.Linear:
    head = getattr(model, "head", None)
    layers = getattr(head, "layers", None)
    linear = [m for m in layers.modules() if isinstance(m, nn.Linear)] if layers else []
    if len(linear) != 1:
        raise ConfigError(
            f"linear probe: expected an EncoderClassifier whose head has one linear layer "
            f"(hidden=0), got {type(model).__name__} with {len(linear)} linear layer(s)"
        )
    return linear[0]


def _choose_c(x: np.ndarray, y: np.ndarray, groups: np.ndarray, max_iter: int) -> float:
    """``C`` of :data:`PROBE_C_GRID` with the best subject-grouped CV score (AUC if binary)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from transmri.data.split import grouped_kfold

    smallest = min(np.unique(groups[y == c]).size for c in np.unique(y))
    if smallest < 2:
        raise ConfigError(
            f"linear probe: probe_c=None needs at least 2 training subjects per class for "
            f"its cross-validation, got {smallest}"
        )
    search = GridSearchCV(
        make_pipeline(
            StandardScaler(), LogisticRegression(max_iter=max_iter, class_weight="balanced")
        ),
        {"logisticregression__C": list(PROBE_C_GRID)},
        scoring="roc_auc" if np.unique(y).size == 2 else "balanced_accuracy",
        cv=grouped_kfold(y, groups, max_folds=5, seed=0),
    )
    with warnings.catch_warnings():  # a fold may hold one class for scoring: harmless
        warnings.simplefilter("ignore")
        search.fit(x, y, groups=groups)
    return float(search.best_params_["logisticregression__C"])


def linear_probe(learner: Any, *, C: float | None = 1.0, max_iter: int = 2000) -> dict[str, float]:
    """Fit the head's linear layer as a logistic regression on frozen features.

    The features are exactly what the head's linear layer receives in eval
    mode (pooled or flattened code, after the head's normalisation if any),
    computed on the un-augmented training scans. They are standardised,
    fitted with class-balanced L2 logistic regression, and the solution
    (standardisation folded in) is copied into the linear layer, so the
    classifier's softmax equals the regression's probabilities. Only
    training-split scans and labels are read.

    Args:
        learner: a Learner whose model is an :class:`~transmri.models.EncoderClassifier`.
        C: inverse L2 strength; ``None`` chooses it by a subject-grouped,
            stratified CV on the training scans (:data:`PROBE_C_GRID`).
        max_iter: solver iterations.

    Returns:
        ``{"train_accuracy": ..., "n": ..., "C": ...}`` of the regression.

    Raises:
        ConfigError: a head with a hidden layer, a class missing from training,
            or (``C=None``) a class with fewer than 2 training subjects.
    """
    from sklearn.linear_model import LogisticRegression

    model = learner.model
    linear = _linear_layer(model)
    captured: list[Tensor] = []
    hook = linear.register_forward_pre_hook(lambda _, args: captured.append(args[0].detach()))

    def features(x: Tensor) -> Tensor:
        captured.clear()
        model(x)
        return captured[0]

    try:
        x, y = _collect(model, learner.data, "train", learner.config.batch_size, features)
    finally:
        hook.remove()
    labelled = y >= 0
    x, y = x[labelled].astype(np.float64), y[labelled]
    k = linear.out_features
    if np.unique(y).size != k:
        raise ConfigError(
            f"linear probe: the training split has classes {sorted(np.unique(y).tolist())}, "
            f"the head predicts {k}; every class needs training scans"
        )
    if C is None:
        subjects = np.asarray(learner.data.split_table("train").subjects)[labelled]
        C = _choose_c(x, y, subjects, max_iter)
    mean, std = x.mean(axis=0), np.maximum(x.std(axis=0), 1e-6)
    clf = LogisticRegression(C=C, max_iter=max_iter, class_weight="balanced")
    clf.fit((x - mean) / std, y)
    coef, intercept = clf.coef_, clf.intercept_
    if k == 2:  # softmax([-z/2, z/2]) == sigmoid(z)
        coef, intercept = np.vstack([-coef / 2, coef / 2]), np.array([-1, 1]) * intercept / 2
    weight = coef / std
    bias = intercept - weight @ mean
    with torch.no_grad():
        linear.weight.copy_(torch.as_tensor(weight, dtype=linear.weight.dtype))
        linear.bias.copy_(torch.as_tensor(bias, dtype=linear.bias.dtype))
    accuracy = float(clf.score((x - mean) / std, y))
    return {"train_accuracy": accuracy, "n": float(y.size), "C": float(C)}


def _val_auc(learner: Any) -> float:
    """The validation AUC (:func:`~transmri.evaluation.metrics.classification_auc`)."""
    from transmri.evaluation.metrics import classification_auc

    def probs(x: Tensor) -> Tensor:
        return torch.softmax(learner.model(x)["logits"].float(), dim=1)

    p, y = _collect(learner.model, learner.data, "val", learner.config.batch_size, probs)
    return classification_auc(y, p)


def data_with_augment(data: Any, augment: str | None) -> Any:
    """The same splits (and normalisation) as ``data``, with another training augmentation."""
    from transmri.data import DataBunch

    if augment == (None if data.augment is None else _preset_name(data.augment)):
        return data
    test = data.split_table("test") if len(data.splits.test) else None
    val = data.split_table("val") if len(data.splits.val) else None
    out = DataBunch.from_splits(
        train=data.split_table("train"),
        val=val,
        test=test,
        preprocessing=data.preprocessing,
        cache_dir=data.cache_dir,
        seed=data.seed,
        augment=augment,
        targets=data.targets,
        classes=data.classes,
    )
    if data.normalization is not None:
        out.normalize()
    return out


def _preset_name(config: Any) -> str | None:
    from transmri.data.augment import AUGMENT_PRESETS

    return next((name for name, c in AUGMENT_PRESETS.items() if c == config), "custom")


def apply_recipe(learner: Any, recipe: FineTuneRecipe) -> Any:
    """Fine-tune ``learner`` (a classifier on a pretrained encoder) with ``recipe``.

    The learner's ``data`` is replaced by :func:`data_with_augment` when the
    recipe names an augmentation; its ``loss_fn`` is restored afterwards.

    Returns:
        The learner, trained, with the best epoch's (or the probe's) weights.
        ``learner.recipe_log_`` says what happened: ``probe_c`` (the probe's
        C), ``probe_val_auc`` and ``finetuned_val_auc`` (validation AUC of the
        probe and of the fine-tuned model) and ``kept`` (``"probe"`` or
        ``"finetuned"``).
    """
    if not isinstance(recipe, FineTuneRecipe):
        raise TypeError(f"recipe: expected a FineTuneRecipe, got {type(recipe).__name__}")
    if recipe.augment is not None:
        learner.data = data_with_augment(learner.data, recipe.augment)
    if recipe.recompute_norm:
        loader = _plain_loader(learner.data, "train", learner.config.batch_size)
        recompute_norm_stats(learner.model, loader)
    fit_options: dict[str, Any] = {
        "wd": recipe.wd,
        "early_stop": recipe.early_stop,
        "monitor": recipe.monitor,
        "schedule": recipe.schedule,
    }
    log: dict[str, Any] = {"probe_c": None, "probe_val_auc": None, "finetuned_val_auc": None}
    learner.recipe_log_ = log
    if recipe.probe == "logreg":
        log["probe_c"] = linear_probe(learner, C=recipe.probe_c)["C"]
    elif recipe.probe == "head":
        learner.freeze_encoder()
        learner.fit(recipe.probe_epochs, recipe.probe_lr, **fit_options)
    if recipe.epochs == 0:
        learner.unfreeze()
        if recipe.probe == "logreg":
            learner.fitted_ = True  # the head was fitted by logistic regression, not by fit()
        log["kept"] = "probe"
        return learner
    probed = recipe.probe != "none" and recipe.keep_probe
    probe_auc = _val_auc(learner) if probed else float("nan")
    probe_state = copy.deepcopy(learner.model.state_dict()) if probed else None
    previous = learner.loss_fn
    if recipe.l2sp_alpha > 0 or recipe.l2sp_beta > 0:
        base = previous or ClassificationLoss(class_weights=learner.data.class_weights())
        learner.loss_fn = L2SPLoss(
            base, learner.model, alpha=recipe.l2sp_alpha, beta=recipe.l2sp_beta
        )
    try:
        learner.unfreeze()
        learner.fine_tune(
            0, recipe.epochs, recipe.lr, lr_mult=recipe.lr_decay, gradual=recipe.gradual,
            **fit_options,
        )  # fmt: skip
    finally:
        learner.loss_fn = previous
    log["kept"] = "finetuned"
    if probe_state is not None:
        final_auc = _val_auc(learner)
        log.update(probe_val_auc=probe_auc, finetuned_val_auc=final_auc)
        if np.isfinite(probe_auc) and not final_auc > probe_auc:
            learner.model.load_state_dict(probe_state)
            log["kept"] = "probe"
    return learner


@dataclass(frozen=True)
class RecipeSelection:
    """What :func:`select_recipe` chose.

    Attributes:
        name: the chosen candidate's name.
        recipe: the chosen recipe.
        scores: one row per candidate and inner fold: ``candidate, fold, auc, subjects``.
    """

    name: str
    recipe: FineTuneRecipe
    scores: pd.DataFrame


def select_recipe(
    candidates: Mapping[str, FineTuneRecipe] | Sequence[FineTuneRecipe],
    make_learner: Callable[[Any, Path], Any],
    data: Any,
    path: str | os.PathLike[str],
    *,
    folds: int = 3,
    seed: int = 0,
) -> RecipeSelection:
    """Choose the recipe with the best mean validation AUC over inner folds of the training scans.

    Only the training and validation splits of ``data`` are pooled and split
    into ``folds`` subject-grouped, stratified inner folds; each candidate is
    applied to a learner from ``make_learner(inner_data, run_folder)`` (an
    inner DataBunch without a test split) and scored on the held-out fold.
    The outer test split is never read. Ties go to the earlier candidate.

    Args:
        candidates: recipes, by name (a sequence is named ``"0"``, ``"1"``...).
        make_learner: builds a fresh classifier learner (e.g. from the
            pretrained encoder) on the given DataBunch and run folder.
        data: the outer DataBunch.
        path: folder for the inner runs.
        folds: inner folds (>= 2).
        seed: seed of the inner split.
    """
    from transmri.data import DataBunch
    from transmri.data.split import kfold_splits

    named = dict(candidates) if isinstance(candidates, Mapping) else {
        str(i): c for i, c in enumerate(candidates)
    }  # fmt: skip
    if not named:
        raise ConfigError("candidates: expected at least one recipe")
    bad = [n for n, c in named.items() if not isinstance(c, FineTuneRecipe)]
    if bad:
        raise TypeError(f"candidates: expected FineTuneRecipe values, got others for {bad}")
    pool = data.table.subset(np.concatenate([data.splits.train, data.splits.val]))
    rows = []
    for fold, split in enumerate(kfold_splits(pool, k=folds, seed=seed)):
        inner = DataBunch.from_splits(
            train=pool.subset(np.concatenate([split.train, split.val])),
            val=pool.subset(split.test),
            preprocessing=data.preprocessing,
            cache_dir=data.cache_dir,
            seed=data.seed,
            augment=data.augment,
            targets=data.targets,
            classes=data.classes,
        )
        used = ",".join(sorted(set(inner.subjects("train")) | set(inner.subjects("val"))))
        for name, recipe in named.items():
            learner = make_learner(inner, Path(path) / name / f"fold{fold}")
            apply_recipe(learner, recipe)
            rows.append(
                {"candidate": name, "fold": fold, "auc": _val_auc(learner), "subjects": used}
            )
    scores = pd.DataFrame(rows)
    means = scores.groupby("candidate", sort=False)["auc"].mean()
    best = max(named, key=lambda n: (np.nan_to_num(means[n], nan=-1.0), -list(named).index(n)))
    return RecipeSelection(name=best, recipe=named[best], scores=scores)
