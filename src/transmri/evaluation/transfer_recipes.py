"""Fine-tuning recipes as transfer-benchmark methods: ``lpft``, ``l2sp``, ``llrd``, ``default``.

Each runs a :class:`~transmri.training.recipes.FineTuneRecipe` on the
pretrained encoder (a classifier built with ``Learner.from_pretrained``),
with the benchmark's epochs, learning rate, batch size and early stopping on
the validation split. Importing this module registers them (see
:func:`~transmri.evaluation.transfer_methods.register_method`).

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
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from transmri.evaluation.transfer_methods import (
    MethodContext,
    MethodResult,
    _cnn_result,
    _learner_options,
    register_method,
)

if TYPE_CHECKING:
    from transmri.training.recipes import FineTuneRecipe

__all__ = ["RECIPE_METHODS", "recipe_for", "run_recipe"]

RECIPE_METHODS: tuple[str, ...] = ("lpft", "l2sp", "llrd", "default")


def recipe_for(name: str, config: Any) -> FineTuneRecipe:
    """The :class:`FineTuneRecipe` of method ``name`` under a ``TransferConfig``."""
    from transmri.errors import ConfigError
    from transmri.training.recipes import FineTuneRecipe

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
    from transmri.training import Learner
    from transmri.training.recipes import apply_recipe

    config = context.config
    learner = Learner.from_pretrained(
        context.data,
        context.encoder,  # type: ignore[arg-type]  # needs_encoder guarantees it
        context.work_dir,
        head=config.head,
        dropout=config.dropout,
        **_learner_options(context),
    )
    apply_recipe(learner, recipe)
    result = _cnn_result(learner, context)
    log = getattr(learner, "recipe_log_", {})
    done = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in log.items())
    notes = f"recipe {recipe.to_dict()}; {done}; {result.notes}"
    return MethodResult(probs=result.probs, converged=result.converged, notes=notes)


def _register(name: str) -> None:
    def method(context: MethodContext) -> MethodResult:
        return run_recipe(context, recipe_for(name, context.config))

    method.__name__ = method.__qualname__ = f"recipe_{name}"
    method.__doc__ = f"The {name!r} fine-tuning recipe (see :func:`recipe_for`)."
    register_method(name, needs_encoder=True, replace=True)(method)


for _name in RECIPE_METHODS:
    _register(_name)
