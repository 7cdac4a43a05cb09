"""Fixtures of the evaluation tests: a small fake run folder as the Learner writes it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from transmri.evaluation.metrics import classification_metrics, write_metrics
from transmri.evaluation.plots import show_sample


def write_fake_run(root: Path, *, synthetic: bool = True, complete: bool = True) -> Path:
    """Write every file ``build_report`` reads (only run.json when not ``complete``)."""
    root.mkdir(parents=True, exist_ok=True)
    run = {
        "kind": "classifier",
        "transmri_version": "0.1.0",
        "created": "2025-01-01T00:00:00Z",
        "synthetic": synthetic,
        "config": {"model": {"name": "cae", "code_size": 16}, "lr": 0.001, "note": "<b>x</b>"},
    }
    (root / "run.json").write_text(json.dumps(run))
    if not complete:
        return root
    rng = np.random.default_rng(0)
    (root / "data.json").write_text(json.dumps({"classes": ["CN", "AD"], "n_subjects": 24}))
    pd.DataFrame(
        {"split": ["train", "val", "test"], "scans": [16, 4, 4], "CN": [8, 2, 2], "AD": [8, 2, 2]}
    ).to_csv(root / "data_stats.csv", index=False)
    epochs = np.arange(1, 6)
    pd.DataFrame(
        {
            "epoch": epochs,
            "lr": 1e-3 / epochs,
            "train_loss": 1 / epochs,
            "val_loss": 1.2 / epochs,
            "val_auc": 0.5 + 0.08 * epochs,
        }
    ).to_csv(root / "history.csv", index=False)
    for split, n in (("val", 12), ("test", 16)):
        y = np.arange(n) % 2
        p1 = np.clip(0.4 * y + 0.6 * rng.random(n), 0, 1)
        labels = np.array(["CN", "AD"])[y]
        subjects = [f"sub-{i // 2:02d}" for i in range(n)]
        pd.DataFrame(
            {
                "subject": subjects,
                "path": [f"scans/{i}.nii.gz" for i in range(n)],
                "label": labels,
                "pred": np.array(["CN", "AD"])[(p1 > 0.5).astype(int)],
                "prob_CN": 1 - p1,
                "prob_AD": p1,
            }
        ).to_csv(root / f"predictions_{split}.csv", index=False)
        if split == "test":
            report = classification_metrics(
                labels, np.stack([1 - p1, p1], 1), classes=["CN", "AD"], groups=subjects, n_boot=200
            )
            write_metrics(report, root / "metrics_test.json")
        codes = rng.standard_normal((n, 6)) + y[:, None]
        frame = pd.DataFrame(codes, columns=[f"e{i}" for i in range(6)])
        frame.insert(0, "label", labels)
        frame.insert(0, "subject", subjects)
        frame.to_csv(root / f"embeddings_{split}.csv", index=False)
    rows = []
    for method, gain in (("scratch", 0.0), ("transfer", 0.1)):
        for n_train in (8, 16, 32):
            for repeat in range(3):
                auc = 0.55 + gain + 0.004 * n_train + 0.02 * rng.standard_normal()
                rows.append(
                    {
                        "method": method,
                        "n_train": n_train,
                        "repeat": repeat,
                        "auc": auc,
                        "balanced_accuracy": auc - 0.05,
                    }
                )
    pd.DataFrame(rows).to_csv(root / "comparison.csv", index=False)
    show_sample(rng.random((10, 12, 10)), title="sample", path=root / "figures" / "sample_scan.png")
    return root


@pytest.fixture
def fake_run(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``fake_run(name="run", synthetic=True, complete=True) -> run folder``."""

    def make(name: str = "run", **kwargs: bool) -> Path:
        return write_fake_run(tmp_path / name, **kwargs)

    return make
