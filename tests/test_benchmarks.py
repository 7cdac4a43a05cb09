"""The benchmark helpers that need no data: pooling runs of several test sets."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _run(folder: Path, test_hash: str, aucs: dict[str, list[float]]) -> Path:
    rows = [
        {
            "method": m,
            "n_train": 10,
            "repeat": r,
            "auc": a,
            "balanced_accuracy": 0.5,
            "test_subjects_hash": test_hash,
        }
        for m, values in aucs.items()
        for r, a in enumerate(values)
    ]
    folder.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(folder / "comparison.csv", index=False)
    return folder


def test_pool_runs_pairs_within_each_test_set(tmp_path: Path) -> None:
    pool_runs = _module("pool_runs")
    a = _run(tmp_path / "s0", "aaa", {"ridge": [0.5, 0.6], "probe": [0.6, 0.7]})
    b = _run(tmp_path / "s1", "bbb", {"ridge": [0.8, 0.8], "probe": [0.7, 0.7]})
    assert pool_runs.main([str(a), str(b), "--out", str(tmp_path / "out")]) == 0
    diff = pd.read_csv(tmp_path / "out" / "differences.csv").set_index("method")
    assert diff.loc["probe", "n_pairs"] == 4
    assert diff.loc["probe", "auc_diff"] == pytest.approx(0.0)  # +0.1, +0.1, -0.1, -0.1
    per_test = pd.read_csv(tmp_path / "out" / "per_test_set.csv")
    assert set(per_test["run"]) == {"s0", "s1"}
    assert (tmp_path / "out" / "learning_curve_auc.png").stat().st_size > 0


def test_pool_runs_refuses_two_runs_on_one_test_set(tmp_path: Path) -> None:
    pool_runs = _module("pool_runs")
    a = _run(tmp_path / "s0", "aaa", {"ridge": [0.5]})
    b = _run(tmp_path / "again", "aaa", {"ridge": [0.6]})
    with pytest.raises(ValueError, match=r"\['aaa'\] appear in more than one run"):
        pool_runs.pool([a, b])
    with pytest.raises(FileNotFoundError, match=r"comparison\.csv: not found"):
        pool_runs.pool([tmp_path / "missing"])
