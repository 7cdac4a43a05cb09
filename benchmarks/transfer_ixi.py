"""Does transfer help on real scans? Sex from IXI T1 scans, with and without pretraining.

Target task: sex (F/M) of the IXI subjects in ``../shared/data/ixi``
(``--target age_group``: young < 40 vs old >= 60 years instead). One
held-out test set of ``--test-size`` subjects (label-stratified) is fixed
first; training subsets of ``N`` scans are drawn from the other subjects.

Sources of the pretrained encoder (its card lists its subjects, and
``transfer_curve`` refuses it if one of them is a test subject):

1. ``ixi-<pretrain>``: the IXI subjects outside the test set, pretrained
   with AGE only or with no label (never sex): ``--pretrain age_group``
   (classify older/younger than the median, encoder + head; source
   ``ixi-age``), ``mixed`` (autoencoder + age group + age regression),
   ``autoencoder``, ``denoise``, ``inpaint`` (no labels), ``contrastive``
   or ``contrastive_age`` (SimCLR / age-aware InfoNCE);
2. ``synthetic``: an autoencoder on a SYNTHETIC cohort made from the MNI152
   template (``transmri.datasets.make_synthetic_cohort``).

Then :func:`transmri.transfer.transfer_curve` compares ``scratch``,
``finetune``, ``linear_probe`` and ``ridge`` at every ``N``; the encoder
methods run once per source. Preprocessing: per-scan brain mask, RAS,
cropped to the brain's bounding box (``--no-crop`` keeps the whole field of
view, where head size gives sex away), resized to ``--resolution``, min-max
scaled.

Writes to ``--out`` (default ``benchmarks/results/transfer_ixi``):
``comparison.csv`` (every run, with its ``source``), ``summary.csv``,
``differences.csv``, ``learning_curve_auc.png``,
``learning_curve_balanced_accuracy.png`` and ``settings.json`` (command,
settings, timings, machine). Caches, run folders and encoders go to
``--work``; rerunning the same command resumes from there.

Usage:
    OMP_NUM_THREADS=2 nice -n 10 python benchmarks/transfer_ixi.py            # full run
    OMP_NUM_THREADS=2 nice -n 10 python benchmarks/transfer_ixi.py --quick    # smoke run
    python benchmarks/transfer_ixi.py --no-crop --methods ridge --no-synthetic \\
        --out benchmarks/results/transfer_ixi_nocrop
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import shlex
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from transmri._files import atomic_write_text
from transmri.data import DataBunch, PreprocessConfig, ScanTable
from transmri.evaluation.comparison import paired_differences
from transmri.evaluation.plots import plot_learning_curve, summarize_comparison
from transmri.transfer import (
    TransferConfig,
    held_out_subjects,
    method_needs_encoder,
    transfer_curve,
)

ROOT = Path(__file__).resolve().parents[1]
IXI = ROOT.parent / "shared" / "data" / "ixi"


def load_ixi(root: Path, task: str = "sex") -> ScanTable:
    """IXI T1 scans labelled for ``task`` (``sex``, ``age_group`` or ``age``: unlabelled).

    Every table has per-scan brain masks and an ``age`` column.
    """
    try:
        from transmri.datasets import get_ixi
    except ImportError:  # an older transmri without the adapter
        if task != "sex":
            raise
        people = pd.read_csv(root / "participants.csv")
        frame = pd.DataFrame(
            {
                "path": [f"t1/{m}_T1.nii.gz" for m in people["MRID"]],
                "subject": [m.split("-")[0] for m in people["MRID"]],
                "label": people["Sex"],
                "mask": [f"brainmask/{m}_brainmask.nii.gz" for m in people["MRID"]],
                "age": people["Age"].astype(float),
            }
        )
        frame = frame[[(root / p).is_file() for p in frame["path"]]]
        return ScanTable.from_frame(frame, mask_col="mask", root=root, source=str(root))
    with warnings.catch_warnings():  # scans without demographics are reported, not needed
        warnings.simplefilter("ignore", UserWarning)
        return get_ixi(root, task=task)  # type: ignore[arg-type]


def _quiet_databunch(
    table: ScanTable, pre: PreprocessConfig, cache: Path, **kw: object
) -> DataBunch:
    with warnings.catch_warnings():  # test_size=0 warns: pretraining has no test split
        warnings.simplefilter("ignore", UserWarning)
        return DataBunch(table, pre, cache_dir=cache, val_size=0.15, test_size=0.0, seed=0, **kw)  # type: ignore[arg-type]


def pretrain_ixi_age(
    table: ScanTable, held_out: Sequence[str], pre: PreprocessConfig, args: argparse.Namespace
) -> Path:
    """Pretrain on the IXI subjects outside the test set, with age as the only label."""
    from transmri.training import create_autoencoder, create_classifier, create_mixed

    folder = args.work / f"pretrain_ixi_{args.pretrain}_{_tag(args)}"
    if (folder / "encoder.json").is_file():
        return folder / "encoder.json"
    keep = np.flatnonzero(~table.frame["subject"].isin(set(held_out)).to_numpy())
    frame = table.subset(keep).frame.copy()
    age = frame["age"].astype(float)
    frame["label"] = pd.array(
        np.where(age >= age.median(), "older", "younger"), dtype="string"
    )  # sex is dropped here: the source task never sees it
    frame["age_z"] = (age - age.mean()) / age.std()
    frame = frame.drop(columns=["sex"], errors="ignore")
    common = {"batch_size": args.batch_size, "progress": False, "seed": 0, "overwrite": True}
    norm = None if args.norm == "none" else args.norm
    pretext = args.pretrain if args.pretrain in ("denoise", "inpaint") else None
    if args.pretrain in ("autoencoder", "denoise", "inpaint"):
        frame["label"] = pd.array([pd.NA] * len(frame), dtype="string")
        data = _quiet_databunch(table.with_frame(frame), pre, args.cache)
        learner = create_autoencoder(data, folder, arch="cae", norm=norm, **common)
    elif args.pretrain == "mixed":
        data = _quiet_databunch(table.with_frame(frame), pre, args.cache, targets=("age_z",))
        learner = create_mixed(data, folder, arch="cae", norm=norm, **common)
    elif args.pretrain in ("contrastive", "contrastive_age"):
        from transmri.models import ContrastiveModel, ConvEncoder
        from transmri.training import ContrastiveLoss, Learner

        frame["label"] = pd.array([pd.NA] * len(frame), dtype="string")
        data = _quiet_databunch(table.with_frame(frame), pre, args.cache, targets=("age",))
        target = "age" if args.pretrain == "contrastive_age" else None
        model = ContrastiveModel(ConvEncoder(norm=norm))
        loss = ContrastiveLoss(target=target, sigma=5.0)
        learner = Learner(data, model, folder, model_type="contrastive", loss_fn=loss, **common)
    else:
        data = _quiet_databunch(table.with_frame(frame), pre, args.cache)
        learner = create_classifier(data, folder, arch="cae", norm=norm, **common)
    learner.fit(
        args.pretrain_epochs,
        args.lr,
        early_stop=args.early_stop,
        monitor="val_loss",
        pretext=pretext,
    )
    return learner.save_encoder()


def pretrain_synthetic(pre: PreprocessConfig, args: argparse.Namespace) -> Path:
    """An autoencoder on a SYNTHETIC MNI152-based cohort (no IXI subject, no label used)."""
    from transmri.datasets import (
        SyntheticCohortConfig,
        load_synthetic_cohort,
        make_synthetic_cohort,
    )
    from transmri.training import create_autoencoder

    folder = args.work / f"pretrain_synthetic_{args.synthetic_subjects}_{_tag(args)}"
    if (folder / "encoder.json").is_file():
        return folder / "encoder.json"
    cohort = args.work / f"synthetic_cohort_{args.synthetic_subjects}"
    make_synthetic_cohort(cohort, SyntheticCohortConfig(n_subjects=args.synthetic_subjects, seed=0))
    table = load_synthetic_cohort(cohort)
    table = table.with_frame(
        table.frame.assign(label=pd.array([pd.NA] * len(table), dtype="string"))
    )
    data = _quiet_databunch(table, pre, args.cache)
    learner = create_autoencoder(
        data, folder, arch="cae", norm=None if args.norm == "none" else args.norm,
        batch_size=args.batch_size, progress=False, seed=0, overwrite=True,
    )  # fmt: skip
    learner.fit(args.pretrain_epochs, args.lr, early_stop=args.early_stop)
    return learner.save_encoder()


def _source_name(args: argparse.Namespace) -> str:
    """``ixi-age`` for age-group pretraining (as in the first results), else ``ixi-<kind>``."""
    return "ixi-age" if args.pretrain == "age_group" else f"ixi-{args.pretrain}"


def _tag(args: argparse.Namespace) -> str:
    """Names a pretraining folder by what changes the encoder (rerun: reused only if equal)."""
    return f"{args.norm}_e{args.pretrain_epochs}_lr{args.lr:g}_p{args.early_stop}"


def _table(summary: pd.DataFrame, metric: str) -> pd.DataFrame:
    cells = summary.assign(
        cell=[
            f"{m:.3f}" + ("" if np.isnan(lo) else f" [{lo:.2f}, {hi:.2f}]")
            for m, lo, hi in summary[[f"{metric}_{k}" for k in ("mean", "low", "high")]].to_numpy()
        ]
    )  # fmt: skip
    return cells.pivot(index="method", columns="n_train", values="cell")


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--data", type=Path, default=IXI, help="IXI folder (t1/, brainmask/, participants.csv)"
    )
    p.add_argument("--resolution", type=int, nargs=3, default=None, help="D H W (default 48 56 48)")
    p.add_argument("--n-train", type=int, nargs="+", default=None, help="default 10 20 40 80")
    p.add_argument("--repeats", type=int, default=None, help="default 5")
    p.add_argument("--test-size", type=int, default=50)
    p.add_argument(
        "--target",
        choices=("sex", "age_group"),
        default="sex",
        help="the target task: sex, or age group (young < 40 <= skipped < 60 <= old)",
    )
    p.add_argument("--methods", nargs="+", default=["scratch", "finetune", "linear_probe", "ridge"])
    p.add_argument(
        "--pretrain",
        choices=(
            "age_group",
            "mixed",
            "autoencoder",
            "contrastive",
            "contrastive_age",
            "denoise",
            "inpaint",
        ),
        default="age_group",
    )
    p.add_argument("--pretrain-epochs", type=int, default=None, help="default 40")
    p.add_argument("--epochs", type=int, default=None, help="scratch epochs (default 30)")
    p.add_argument("--epochs-frozen", type=int, default=None, help="default 5")
    p.add_argument("--epochs-unfrozen", type=int, default=None, help="default 25")
    p.add_argument("--early-stop", type=int, default=10, help="patience, epochs")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument(
        "--head",
        choices=("gap", "flatten", "regional"),
        default="gap",
        help="classifier head of the CNN methods (scratch, finetune, recipes)",
    )
    p.add_argument(
        "--probe-grid", type=int, default=2, help="regional_probe: boxes per axis (default 2)"
    )
    p.add_argument(
        "--norm",
        choices=("group", "batch", "none"),
        default="group",
        help="normalisation layers of the CAE encoder (scratch uses the same)",
    )
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--synthetic-subjects", type=int, default=None, help="default 200")
    p.add_argument("--no-synthetic", action="store_true", help="skip the synthetic source")
    p.add_argument(
        "--no-ixi",
        action="store_true",
        help="skip the IXI source: the synthetic source alone (with every method)",
    )
    p.add_argument("--no-crop", action="store_true", help="keep the whole field of view")
    p.add_argument("--quick", action="store_true", help="tiny smoke run (minutes)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "transfer_ixi")
    p.add_argument(
        "--work", type=Path, default=None, help="caches and run folders (default: a temp dir)"
    )
    args = p.parse_args(argv)
    if args.target == "age_group" and args.pretrain in ("age_group", "mixed", "contrastive_age"):
        p.error(f"--pretrain {args.pretrain} uses age, the --target age_group's own label")
    if args.no_ixi and args.no_synthetic:
        p.error("--no-ixi with --no-synthetic leaves no source")
    quick = args.quick
    defaults = {
        "resolution": [24, 28, 24] if quick else [48, 56, 48],
        "n_train": [10, 20] if quick else [10, 20, 40, 80],
        "repeats": 2 if quick else 5,
        "pretrain_epochs": 2 if quick else 40,
        "epochs": 3 if quick else 30,
        "epochs_frozen": 1 if quick else 5,
        "epochs_unfrozen": 2 if quick else 25,
        "synthetic_subjects": 24 if quick else 200,
    }
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.work is None:
        tag = "x".join(map(str, args.resolution)) + ("_nocrop" if args.no_crop else "")
        args.work = (
            Path(tempfile.gettempdir()) / f"transmri_transfer_ixi_{tag}{'_quick' if quick else ''}"
        )
    args.cache = args.work / "cache"
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("lightning_fabric").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*deterministic implementation.*")
    started = time.perf_counter()
    timings: dict[str, float] = {}
    table = load_ixi(args.data, args.target)
    # Pretraining reads every IXI scan with an age outside the test set (not only
    # the target's scans: the age-group target skips ages 40-60).
    source_table = table if args.target == "sex" else load_ixi(args.data, "age")
    pre = PreprocessConfig(target_shape=tuple(args.resolution), crop_to_mask=not args.no_crop)
    config = TransferConfig(
        n_train=tuple(args.n_train), repeats=args.repeats, test_size=args.test_size,
        methods=tuple(args.methods), epochs=args.epochs, epochs_frozen=args.epochs_frozen,
        epochs_unfrozen=args.epochs_unfrozen, early_stop=args.early_stop, lr=args.lr,
        batch_size=args.batch_size, n_jobs=2, seed=args.seed, probe_grid=args.probe_grid,
        head=args.head,
    )  # fmt: skip
    held_out = held_out_subjects(table, config)
    test_counts = table.frame[table.frame["subject"].isin(held_out)]["label"].value_counts()
    print(f"{table.summary()}\ntest subjects: {len(held_out)} {test_counts.to_dict()}; "
          f"preprocessing {pre.to_dict()}\nwork folder: {args.work}", flush=True)  # fmt: skip

    needs = [m for m in config.methods if method_needs_encoder(m)]
    frames = []
    first = _source_name(args) if needs else "none"
    sources = (
        []
        if args.no_ixi and needs  # without encoder methods the "none" source runs them
        else [(first, lambda: pretrain_ixi_age(source_table, held_out, pre, args))]
    )
    if not args.no_synthetic and needs:
        sources.append(("synthetic", lambda: pretrain_synthetic(pre, args)))
    for i, (source, pretrain) in enumerate(sources):
        encoder = None
        if needs:
            t0 = time.perf_counter()
            encoder = pretrain()
            timings[f"pretrain {source}"] = time.perf_counter() - t0
        methods = config.methods if i == 0 else tuple(needs)  # the others do not use the encoder
        t0 = time.perf_counter()
        result = transfer_curve(
            table, preprocessing=pre, encoder=encoder, out_dir=args.work / f"transfer_{source}",
            config=dataclasses.replace(config, methods=methods), cache_dir=args.cache,
        )  # fmt: skip
        timings[f"transfer_curve {source}"] = time.perf_counter() - t0
        frame = result.frame.assign(source=source)
        renamed = [f"{m} ({source})" if m in needs else m for m in frame["method"]]
        frames.append(frame.assign(method=renamed))
    timings["total"] = time.perf_counter() - started

    combined = pd.concat(frames, ignore_index=True)
    summary = summarize_comparison(
        combined, metrics=["auc", "balanced_accuracy", "converged", "seconds"]
    )
    references = [r for r in ("scratch", "ridge") if r in set(combined["method"])]
    differences = pd.concat(
        [paired_differences(combined, reference=r) for r in references] or [pd.DataFrame()],
        ignore_index=True,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    _write_csv(combined, args.out / "comparison.csv")
    _write_csv(summary, args.out / "summary.csv")
    _write_csv(differences, args.out / "differences.csv")
    for metric in ("auc", "balanced_accuracy"):
        plot_learning_curve(combined, metric=metric, path=args.out / f"learning_curve_{metric}.png")
    settings = {
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}",
        "transfer": config.to_dict(),
        "preprocessing": pre.to_dict(),
        "target": args.target,
        "pretrain": args.pretrain,
        "norm": args.norm,
        "pretrain_epochs": args.pretrain_epochs,
        "synthetic_subjects": None if args.no_synthetic else args.synthetic_subjects,
        "test_subjects": held_out,
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
    }
    _write_text(args.out / "settings.json", json.dumps(settings, indent=2) + "\n")

    with pd.option_context("display.width", 200, "display.max_columns", 20):
        for metric in ("auc", "balanced_accuracy"):
            print(f"\n{metric}: mean [95% t-interval over {config.repeats} repeats] by N")
            print(_table(summary, metric).to_string())
        if len(differences):
            print(
                "\npaired AUC differences (method - reference), mean [95% interval], share of wins"
            )
            cols = ["method", "reference", "n_train", "auc_diff", "auc_low", "auc_high", "auc_wins"]
            print(differences[cols].round(3).to_string(index=False))
        converged = combined.groupby("method")["converged"].mean().round(2).to_dict()
        print(f"\nshare of runs that converged: {converged}")
    print("\ntimings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    print(f"wrote {args.out}")
    return 0


def _write_text(path: Path, text: str) -> None:
    atomic_write_text(path, text)


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    _write_text(path, frame.to_csv(index=False))


if __name__ == "__main__":
    sys.exit(main())
