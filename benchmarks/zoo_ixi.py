"""The deepbet encoder as a frozen source on IXI (native space, brain-masked), measured.

Features are computed ONCE per scan, then every read-out is a linear model
fitted on a training draw:

- ``deepbet``: the converted deepbet brain-mask encoder (7,837 T1w scans,
  :func:`transmri.pretrained.load_deepbet_network`), each of its five stages
  average-pooled globally and to 2 x 2 x 2 boxes
  (:func:`transmri.models.regional_features` with grids 1 and 2), on the
  brain box (brain mask applied, RAS, cropped to the mask) resized to
  ``--size``^3, intensities clipped to the brain's 0.5-99.5 % quantiles,
  scaled to [0, 1], then deepbet's ``0.226 * z + 0.449`` standardisation;
- ``random``: the same architecture and read-out with seeded random weights
  (the control);
- ``ridge``: the voxels of the brain box at 32 x 40 x 32 (min-max scaled),
  average-pooled by 2 (centred, not scaled: see :func:`fit_predict`);
- ``volume``: brain volume in cc from the brain mask (one number);
- ``volume + deepbet`` / ``volume + random`` / ``volume + ridge``: brain
  volume beside the image features, volume scaled up after standardisation so
  that the L2 penalty leaves it (nearly) alone: the image features are fitted
  on top of volume instead of drowning it.

With ``--registered DERIVATIVES/scans.csv`` (the output table of ``transmri
preprocess`` on the same scans) the images are the MNI152-registered,
skull-stripped scans, all cropped to one box (the template brain's bounding
box, dilated by 2 voxels); brain volume stays the native mask's (head size).

Targets: ``sex``, ``age_group`` (young < 40 vs old >= 60) and ``age``
(regression on the sex table's draws, MAE in years). Draws: the three test
sets of ``transfer_ixi.py --seed 0, 1, 2`` (50 subjects each) x 5 training
draws per ``N`` (:func:`transmri.transfer.plan_splits`);
each draw's training and validation scans are the training set. Logistic
regression (classification) or ridge regression (age) on standardised
features, C / alpha by subject-grouped CV on the training draw only. Reports
the mean over the 15 pairs with 95 % t-intervals, and paired differences
(:data:`DIFFERENCES`).

Writes ``features_cost.json``, ``comparison_<target>.csv``,
``summary_<target>.csv`` and ``differences_<target>.csv`` to ``--out``
(default ``benchmarks/results/zoo_ixi``) and prints Markdown tables.

Usage:
    transmri preprocess ixi.csv --out DERIV        # MNI152 registration, once
    OMP_NUM_THREADS=2 python benchmarks/zoo_ixi.py --registered DERIV/scans.csv --work W
    OMP_NUM_THREADS=2 nice -n 10 python benchmarks/zoo_ixi.py
    python benchmarks/zoo_ixi.py --targets sex --n-train 10 20 --seeds 0   # quicker
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from linear_readouts import _volumes
from transfer_ixi import IXI, load_ixi

from transmri._files import atomic_write_text
from transmri.evaluation.comparison import paired_differences
from transmri.evaluation.intervals import mean_interval
from transmri.transfer import TransferConfig, plan_splits

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ("sex", "age_group", "age")
#: Methods whose features are computed (and cached) once per scan.
BASE = ("deepbet", "random", "ridge", "volume")
#: Brain volume beside each image method's features, the volume left unpenalised.
COMBINED = ("volume + deepbet", "volume + random", "volume + ridge")
METHODS = BASE + COMBINED
#: (method, reference) pairs reported as paired differences.
DIFFERENCES = (
    ("deepbet", "random"),
    ("deepbet", "ridge"),
    ("volume + deepbet", "volume"),
    ("volume + ridge", "volume"),
    ("volume + deepbet", "volume + random"),
    ("volume + deepbet", "volume + ridge"),
)
#: The volume column's scale after standardisation in a combined model: the
#: penalty on its coefficient shrinks by this factor squared, so the images'
#: features are fitted on top of volume instead of drowning it.
UNPENALISED_SCALE = 100.0


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (``--size`` must be more than 32)."""
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--data", type=Path, default=IXI, help="the IXI sample")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "zoo_ixi")
    p.add_argument(
        "--work", type=Path, default=None, help="preprocessing and feature cache (default: none)"
    )
    p.add_argument(
        "--registered",
        type=Path,
        default=None,
        help="the scans.csv of `transmri preprocess` on the same IXI scans: read the "
        "MNI152-registered scans instead of the native ones, cropped to one fixed box",
    )
    p.add_argument("--size", type=int, default=96, help="deepbet input edge (voxels)")
    p.add_argument("--targets", nargs="+", choices=TARGETS, default=list(TARGETS))
    p.add_argument("--n-train", type=int, nargs="+", default=[10, 20, 40, 80])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="test sets")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--test-size", type=int, default=50)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    if args.size <= 32:
        p.error(f"--size: the deepbet encoder needs more than 32 voxels per axis, got {args.size}")
    if args.work is not None:
        args.work.mkdir(parents=True, exist_ok=True)
    if any(n < 4 for n in args.n_train):
        p.error(f"--n-train: every N must be at least 4, got {args.n_train}")
    return args


