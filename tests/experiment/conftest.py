"""Fixtures of the experiment tests: two tiny cohorts and an experiment file on them."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import yaml


@pytest.fixture(autouse=True)
def _quiet_nondeterministic_ops() -> None:
    warnings.filterwarnings("ignore", message=".*deterministic implementation.*")


@pytest.fixture
def tiny_experiment(make_cohort: Callable[..., Path], tmp_path: Path) -> Path:
    """Two cohorts of 12 scans of 16^3 voxels; 2 pretraining and 1 + 1 fine-tuning epochs."""
    make_cohort(12, (16, 16, 16), seed=1, folder="source")
    target = make_cohort(12, (16, 16, 16), seed=2, folder="target")
    frame = pd.read_csv(target)
    frame["subject"] = frame["subject"].str.replace("sub-", "tgt-")
    frame.to_csv(target, index=False)
    data = {
        "name": "tiny",
        "data": {
            "source": {"adapter": "csv", "path": "source/scans.csv"},
            "target": {"adapter": "csv", "path": "target/scans.csv"},
            "preprocessing": {"target_shape": [16, 16, 16]},
        },
        "model": {"arch": "cae", "channels": [4, 8]},
        "pretrain": {"objective": "autoencoder", "epochs": 2, "batch_size": 4},
        "finetune": {"epochs_frozen": 1, "epochs_unfrozen": 1, "batch_size": 4},
        "evaluation": {"methods": [], "embeddings": False, "report": False, "n_boot": 10},
    }
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(data))
    return path
