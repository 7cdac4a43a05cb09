"""Linear read-outs of frozen encoders against voxel ridge, on the benchmark's draws (seconds).

The exploration behind ``regional_probe``: for one ``--seed`` (one test set
of ``transfer_ixi.py``), every training draw of ``N`` = 10/20/40/80 scans
(5 repeats), it fits

- ridge on the volumes average-pooled by 2 (as the ``ridge`` method);
- logistic regression on features of each encoder given with ``--encoder
  NAME=PATH`` (``NAME=random``: a fresh CAE encoder with GroupNorm), for
  every ``--grids`` x ``--levels`` combination: ``regional_features`` with
  that grid and those layers (``last``: the code only, grid 1 is the plain
  ``linear_probe``);
- with ``--ensembles``, the sum of each encoder read-out's and ridge's
  standardised decision values.

Regularisation is chosen by 5-fold subject-grouped CV on the training and
validation scans of the draw; the test subjects decide nothing. The volumes
come from ``transfer_ixi.py``'s cache, so run that first with the same
``--resolution``, ``--seed`` and ``--work``. Prints mean test AUC per ``N``.

Usage:
    python benchmarks/linear_readouts.py --seed 1 --work /tmp/x/work_s1 \\
        --encoder denoise=/tmp/x/work_s1/pretrain_ixi_denoise_group_e40_lr0.001_p10 \\
        --encoder random=random --grids 1 2 4 --levels last all --ensembles
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from transfer_ixi import IXI, load_ixi

from transmri.data import DataBunch, PreprocessConfig
from transmri.transfer import TransferConfig, plan_splits

Draw = tuple[int, int]


def _volumes(table: object, pre: PreprocessConfig, cache: Path) -> dict[str, np.ndarray]:
    with warnings.catch_warnings():  # test_size=0: every scan in train/val
        warnings.simplefilter("ignore")
        data = DataBunch(table, pre, cache_dir=cache, val_size=0.15, test_size=0.0, seed=0)  # type: ignore[arg-type]
    out = {}
    for split in ("train", "val"):
        dataset, subjects = data.dataset(split), data.split_table(split).subjects
        for i in range(len(dataset)):
            out[subjects[i]] = np.asarray(dataset.volume(i), dtype=np.float32)
    return out


def _decisions(features: np.ndarray, kind: str, splits: list, row: dict[str, int]) -> dict:
    """Standardised test decision values per draw (scaled by the training decisions)."""
    from sklearn.linear_model import LogisticRegression, RidgeClassifier
    from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    out = {}
    for split in splits:
        fit = [row[s] for s in (*split.train.subjects, *split.val.subjects)]
        labels = [*split.train.frame["label"], *split.val.frame["label"]]
        y = np.array([str(v) == "M" for v in labels], dtype=int)
        smallest = int(min((y == c).sum() for c in (0, 1)))
        cv = StratifiedGroupKFold(n_splits=max(2, min(5, smallest)), shuffle=True, random_state=0)
        if kind == "ridge":
            alphas = features.shape[1] * np.logspace(-5, 3, 9)
            estimator, grid = RidgeClassifier(), {"ridgeclassifier__alpha": list(alphas)}
        else:
            cs = list(np.logspace(-5, 1, 7))
            estimator, grid = LogisticRegression(max_iter=3000), {"logisticregression__C": cs}
        search = GridSearchCV(
            make_pipeline(StandardScaler(), estimator), grid, scoring="roc_auc", cv=cv
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            search.fit(features[fit], y, groups=np.array(fit))
        train = search.decision_function(features[fit])
        test = search.decision_function(features[[row[s] for s in split.test.subjects]])
        out[(split.repeat, split.n_train)] = (test - train.mean()) / (train.std() + 1e-12)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    from sklearn.metrics import roc_auc_score

    from transmri.models import ConvEncoder, regional_features
    from transmri.training import load_encoder

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resolution", type=int, nargs=3, default=[32, 40, 32])
    p.add_argument("--work", type=Path, required=True, help="transfer_ixi.py --work folder")
    p.add_argument("--encoder", action="append", default=[], help="NAME=PATH or NAME=random")
    p.add_argument("--grids", type=int, nargs="+", default=[2])
    p.add_argument("--levels", nargs="+", choices=("all", "last"), default=["all"])
    p.add_argument("--ensembles", action="store_true")
    p.add_argument("--n-train", type=int, nargs="+", default=[10, 20, 40, 80])
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    table = load_ixi(IXI)
    pre = PreprocessConfig(target_shape=tuple(args.resolution), crop_to_mask=True)
    config = TransferConfig(n_train=tuple(args.n_train), repeats=5, test_size=50, seed=args.seed)
    splits = plan_splits(table, config)
    volumes = _volumes(table, pre, args.work / "cache")
    subjects = sorted(volumes)
    row = {s: i for i, s in enumerate(subjects)}
    x = torch.from_numpy(np.stack([volumes[s] for s in subjects]))[:, None]
    truth = {
        (s.repeat, s.n_train): np.array([str(v) == "M" for v in s.test.frame["label"]])
        for s in splits
    }
    voxels = torch.nn.functional.avg_pool3d(x, 2, ceil_mode=True).flatten(1).numpy()
    decisions = {"ridge (voxels)": _decisions(voxels, "ridge", splits, row)}
    for spec in args.encoder:
        name, _, path = spec.partition("=")
        if path == "random":
            torch.manual_seed(0)
            encoder: torch.nn.Module = ConvEncoder(norm="group")
        else:
            encoder = load_encoder(path)[0]
        encoder.eval()
        for grid in args.grids:
            for levels in args.levels:
                with torch.no_grad():
                    feats = regional_features(encoder, x, grid=grid, levels=levels).numpy()
                key = f"{name} grid {grid} {levels}"
                decisions[key] = _decisions(feats, "logreg", splits, row)
                if args.ensembles:
                    ridge = decisions["ridge (voxels)"]
                    decisions[f"ridge + {key}"] = {d: ridge[d] + decisions[key][d] for d in ridge}
    table_auc = pd.DataFrame(
        {
            name: {d: roc_auc_score(truth[d], v) for d, v in per_draw.items()}
            for name, per_draw in decisions.items()
        }
    )
    table_auc.index = pd.MultiIndex.from_tuples(table_auc.index, names=["repeat", "n_train"])
    means = table_auc.groupby(level="n_train").mean().T.round(3)
    print(f"mean test AUC over {config.repeats} repeats, seed {args.seed} (test set), by N")
    print(means.to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