# ------------------------------------------------------------------ features
def deepbet_input(volume: np.ndarray) -> np.ndarray:
    """deepbet's standardisation of a [0, 1] volume: ``0.226 * z + 0.449``."""
    x = np.clip(volume.astype(np.float64), 0.0, 1.0)
    return (0.226 * (x - x.mean()) / (x.std() + 1e-12) + 0.449).astype(np.float32)


def encoder_features(encoder: object, volumes: np.ndarray, batch: int = 4) -> np.ndarray:
    """Every stage pooled globally and to 2 x 2 x 2 boxes, concatenated (one row a scan)."""
    import torch

    from transmri.models import regional_features

    rows = []
    with torch.no_grad():
        for start in range(0, len(volumes), batch):
            x = torch.from_numpy(
                np.stack([deepbet_input(v) for v in volumes[start : start + batch]])
            )
            x = x[:, None]
            g1 = regional_features(encoder, x, grid=1)  # type: ignore[arg-type]
            g2 = regional_features(encoder, x, grid=2)  # type: ignore[arg-type]
            rows.append(torch.cat([g1, g2], dim=1).numpy())
    return np.concatenate(rows)


def brain_volume_cc(mask_path: str) -> float:
    """Brain volume in cc: voxels of the mask times the voxel volume."""
    import nibabel as nib

    img = nib.load(mask_path)
    voxel_cc = float(np.prod(img.header.get_zooms()[:3])) / 1000.0
    return float((np.asarray(img.dataobj) > 0).sum()) * voxel_cc


