"""Fixtures of the training tests: a real DataBunch on tiny NIfTI files from ``make_cohort``."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from transmri.data import DataBunch, PreprocessConfig, ScanTable

SHAPE = (16, 16, 16)


@pytest.fixture(autouse=True)
def _quiet_nondeterministic_ops() -> None:
    # max_unpool3d has no deterministic kernel; the Learner warns once per fit.
    warnings.filterwarnings("ignore", message=".*deterministic implementation.*")


@pytest.fixture
def make_data(make_cohort: Callable[..., Path], tmp_path: Path) -> Callable[..., DataBunch]:
    """Factory: a prepared (cached) DataBunch of ``n`` tiny labelled scans.

    ``prefix`` renames the subjects (two cohorts then share no subject);
    ``labelled=False`` drops the labels.
    """

    def make(
        n: int = 16,
        *,
        seed: int = 0,
        folder: str = "cohort",
        prefix: str | None = None,
        shape: tuple[int, int, int] = SHAPE,
        labelled: bool = True,
        val_size: float = 0.25,
        test_size: float = 0.25,
        split_seed: int = 0,
    ) -> DataBunch:
        csv = make_cohort(n, seed=seed, folder=folder)
        if prefix is not None:
            frame = pd.read_csv(csv)
            frame["subject"] = frame["subject"].str.replace("sub", prefix, regex=False)
            frame.to_csv(csv, index=False)
        table = ScanTable.from_csv(csv, mask_col="mask", label_col="label" if labelled else None)
        data = DataBunch(
            table,
            PreprocessConfig(target_shape=shape),
            cache_dir=tmp_path / "cache",
            val_size=val_size,
            test_size=test_size,
            seed=split_seed,
        )
        data.prepare(progress=False)
        return data

    return make
