"""``transmri preprocess TABLE --out DIR``: raw-scan steps over a scan table."""

from __future__ import annotations

import argparse

from transmri.cli._progress import show_progress
from transmri.errors import ConfigError

__all__ = ["add_preprocess_parser", "preprocess_command"]


def add_preprocess_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``preprocess`` sub-command."""
    sub = commands.add_parser(
        "preprocess",
        help="raw scans -> brain-extracted, affinely registered MNI152 scans with QC",
        description="Skull-strip, optionally N4-correct and register each scan of a scan table "
        "(CSV with path, subject[, label, mask]) to MNI152 2 mm; write BIDS derivatives, "
        "scans.csv and qc.html.",
    )
    sub.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks"
    )
    sub.add_argument("table", metavar="TABLE", help="the scan table (CSV)")
    sub.add_argument("--out", metavar="DIR", required=True, help="derivatives folder")
    sub.add_argument("--jobs", type=int, default=1, help="parallel worker processes")
    sub.add_argument(
        "--shard", default="0/1", metavar="I/N", help="process rows p with p %% N == I"
    )
    sub.add_argument("--skull-strip", choices=("deepbet", "mask", "none"), default="mask")
    sub.add_argument("--register", choices=("torchreg", "ants", "none"), default="torchreg")
    sub.add_argument("--n4", action="store_true", help="N4 bias-field correction (ANTsPy)")
    sub.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a progress bar (default: on when stderr is a terminal and CI is not set)",
    )


def _shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError as exc:
        raise ConfigError(f"--shard: expected I/N such as 0/4, got {text!r}") from exc
    return index, count


def preprocess_command(args: argparse.Namespace) -> int:
    """Run ``transmri preprocess``."""
    import pandas as pd

    from transmri.data.table import ScanTable
    from transmri.raw import RawScanConfig, preprocess_table

    header = set(pd.read_csv(args.table, nrows=0, sep=None, engine="python").columns)
    table = ScanTable.from_csv(
        args.table,
        mask_col="mask" if "mask" in header else None,
        label_col="label" if "label" in header else None,
    )
    config = RawScanConfig(
        skull_strip=args.skull_strip, bias_correct=args.n4, register=args.register
    )
    scans = preprocess_table(
        table,
        args.out,
        config,
        jobs=args.jobs,
        shard=_shard(args.shard),
        progress=show_progress(args.progress),
    )
    flagged = scans[scans["qc_flag"]] if "qc_flag" in scans else scans.iloc[:0]
    print(f"{len(scans)} scans preprocessed into {args.out}; {len(flagged)} flagged", flush=True)
    for _, row in flagged.iterrows():
        print(f"  flagged: {row['source_path']}: {row['qc_reason']}", flush=True)
    return 0