def template_box(folder: Path) -> Path:
    """A mask of the MNI152 brain's bounding box, dilated by 2 voxels (one fixed crop)."""
    import nibabel as nib

    from transmri.raw.register import template

    _, brain, affine = template()
    box = np.zeros(brain.shape, dtype=np.uint8)
    lo = [max(0, int(i.min()) - 2) for i in np.nonzero(brain)]
    hi = [int(i.max()) + 3 for i in np.nonzero(brain)]
    box[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = 1
    path = folder / "mni152_brain_box.nii.gz"
    nib.save(nib.Nifti1Image(box, affine), path)
    return path


def registered_table(native: object, scans_csv: Path) -> object:
    """``native`` with each scan and mask replaced by its registered output (by source path).

    The brain mask column is dropped: the registered scans are already
    skull-stripped, and every scan is cropped to the same template box.
    """
    from transmri.data import ScanTable

    done = pd.read_csv(scans_csv)
    by_source = {
        str(Path(s).resolve()): str((scans_csv.parent / p).resolve())
        for s, p in zip(done["source_path"], done["path"], strict=True)
    }
    frame = native.frame.copy()  # type: ignore[attr-defined]
    missing = [p for p in frame["path"] if str(Path(p).resolve()) not in by_source]
    if missing:
        raise SystemExit(
            f"{scans_csv}: no registered scan for {len(missing)} scans, e.g. {missing[0]}"
        )
    frame["path"] = [by_source[str(Path(p).resolve())] for p in frame["path"]]
    return ScanTable.from_frame(frame.drop(columns=["mask"]), source=str(scans_csv))


def compute_features(args: argparse.Namespace) -> tuple[list[str], dict[str, np.ndarray], dict]:
    """Subjects (sorted), the feature matrix of each method, and the cost."""
    import torch

    from transmri.data import PreprocessConfig
    from transmri.models import DeepbetEncoder
    from transmri.pretrained import load_deepbet_network

    torch.set_num_threads(args.threads)
    table = load_ixi(args.data, "sex")
    cost: dict[str, float | int | str] = {"scans": len(table)}
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.work or Path(tmp)
        t0 = time.perf_counter()
        if args.registered is None:
            source, box, space = table, None, "native"
        else:
            source, box, space = (
                registered_table(table, args.registered),
                str(template_box(cache)),
                "mni",
            )
        crop = {"crop_to_mask": True, "mask": box}
        big = _volumes(
            source,
            PreprocessConfig(target_shape=(args.size,) * 3, clip_percentiles=(0.5, 99.5), **crop),
            cache / f"deepbet_{space}_{args.size}",
        )
        small = _volumes(
            source, PreprocessConfig(target_shape=(32, 40, 32), **crop), cache / f"ridge_{space}"
        )
        cost["preprocess_s"] = time.perf_counter() - t0
        cost["space"] = space
        cost["threads"] = args.threads
    subjects = sorted(big)
    frame = table.frame.set_index("subject")
    stack = np.stack([big[s] for s in subjects])
    pretrained = load_deepbet_network("model").encoder.eval()
    torch.manual_seed(0)
    random = DeepbetEncoder().eval()
    features: dict[str, np.ndarray] = {}
    for name, encoder in (("deepbet", pretrained), ("random", random)):
        t0 = time.perf_counter()
        features[name] = encoder_features(encoder, stack)
        cost[f"{name}_s"] = time.perf_counter() - t0
        cost[f"{name}_s_per_scan"] = cost[f"{name}_s"] / len(subjects)  # type: ignore[operator]
    import torch.nn.functional as F

    vox = torch.from_numpy(np.stack([small[s] for s in subjects]))[:, None]
    features["ridge"] = F.avg_pool3d(vox, 2, ceil_mode=True).flatten(1).numpy()
    t0 = time.perf_counter()
    volume = np.array([[brain_volume_cc(str(frame.loc[s, "mask"]))] for s in subjects])
    cost["volume_s"] = time.perf_counter() - t0
    features["volume"] = volume
    cost["deepbet_features"] = int(features["deepbet"].shape[1])
    cost["size"] = args.size
    return subjects, features, cost


def with_combined(features: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The base features plus each :data:`COMBINED` method (volume first, then the image's)."""
    out = dict(features)
    for name in COMBINED:
        out[name] = np.concatenate([features["volume"], features[name.split(" + ")[1]]], axis=1)
    return out


# ------------------------------------------------------------------ read-outs
def _scale_leading(x: np.ndarray, columns: int) -> np.ndarray:
    x = np.array(x, dtype=float, copy=True)
    x[:, :columns] *= UNPENALISED_SCALE
    return x


def fit_predict(
    x_fit: np.ndarray,
    y_fit: np.ndarray,
    groups: np.ndarray,
    x_test: np.ndarray,
    *,
    regression: bool,
    unpenalised: int = 0,
    voxels: bool = False,
) -> np.ndarray:
    """Standardise, choose C (alpha) by subject-grouped CV on the fit rows, predict the test rows.

    The first ``unpenalised`` columns are scaled up by :data:`UNPENALISED_SCALE`
    after standardisation, which leaves them (almost) out of the L2 penalty.
    ``voxels``: the columns after the unpenalised ones are voxel intensities
    on one common scale: they are centred, not divided by their spread. (On
    registered scans, a voxel at the brain's edge is non-zero in a few training
    scans only; dividing by its tiny spread blows it up, and the voxel ridge
    fell from AUC 0.84 to 0.73 on sex at N = 80 and its age MAE from 8.8 to
    17.8 years; measured 2026-12-02.)
    Classification returns decision values, regression predictions.
    """
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.model_selection import GridSearchCV, GroupKFold, StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    if regression:
        cv: object = GroupKFold(n_splits=max(2, min(5, len(np.unique(groups)))))
        alphas = list(max(1, x_fit.shape[1]) * np.logspace(-4, 3, 8))
        estimator, grid = Ridge(), {"ridge__alpha": alphas}
        scoring = "neg_mean_absolute_error"
    else:
        smallest = int(min((y_fit == c).sum() for c in (0, 1)))
        cv = StratifiedGroupKFold(n_splits=max(2, min(5, smallest)), shuffle=True, random_state=0)
        cs = list(np.logspace(-5, 1, 7))
        estimator, grid = LogisticRegression(max_iter=3000), {"logisticregression__C": cs}
        scoring = "roc_auc"
    scaler: object = StandardScaler()
    if voxels:
        from sklearn.compose import ColumnTransformer

        scaler = ColumnTransformer(
            [("given", StandardScaler(), list(range(unpenalised))),
             ("voxels", StandardScaler(with_std=False), list(range(unpenalised, x_fit.shape[1])))],
        )  # fmt: skip
    steps: list[object] = [scaler]
    if unpenalised:
        steps.append(FunctionTransformer(_scale_leading, kw_args={"columns": unpenalised}))
    pipeline = make_pipeline(*steps, estimator)
    search = GridSearchCV(pipeline, grid, scoring=scoring, cv=cv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search.fit(x_fit, y_fit, groups=groups)
    if regression:
        return np.asarray(search.predict(x_test), dtype=float)
    return np.asarray(search.decision_function(x_test), dtype=float)


def evaluate(
    features: Mapping[str, np.ndarray],
    subjects: Sequence[str],
    splits: Sequence[object],
    values: Mapping[str, float],
    *,
    regression: bool,
    test_set: int,
) -> pd.DataFrame:
    """One row per (method, draw): ``auc`` (classification) or ``mae`` (regression).

    ``values`` maps a subject to its target (0/1 for classification); each
    split's ``train`` and ``val`` subjects are fitted, its ``test`` scored.
    """
    from sklearn.metrics import mean_absolute_error, roc_auc_score

    row = {s: i for i, s in enumerate(subjects)}
    out = []
    for split in splits:
        fit = [*split.train.subjects, *split.val.subjects]  # type: ignore[attr-defined]
        test = list(split.test.subjects)  # type: ignore[attr-defined]
        y_fit = np.array([values[s] for s in fit])
        y_test = np.array([values[s] for s in test])
        for method, x in features.items():
            pred = fit_predict(
                x[[row[s] for s in fit]], y_fit, np.array(fit), x[[row[s] for s in test]],
                regression=regression, unpenalised=1 if method in COMBINED else 0,
                voxels=method.endswith("ridge"),
            )  # fmt: skip
            score = (
                {"mae": mean_absolute_error(y_test, pred)}
                if regression
                else {"auc": roc_auc_score(y_test, pred)}
            )
            out.append(
                {
                    "method": method,
                    "n_train": split.n_train,  # type: ignore[attr-defined]
                    "repeat": split.repeat,  # type: ignore[attr-defined]
                    "test_set": test_set,
                    "test_subjects_hash": split.test_hash,  # type: ignore[attr-defined]
                    **score,
                }
            )
    return pd.DataFrame(out)


def summarize(comparison: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Mean and 95 % t-interval over every (test set, draw) pair, per method and ``N``."""
    rows = []
    for (method, n), group in comparison.groupby(["method", "n_train"], sort=False):
        mean, low, high = mean_interval(group[metric], metric=metric)
        rows.append(
            {"method": method, "n_train": n, "n_pairs": len(group),
             f"{metric}_mean": mean, f"{metric}_low": low, f"{metric}_high": high}
        )  # fmt: skip
    return pd.DataFrame(rows)


def differences(comparison: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The paired differences of :data:`DIFFERENCES` (same test set and draw)."""
    frames = []
    for method, reference in DIFFERENCES:
        pair = comparison[comparison["method"].isin([method, reference])]
        diff = paired_differences(pair, reference=reference, metrics=(metric,))
        frames.append(diff[diff["method"] == method])
    return pd.concat(frames, ignore_index=True)


def markdown(summary: pd.DataFrame, diff: pd.DataFrame, metric: str) -> str:
    """The two tables of a target as Markdown."""
    ns = sorted(summary["n_train"].unique())
    head = "| method | " + " | ".join(f"N={n}" for n in ns) + " |\n|---|" + "---|" * len(ns)
    lines = [head]
    for method in [m for m in METHODS if m in set(summary["method"])]:
        cells = []
        for n in ns:
            r = summary[(summary["method"] == method) & (summary["n_train"] == n)].iloc[0]
            m, lo, hi = (r[f"{metric}_{k}"] for k in ("mean", "low", "high"))
            cells.append(f"{m:.3f} [{lo:.2f}, {hi:.2f}]" if metric == "auc" else
                         f"{m:.2f} [{lo:.2f}, {hi:.2f}]")  # fmt: skip
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += ["", head.replace("| method |", "| difference |")]
    for method, reference in DIFFERENCES:
        cells = []
        for n in ns:
            sel = diff[(diff["method"] == method) & (diff["reference"] == reference)]
            r = sel[sel["n_train"] == n].iloc[0]
            d, lo, hi, w = (r[f"{metric}_{k}"] for k in ("diff", "low", "high", "wins"))
            fmt = "{:+.3f} [{:+.3f}, {:+.3f}] ({:.2f})" if metric == "auc" else (
                "{:+.2f} [{:+.2f}, {:+.2f}] ({:.2f})")  # fmt: skip
            cells.append(fmt.format(d, lo, hi, w))
        lines.append(f"| {method} - {reference} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def target_values(target: str, table: object) -> dict[str, float]:
    """Subject -> 0/1 label (``sex``: M = 1; ``age_group``: old = 1) or age in years."""
    frame = table.frame  # type: ignore[attr-defined]
    if target == "age":
        return {s: float(a) for s, a in zip(frame["subject"], frame["age"], strict=True)}
    positive = "M" if target == "sex" else "old"
    return {s: float(v == positive) for s, v in zip(frame["subject"], frame["label"], strict=True)}


def feasible_sizes(table: object, args: argparse.Namespace) -> tuple[int, ...]:
    """The ``--n-train`` values every test set of ``table`` leaves enough scans for.

    The others are named on stdout (age group has fewer subjects than sex).
    """
    from transmri.errors import ConfigError

    sizes = []
    for n in args.n_train:
        try:
            for seed in args.seeds:
                plan_splits(table, TransferConfig(n_train=(n,), repeats=1,
                                                  test_size=args.test_size, seed=seed))  # fmt: skip
        except ConfigError as exc:
            print(f"N = {n} skipped: {exc}")
            continue
        sizes.append(n)
    return tuple(sizes)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    start = time.perf_counter()
    space = "native" if args.registered is None else "mni"
    cached = args.work / f"features_{space}_{args.size}.npz" if args.work else None
    if cached is not None and cached.is_file():  # plain arrays, no pickle
        with np.load(cached, allow_pickle=False) as saved:
            subjects = [str(s) for s in saved["subjects"]]
            features = {m: saved[f"f{i}"] for i, m in enumerate(BASE)}
        cost = json.loads((cached.with_suffix(".json")).read_text())
    else:
        subjects, features, cost = compute_features(args)
        if cached is not None:
            arrays = {f"f{i}": features[m] for i, m in enumerate(BASE)}
            np.savez(cached, subjects=np.array(subjects), **arrays)  # type: ignore[arg-type]
            atomic_write_text(cached.with_suffix(".json"), json.dumps(cost))
    features = with_combined(features)
    args.out.mkdir(parents=True, exist_ok=True)
    where = "native space" if space == "native" else "affinely registered to MNI152"
    print(
        f"# Frozen deepbet encoder on IXI ({len(subjects)} scans, {where}, "
        f"deepbet input {args.size}^3)\n"
    )
    print(
        f"Feature cost on {cost.get('threads', '?')} threads: deepbet "
        f"{cost['deepbet_s_per_scan']:.2f} s a scan ({cost['deepbet_s']:.0f} s), "
        f"random {cost['random_s_per_scan']:.2f} s a scan, "
        f"preprocessing {cost['preprocess_s']:.0f} s, {cost['deepbet_features']} deepbet features\n"
    )
    for target in args.targets:
        t0 = time.perf_counter()
        table = load_ixi(args.data, "sex" if target == "age" else target)
        values = target_values(target, table)
        regression = target == "age"
        metric = "mae" if regression else "auc"
        sizes = feasible_sizes(table, args)
        if not sizes:
            print(f"## {target}: no N of {args.n_train} fits this table; skipped\n")
            continue
        frames = []
        for seed in args.seeds:
            config = TransferConfig(
                n_train=sizes, repeats=args.repeats, test_size=args.test_size, seed=seed
            )
            splits = plan_splits(table, config)
            frames.append(
                evaluate(features, subjects, splits, values, regression=regression, test_set=seed)
            )
        comparison = pd.concat(frames, ignore_index=True)
        summary, diff = summarize(comparison, metric), differences(comparison, metric)
        for name, frame in (("comparison", comparison), ("summary", summary),
                            ("differences", diff)):  # fmt: skip
            atomic_write_text(args.out / f"{name}_{target}.csv", frame.to_csv(index=False))
        cost[f"fit_{target}_s"] = time.perf_counter() - t0
        label = "MAE in years (lower is better)" if regression else "AUC"
        print(f"## {target}: mean test {label} [95 % interval over "
              f"{len(args.seeds) * args.repeats} pairs]\n")  # fmt: skip
        print(markdown(summary, diff, metric) + "\n")
    cost["total_s"] = time.perf_counter() - start
    cost["command"] = shlex.join(["python", "benchmarks/zoo_ixi.py", *(argv or sys.argv[1:])])
    atomic_write_text(args.out / "features_cost.json", json.dumps(cost, indent=2) + "\n")
    print(f"Total {cost['total_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
