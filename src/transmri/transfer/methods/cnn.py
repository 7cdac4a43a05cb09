"""CNN methods of the transfer benchmark: ``scratch``, ``finetune`` and the recipes.

- ``scratch``: the encoder's architecture with fresh weights plus a head,
  trained end to end (early stopping and model selection on the validation
  split);
- ``finetune``: the pretrained encoder plus a head, head first, then every
  layer with discriminative learning rates (:meth:`Learner.fine_tune`);
- ``lpft``, ``l2sp``, ``llrd``, ``default``: a
  :class:`~transmri.training.recipes.FineTuneRecipe` on the pretrained encoder
  (a classifier built with ``Learner.from_pretrained``), with the benchmark's
  epochs, learning rate, batch size and early stopping on the validation split:

  - ``lpft``: linear probe (logistic regression on frozen codes copied into
    the head), then every layer at a tenth of the learning rate (Kumar et al. 2022);
  - ``l2sp``: head first, then every layer with the L2-SP penalty towards the
    pretrained weights (Li et al. 2018, ``alpha=0.1, beta=0.01``);
  - ``llrd``: head first, then every layer with layer-wise rate decay 0.5;
  - ``default``: the recipe we expect to be strongest on a few dozen scans:
    LP-FT (the probe's C chosen by grouped CV on the training scans) + L2-SP +
    LLRD 0.5 + re-estimated BatchNorm statistics + light augmentation, early
    stopping on validation AUC, and the probe kept when fine-tuning never
    beats it on validation.

The table of :mod:`transmri.transfer.registry` names them.
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

import torch

from transmri.errors import ConfigError
from transmri.evaluation.metrics import classification_metrics
from transmri.models import EncoderClassifier, build_model
from transmri.training import Learner, create_classifier, load_encoder
from transmri.training.recipes import FineTuneRecipe, apply_recipe
from transmri.transfer.context import MethodContext, MethodResult

if TYPE_CHECKING:
    pass

__all__ = [
    "RECIPE_METHODS",
    "default",
    "finetune",
    "l2sp",
    "llrd",
    "lpft",
    "recipe_for",
    "run_recipe",
    "scratch",
]


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


# ------------------------------------------------------------------ methods
def scratch(context: MethodContext) -> MethodResult:
    """Train the encoder's architecture (fresh weights) plus a head from scratch.

    Without an encoder, ``config.scratch_arch``'s default encoder is used.
    """
    config = context.config
    data = context.data
    if context.encoder is None:
        learner = create_classifier(
            data,
            context.work_dir,
            arch=config.scratch_arch,
            head=config.head,
            dropout=config.dropout,
            **context.learner_options(),
        )
    else:
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
            data, model, context.work_dir, model_type="classifier", **context.learner_options()
        )
    learner.fit(config.epochs, config.lr, **_fit_options(context))
    return _cnn_result(learner, context)


def finetune(context: MethodContext) -> MethodResult:
    """Fine-tune the pretrained encoder: head only, then every layer (``Learner.fine_tune``)."""
    config = context.config
    learner = Learner.from_pretrained(
        context.data,
        context.encoder,  # type: ignore[arg-type]  # needs_encoder guarantees it
        context.work_dir,
        head=config.head,
        dropout=config.dropout,
        **context.learner_options(),
    )
    learner.fine_tune(
        config.epochs_frozen,
        config.epochs_unfrozen,
        config.lr,
        lr_mult=config.lr_mult,
        **_fit_options(context),
    )
    return _cnn_result(learner, context)


RECIPE_METHODS: tuple[str, ...] = ("lpft", "l2sp", "llrd", "default")


def recipe_for(name: str, config: Any) -> FineTuneRecipe:
    """The :class:`FineTuneRecipe` of method ``name`` under a ``TransferConfig``."""
    common = {
        "epochs": config.epochs_unfrozen,
        "lr": config.lr,
        "probe_epochs": max(config.epochs_frozen, 1),
        "probe_lr": config.lr,
        "wd": config.weight_decay,
        "early_stop": config.early_stop,
        "monitor": config.monitor,
    }
    recipes = {
        "lpft": {"probe": "logreg", "lr": config.lr / 10, "keep_probe": False},
        "l2sp": {"probe": "head", "lr_decay": config.lr_mult, "l2sp_alpha": 0.1, "l2sp_beta": 0.01,
                 "wd": 0.0, "keep_probe": False},
        "llrd": {"probe": "head", "lr_decay": 0.5, "keep_probe": False},
        "default": {"probe": "logreg", "probe_c": None, "lr": config.lr / 3, "lr_decay": 0.5,
                    "l2sp_alpha": 0.1, "l2sp_beta": 0.01, "wd": 0.0, "recompute_norm": True,
                    "augment": "light", "keep_probe": True},
    }  # fmt: skip
    if name not in recipes:
        raise ConfigError(f"recipe method: expected one of {RECIPE_METHODS}, got {name!r}")
    return FineTuneRecipe(**{**common, **recipes[name]})


def run_recipe(context: MethodContext, recipe: FineTuneRecipe) -> MethodResult:
    """Fine-tune the pretrained encoder of ``context`` with ``recipe``; test probabilities."""
    config = context.config
    learner = Learner.from_pretrained(
        context.data,
        context.encoder,  # type: ignore[arg-type]  # needs_encoder guarantees it
        context.work_dir,
        head=config.head,
        dropout=config.dropout,
        **context.learner_options(),
    )
    apply_recipe(learner, recipe)
    result = _cnn_result(learner, context)
    log = getattr(learner, "recipe_log_", {})
    done = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in log.items())
    notes = f"recipe {recipe.to_dict()}; {done}; {result.notes}"
    return MethodResult(probs=result.probs, converged=result.converged, notes=notes)


def lpft(context: MethodContext) -> MethodResult:
    """The ``lpft`` recipe (see the module docstring)."""
    return run_recipe(context, recipe_for("lpft", context.config))


def l2sp(context: MethodContext) -> MethodResult:
    """The ``l2sp`` recipe (see the module docstring)."""
    return run_recipe(context, recipe_for("l2sp", context.config))


def llrd(context: MethodContext) -> MethodResult:
    """The ``llrd`` recipe (see the module docstring)."""
    return run_recipe(context, recipe_for("llrd", context.config))


def default(context: MethodContext) -> MethodResult:
    """The ``default`` recipe (see the module docstring)."""
    return run_recipe(context, recipe_for("default", context.config))
