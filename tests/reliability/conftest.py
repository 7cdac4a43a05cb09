"""Fixtures of the reliability tests: a tiny cached DataBunch and a small model."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.reliability._helpers import tiny_cohort
from transmri.data import DataBunch, PreprocessConfig, ScanTable

SHAPE = (16, 16, 16)


@pytest.fixture(autouse=True)
def _quiet_nondeterministic_ops() -> None:
    # max_unpool3d has no deterministic kernel; the Learner warns once per fit.
    warnings.filterwarnings("ignore", message=".*deterministic implementation.*")


@pytest.fixture
def tiny_data(tmp_path: Path) -> Callable[..., DataBunch]:
    """Factory: a prepared (cached) labelled DataBunch of ``n`` scans of 16^3 voxels."""

    def make(n: int = 12, *, folder: str = "cohort", seed: int = 0) -> DataBunch:
        csv = tiny_cohort(tmp_path / folder, n, shape=SHAPE, seed=seed)
        table = ScanTable.from_csv(csv)
        data = DataBunch(
            table,
            PreprocessConfig(target_shape=SHAPE),
            cache_dir=tmp_path / "cache",
            val_size=0.25,
            test_size=0.25,
            seed=0,
        )
        data.prepare(progress=False)
        return data

    return make
