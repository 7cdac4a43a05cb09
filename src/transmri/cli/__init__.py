"""The ``transmri`` command: a thin layer over :mod:`transmri.experiment` and :mod:`transmri.demo`.

Exit codes: 0 success; 1 runtime failure; 2 usage error or bad input (a
missing or malformed experiment file, an unknown key or bad value, a data
path that does not exist, a run folder holding another run). Errors are one
line on stderr (``transmri: error: ...``); ``--debug`` shows the traceback.
Heavy modules (torch, MONAI) are imported inside the command handlers, so
``transmri --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transmri._allocator import keep_freed_memory
from transmri.cli._encoder import run_encoder
from transmri.cli._parser import build_parser
from transmri.cli._preprocess import preprocess_command
from transmri.cli._progress import show_progress
from transmri.cli._warnings import cli_warnings

__all__ = ["main"]

_BAD_INPUT = (
    ValueError,  # ConfigError, DataFormatError, DataLeakageError
    FileNotFoundError,
    FileExistsError,  # OutputExistsError
    NotADirectoryError,
    IsADirectoryError,
)


def _say(line: str) -> None:
    print(line, flush=True)


def _note(line: str) -> None:
    """A skipped or resumed step: on stderr, so that stdout keeps the results."""
    print(f"transmri: {line}", file=sys.stderr, flush=True)


def _experiment(args: argparse.Namespace) -> Any:
    from transmri.experiment import Experiment, load_experiment

    overrides = list(args.overrides)
    if args.out is not None:
        overrides.append(f"output={Path(args.out).absolute()}")
    config = load_experiment(args.experiment, overrides=overrides)
    experiment = Experiment(
        config,
        overwrite=args.overwrite,
        progress=show_progress(args.progress),
        log=_say,
        restart=args.restart,
        note=_note,
    )
    experiment.check()
    return experiment


def _run(args: argparse.Namespace) -> int:
    experiment = _experiment(args)
    run_dir = experiment.run()
    report = run_dir / "report.html"
    _say(f"Run folder: {run_dir}")
    if report.is_file():
        _say(f"Report: {report}")
    return 0


def _step(args: argparse.Namespace) -> int:
    experiment = _experiment(args)
    if args.command == "stats":
        experiment.open()
        stats = experiment.stats()
        _say(stats.to_string(index=False))
        _say(f"Saved: {experiment.run_dir / 'data_stats.csv'}")
    elif args.command == "embed":
        experiment.embed(model=args.model, splits=tuple(args.splits or ("test",)))
    else:
        getattr(experiment, args.command)()
    return 0


def _report(args: argparse.Namespace) -> int:
    from transmri.evaluation import build_report

    run_dir = Path(args.run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise NotADirectoryError(f"{run_dir}: expected a run folder, found a file")
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: run folder not found")
    path = build_report(run_dir, title=args.title)
    _say(f"Report: {path}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from transmri.demo import DemoConfig, run_demo

    config = DemoConfig.from_options(
        quick=args.quick,
        source_subjects=args.source_subjects,
        target_subjects=args.target_subjects,
        resolution=args.resolution,
        epochs=args.epochs,
        seed=args.seed,
    )
    report = run_demo(
        args.out,
        config,
        overwrite=args.overwrite,
        progress=show_progress(args.progress),
        log=_say,
        restart=args.restart,
        note=_note,
    )
    _say(f"Report: {report}")
    _say("The data are SYNTHETIC (generated from the MNI152 template), not real patients.")
    return 0


_HANDLERS = {
    "run": _run,
    "report": _report,
    "demo": _demo,
    "encoder": run_encoder,
    "preprocess": preprocess_command,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``transmri`` command; return its exit code.

    Args:
        argv: the arguments (default ``sys.argv[1:]``).
    """
    parser = build_parser()
    args = parser.parse_args(argv)  # exits with 2 on a usage error
    handler = _HANDLERS.get(args.command, _step)
    keep_freed_memory()  # before the first large allocation; see transmri._allocator
    try:
        with cli_warnings():
            return handler(args)
    except KeyboardInterrupt:
        print("transmri: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one line, no traceback, unless --debug
        if args.debug:
            traceback.print_exc()
        message = " ".join(str(exc).split()) or type(exc).__name__
        if isinstance(exc, _BAD_INPUT):
            print(f"transmri: error: {message}", file=sys.stderr)
            return 2
        print(f"transmri: failed: {type(exc).__name__}: {message}", file=sys.stderr)
        return 1
