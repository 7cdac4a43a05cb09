"""Pool transfer-benchmark runs made on different test sets into one comparison.

Each run of ``benchmarks/transfer_ixi.py --seed S`` holds out its own test
set (and pretrains without it). One test set of 50 subjects carries an AUC
uncertainty of about +-0.13 that the repeats do not see; pooling the runs of
several seeds measures it. This script concatenates their
``comparison.csv`` files (same methods, same ``N``), prints the mean AUC of
every method per test set and pooled, and the paired differences to the
references over every (test set, repeat) pair
(:func:`~transmri.evaluation.comparison.paired_differences` pairs within a
test set).

Writes ``comparison.csv``, ``summary.csv``, ``differences.csv``,
``per_test_set.csv`` and ``learning_curve_auc.png`` to ``--out``.

Usage:
    python benchmarks/pool_runs.py benchmarks/results/transfer_ixi_regional_s{0,1,2} \\
        --out benchmarks/results/transfer_ixi_regional_pooled
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from transmri._files import atomic_write_text
from transmri.evaluation.comparison import paired_differences
from transmri.evaluation.plots import plot_learning_curve, summarize_comparison


def pool(folders: Sequence[Path]) -> pd.DataFrame:
    """The concatenated ``comparison.csv`` of ``folders``, with a ``run`` column.

    Raises:
        FileNotFoundError: a folder without ``comparison.csv``.
        ValueError: two runs on the same test set (they would not be independent).
    """
    frames = []
    for folder in folders:
        path = Path(folder) / "comparison.csv"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not found (is {folder} a transfer_ixi.py output?)")
        frames.append(pd.read_csv(path).assign(run=Path(folder).name))
    combined = pd.concat(frames, ignore_index=True)
    runs_per_test = combined.groupby("test_subjects_hash")["run"].nunique()
    shared = runs_per_test[runs_per_test > 1]
    if len(shared):
        raise ValueError(
            f"test sets {sorted(shared.index)} appear in more than one run; pool runs with "
            f"different --seed"
        )
    return combined


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folders", type=Path, nargs="+", help="transfer_ixi.py output folders")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--references", nargs="+", default=["scratch", "ridge"])
    args = p.parse_args(argv)
    combined = pool(args.folders)
    summary = summarize_comparison(combined, metrics=["auc", "balanced_accuracy"])
    per_test = (
        combined.groupby(["run", "method", "n_train"])["auc"].mean().unstack("n_train").round(3)
    )
    present = set(combined["method"])
    differences = pd.concat(
        [paired_differences(combined, reference=r) for r in args.references if r in present],
        ignore_index=True,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    for name, frame in (
        ("comparison", combined),
        ("summary", summary),
        ("differences", differences),
        ("per_test_set", per_test.reset_index()),
    ):
        atomic_write_text(args.out / f"{name}.csv", frame.to_csv(index=False))
    plot_learning_curve(combined, metric="auc", path=args.out / "learning_curve_auc.png")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(f"mean test AUC per test set ({combined['run'].nunique()} runs)")
        print(per_test.to_string())
        cells = summary.assign(
            cell=[
                f"{m:.3f} [{lo:.2f}, {hi:.2f}]"
                for m, lo, hi in summary[["auc_mean", "auc_low", "auc_high"]].to_numpy()
            ]
        )
        print("\npooled AUC, mean [95% t-interval over every test set x repeat]")
        print(cells.pivot(index="method", columns="n_train", values="cell").to_string())
        cols = ["method", "reference", "n_train", "n_pairs", "auc_diff", "auc_low", "auc_high"]
        print("\npaired AUC differences (method - reference), pooled")
        print(differences[[*cols, "auc_wins"]].round(3).to_string(index=False))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
