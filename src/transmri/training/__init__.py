"""transmri.training: the Learner, its objectives, checkpoints and transfer helpers."""

from transmri.training.callbacks import Callback, FitState, StopAfter
from transmri.training.config import FitConfig, LearnerConfig
from transmri.training.encoder_io import load_encoder, migrate_card, save_encoder
from transmri.training.factories import (
    create_autoencoder,
    create_classifier,
    create_classifier_from_encoder,
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

__all__ = [
    "Callback",
    "ClassificationLoss",
    "FitConfig",
    "FitState",
    "Learner",
    "LearnerConfig",
    "MultiTaskLoss",
    "Objective",
    "Predictions",
    "ReconstructionLoss",
    "StopAfter",
    "VAELoss",
    "create_autoencoder",
    "create_classifier",
    "create_classifier_from_encoder",
    "create_mixed",
    "load_encoder",
    "migrate_card",
    "save_encoder",
    "weight_l1",
]
