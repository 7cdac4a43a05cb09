"""How learnable is a SYNTHETIC cohort's disease? Ridge on voxels, 5-fold CV (a minute).

Builds one cohort with :func:`transmri.datasets.make_synthetic_cohort` per
``--resolution`` (``--n`` max scans, cached under ``--work``), preprocesses
every scan as ``transmri demo`` does (per-scan brain mask, min-max scaling
inside the brain, no resampling), average-pools by ``--downsample`` (the
``ridge`` method's ``ridge_downsample``, 2) and fits the ``ridge`` method's
model: standardised voxels, ``RidgeClassifier`` with alpha chosen by inner
grouped CV from ``n_features x logspace(-5, 3, 9)``. It prints the mean
outer 5-fold (subject-grouped, label-stratified) AUC for each ``--n``; for
``n`` below the cohort size, the mean over ``--draws`` random stratified
subsets of ``n`` scans (and their spread).

Usage (the numbers of ``docs/RESULTS.md``)::

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/synthetic_effects.py \\
        --condition alzheimer --contrast T1 --resolution 6 4 --n 300 40
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/synthetic_effects.py \\
        --condition second --contrast T2 --bias-field 0.25 --noise-std 0.05 \\
        --intensity-scale 0.7 1.4 --resolution 6 4 --n 300 40

Omitted cohort options take :class:`~transmri.datasets.SyntheticCohortConfig`'s
defaults (``--effect-size`` too).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from transmri.data import PreprocessConfig
from transmri.data.preprocess import preprocess_scan
from transmri.datasets import SyntheticCohortConfig, make_synthetic_cohort


def cohort_features(
    config: SyntheticCohortConfig, work: Path, downsample: int
) -> tuple[np.ndarray, np.ndarray]:
    """Pooled, flattened voxels ``(n, features)`` and 0/1 labels of one cohort."""
    name = f"{config.condition}_{config.contrast}_e{config.effect_size:g}_{config.voxel_size:g}mm"
    folder = work / f"{name}_n{config.n_subjects}_s{config.seed}"
    csv = make_synthetic_cohort(folder, config, overwrite=True)
    frame = pd.read_csv(csv)
    prep = PreprocessConfig(target_shape=None, scaling="minmax")
    rows = []
    for scan, mask in zip(frame["path"], frame["mask"]):
        volume = preprocess_scan(folder / scan, folder / mask, prep)
        tensor = torch.from_numpy(volume)[None, None]
        if downsample > 1:
            tensor = torch.nn.functional.avg_pool3d(tensor, downsample, ceil_mode=True)
        rows.append(tensor.reshape(-1).numpy())
    disease = config.labels[1]
    return np.stack(rows), (frame["label"] == disease).to_numpy().astype(int)


def ridge_cv_auc(x: np.ndarray, y: np.ndarray, *, folds: int = 5, seed: int = 0) -> float:
    """Mean outer-fold AUC of the ``ridge`` method's model (alpha by inner CV)."""
    from sklearn.linear_model import RidgeClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    alphas = [float(a) for a in x.shape[1] * np.logspace(-5, 3, 9)]
    outer = StratifiedKFold(folds, shuffle=True, random_state=seed)
    scores = []
    for train, test in outer.split(x, y):
        inner = StratifiedKFold(
            min(folds, int(np.bincount(y[train]).min())), shuffle=True, random_state=seed
        )
        search = GridSearchCV(
            make_pipeline(StandardScaler(), RidgeClassifier()),
            {"ridgeclassifier__alpha": alphas},
            scoring="roc_auc",
            cv=inner,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            search.fit(x[train], y[train])
        scores.append(roc_auc_score(y[test], search.decision_function(x[test])))
    return float(np.mean(scores))


def subset(y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``n`` scans, half of each class (as near as ``n`` allows)."""
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    n_pos = n // 2
    return np.concatenate(
        [rng.choice(pos, n_pos, replace=False), rng.choice(neg, n - n_pos, replace=False)]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--condition", default="alzheimer")
    parser.add_argument("--contrast", default="T1")
    parser.add_argument("--effect-size", type=float, default=None)
    parser.add_argument("--bias-field", type=float, default=None)
    parser.add_argument("--noise-std", type=float, default=None)
    parser.add_argument("--intensity-scale", type=float, nargs=2, default=None)
    parser.add_argument("--resolution", type=float, nargs="+", default=[6.0])
    parser.add_argument("--n", type=int, nargs="+", default=[300, 40])
    parser.add_argument("--draws", type=int, default=5, help="subsets for n < cohort size")
    parser.add_argument("--downsample", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/transmri_synthetic_effects"))
    args = parser.parse_args(argv)
    options: dict[str, Any] = {
        "condition": args.condition,
        "contrast": args.contrast,
        "n_subjects": max(args.n),
        "seed": args.seed,
    }
    for key in ("effect_size", "bias_field", "noise_std"):
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
    if args.intensity_scale is not None:
        options["intensity_scale"] = tuple(args.intensity_scale)
    print("resolution_mm,n,draws,auc_mean,auc_sd,features,effect_size,seconds")
    for resolution in args.resolution:
        start = time.perf_counter()
        config = SyntheticCohortConfig(voxel_size=resolution, **options)
        x, y = cohort_features(config, args.work, args.downsample)
        for n in sorted(args.n, reverse=True):
            if n >= len(y):
                aucs = [ridge_cv_auc(x, y, seed=args.seed)]
            else:
                rng = np.random.default_rng([args.seed, n])
                picks = [subset(y, n, rng) for _ in range(args.draws)]
                aucs = [ridge_cv_auc(x[i], y[i], seed=args.seed + d) for d, i in enumerate(picks)]
            print(
                f"{resolution:g},{min(n, len(y))},{len(aucs)},{np.mean(aucs):.3f},"
                f"{np.std(aucs):.3f},{x.shape[1]},{config.effect_size:g},"
                f"{time.perf_counter() - start:.0f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
