"""transmri.training: the Learner, its objectives, checkpoints and transfer helpers."""

from transmri.training.callbacks import Callback, FitState, StopAfter
from transmri.training.config import FitConfig, LearnerConfig
from transmri.training.contrastive import ContrastiveLoss, TwoViews
from transmri.training.encoder_io import load_encoder, migrate_card, save_encoder
from transmri.training.factories import (
    create_autoencoder,
    create_classifier,
    create_classifier_from_encoder,
    create_contrastive,
    create_mixed,
)
from transmri.training.learner import Learner
from transmri.training.objectives import (
    ClassificationLoss,
    MultiTaskLoss,
    Objective,
    ReconstructionLoss,
    VAELoss,
    weight_l1,
)
from transmri.training.predictions import Predictions
from transmri.training.pretext import (
    Denoising,
    Inpainting,
    Pretext,
    SourceTasksLoss,
    source_task_model,
)
from transmri.training.recipes import (
    FineTuneRecipe,
    L2SPLoss,
    RecipeSelection,
    apply_recipe,
    linear_probe,
    recompute_norm_stats,
    select_recipe,
)

__all__ = [
    "Callback",
    "ClassificationLoss",
    "ContrastiveLoss",
    "Denoising",
    "FineTuneRecipe",
    "FitConfig",
    "FitState",
    "Inpainting",
    "L2SPLoss",
    "Learner",
    "LearnerConfig",
    "MultiTaskLoss",
    "Objective",
    "Predictions",
    "Pretext",
    "RecipeSelection",
    "ReconstructionLoss",
    "SourceTasksLoss",
    "StopAfter",
    "TwoViews",
    "VAELoss",
    "apply_recipe",
    "create_autoencoder",
    "create_classifier",
    "create_classifier_from_encoder",
    "create_contrastive",
    "create_mixed",
    "linear_probe",
    "load_encoder",
    "migrate_card",
    "recompute_norm_stats",
    "save_encoder",
    "select_recipe",
    "source_task_model",
    "weight_l1",
]
