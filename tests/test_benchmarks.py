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


def _zoo() -> ModuleType:
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    return _module("zoo_ixi")


def test_zoo_ixi_refuses_a_size_the_encoder_cannot_take(capsys: pytest.CaptureFixture[str]) -> None:
    zoo = _zoo()
    with pytest.raises(SystemExit):
        zoo.parse(["--size", "32"])
    assert "more than 32 voxels" in capsys.readouterr().err
    assert zoo.parse(["--size", "64", "--targets", "age"]).targets == ["age"]


def test_zoo_ixi_scores_read_outs_and_pairs_them_on_tiny_synthetic_draws() -> None:
    import numpy as np
    import torch

    from transmri.data import ScanTable
    from transmri.models import DeepbetEncoder
    from transmri.transfer import TransferConfig, plan_splits

    zoo = _zoo()
    rng = np.random.default_rng(0)
    subjects = [f"s{i:02d}" for i in range(40)]
    labels = ["M" if i % 2 else "F" for i in range(40)]
    frame = pd.DataFrame({"path": [f"{s}.nii.gz" for s in subjects], "subject": subjects,
                          "label": labels, "age": rng.uniform(20, 80, 40)})  # fmt: skip
    table = ScanTable.from_frame(frame, check_files=False)
    y = np.array([lab == "M" for lab in labels], dtype=float)
    signal = y[:, None] + 0.3 * rng.normal(size=(40, 3))
    base = {"deepbet": signal, "random": rng.normal(size=(40, 300)),
            "ridge": rng.normal(size=(40, 5)), "volume": signal[:, :1]}  # fmt: skip
    features = zoo.with_combined(base)
    assert set(features) == set(zoo.METHODS)
    assert np.array_equal(features["volume + random"][:, 0], base["volume"][:, 0])
    splits = plan_splits(table, TransferConfig(n_train=(10,), repeats=2, test_size=10, seed=0))
    values = zoo.target_values("sex", table)
    comparison = zoo.evaluate(features, subjects, splits, values, regression=False, test_set=0)
    assert len(comparison) == 2 * len(features)
    summary = comparison.groupby("method")["auc"].mean()
    assert summary["deepbet"] > 0.9 > summary["random"]
    # 300 noise columns beside volume do not drown it: volume stays (nearly) unpenalised.
    assert summary["volume + random"] > 0.9
    diff = zoo.differences(comparison, "auc")
    assert set(zip(diff["method"], diff["reference"], strict=True)) == set(zoo.DIFFERENCES)
    assert "| deepbet - random |" in zoo.markdown(zoo.summarize(comparison, "auc"), diff, "auc")
    ages = zoo.evaluate(features, subjects, splits, zoo.target_values("age", table),
                        regression=True, test_set=0)  # fmt: skip
    assert (ages["mae"] > 0).all()
    torch.manual_seed(0)
    feats = zoo.encoder_features(DeepbetEncoder().eval(), rng.uniform(size=(2, 40, 40, 40)))
    assert feats.shape == (2, 256 * 9)
