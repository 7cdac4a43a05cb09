"""Determinism: one seed gives one split, one set of weights and one set of metrics.

Checked twice in this process and in two child processes (CPU, one thread).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.reliability import _jobs
from tests.reliability._helpers import start, tiny_cohort
from transmri.data import ScanTable, kfold_splits, train_val_test_split

CHILD = (
    "import sys, runpy; sys.argv = ['_jobs', *sys.argv[1:]]; "
    "runpy.run_module('tests.reliability._jobs', run_name='__main__')"
)


def test_same_seed_same_split_other_seed_other_split(tmp_path: Path) -> None:
    csv = tiny_cohort(tmp_path / "c", 60, scans_per_subject=2, labels=("CN", "AD", "MCI"))
    table = ScanTable.from_csv(csv)
    a = train_val_test_split(table, val_size=0.2, test_size=0.2, seed=3)
    b = train_val_test_split(ScanTable.from_csv(csv), val_size=0.2, test_size=0.2, seed=3)
    assert a == b
    c = train_val_test_split(table, val_size=0.2, test_size=0.2, seed=4)
    assert a != c
    folds_a = list(kfold_splits(table, k=3, repeats=2, seed=5))
    folds_b = list(kfold_splits(table, k=3, repeats=2, seed=5))
    assert folds_a == folds_b


@pytest.mark.slow
def test_same_seed_same_weights_and_metrics_in_process_and_in_children(tmp_path: Path) -> None:
    csv = tiny_cohort(tmp_path / "cohort", 16, shape=_jobs.SHAPE)
    # two children at once (each its own cache and run folder), while this process trains twice
    children = [
        start(CHILD, csv, tmp_path / f"cache{i}", tmp_path / f"child{i}", "2") for i in range(2)
    ]
    first = _jobs.train(csv, tmp_path / "cache", tmp_path / "run1")
    second = _jobs.train(csv, tmp_path / "cache", tmp_path / "run2")
    outs = [p.communicate(timeout=300) for p in children]
    assert [p.returncode for p in children] == [0, 0], [err[-3000:] for _, err in outs]
    child = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]

    # in one process: bit-identical
    assert first["split"] == second["split"]
    assert first["weights"] == second["weights"]
    assert first["history"] == second["history"]
    assert first["metrics"] == second["metrics"]
    # the runs did learn something (so equal weights are not equal initial weights)
    assert first["history"][0]["train_loss"] != first["history"][1]["train_loss"]
    # in two fresh processes: bit-identical to each other
    assert child[0] == child[1]
    # and the same as in this process (same split; same numbers to float tolerance)
    assert child[0]["split"] == first["split"]
    for row_c, row_p in zip(child[0]["history"], first["history"], strict=True):
        assert row_c.keys() == row_p.keys()
        np.testing.assert_allclose(
            [row_c[k] for k in sorted(row_c)], [row_p[k] for k in sorted(row_p)], rtol=1e-5
        )
    for key in first["metrics"]:
        assert child[0]["metrics"][key] == pytest.approx(first["metrics"][key], rel=1e-5)
