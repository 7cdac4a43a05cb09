"""The argument parser of the ``transmri`` command (standard library only: ``--help`` is fast)."""

from __future__ import annotations

import argparse

from transmri._version import __version__
from transmri.cli._encoder import add_encoder_parser
from transmri.cli._preprocess import add_preprocess_parser

__all__ = ["build_parser"]

_STEP_HELP = {
    "prepare": "load both cohorts, fill the volume cache, write data statistics",
    "stats": "print and save data statistics (scans and subjects per cohort, split, label)",
    "pretrain": "pretrain the autoencoder on the source cohort and save its encoder",
    "finetune": "fine-tune the pretrained encoder + a head on the target cohort",
    "evaluate": "test predictions and metrics (with intervals) of the fine-tuned model",
    "embed": "export codes of target scans as CSV and NPY",
    "compare": "transfer learning curve: fine-tuning vs scratch vs linear baselines",
}


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


def _common(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS keeps the top-level value when the option is not repeated here.
    parser.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks"
    )


def _experiment_args(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("experiment", help="the experiment file (YAML)")
    parser.add_argument(
        "--out", metavar="DIR", help="run folder (default: the file's 'output', or runs/<name>)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a key of the file, e.g. --set pretrain.epochs=1 (repeatable)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace another run found in the run folder instead of refusing",
    )
    _restart(parser)
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bars and one line per compared run (default: on when stderr is a "
        "terminal and CI is not set)",
    )


def _restart(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--restart",
        action="store_true",
        help="train from scratch instead of skipping finished steps and resuming an "
        "interrupted one from its checkpoint (removes only what those steps wrote)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``transmri`` parser with one sub-parser per command."""
    parser = argparse.ArgumentParser(
        prog="transmri",
        description=(
            "Transfer learning for 3D brain MRI: pretrain an encoder on a large study, "
            "fine-tune it on a small one, and measure honestly whether it helped."
        ),
        epilog="Exit codes: 0 success, 1 runtime failure, 2 usage error or bad input.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"transmri {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    demo = commands.add_parser(
        "demo",
        help="the whole transfer pipeline on SYNTHETIC data, with an HTML report",
        description=(
            "Make a synthetic source cohort (Alzheimer-like vs control, T1-like) and a small, "
            "shifted target cohort (another atrophy pattern, T2-like, another site), pretrain, "
            "fine-tune, compare with training from scratch and linear baselines, and write "
            "report.html. The data are SYNTHETIC (no real subjects)."
        ),
        formatter_class=_Formatter,
    )
    _common(demo)
    demo.add_argument("--out", metavar="DIR", default="transmri-demo", help="run folder")
    demo.add_argument(
        "--quick", action="store_true", help="tiny cohorts, 8 mm, 2 epochs: about a minute"
    )
    demo.add_argument("--source-subjects", type=int, metavar="N", help="source cohort size")
    demo.add_argument("--target-subjects", type=int, metavar="N", help="target cohort size")
    demo.add_argument("--resolution", type=float, metavar="MM", help="voxel size, mm")
    demo.add_argument(
        "--epochs", type=int, metavar="N", help="pretraining epochs (fine-tuning scales with it)"
    )
    demo.add_argument("--seed", type=int, default=0, help="random seed")
    demo.add_argument("--overwrite", action="store_true", help="replace an earlier demo run")
    _restart(demo)
    demo.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bars and one line per compared run (default: on a terminal, not in CI)",
    )

    run = commands.add_parser(
        "run",
        help="run every step of an experiment file",
        description="Run prepare, pretrain, finetune, evaluate, embed, compare and report.",
        formatter_class=_Formatter,
    )
    _experiment_args(run)

    for name, text in _STEP_HELP.items():
        sub = commands.add_parser(name, help=text, description=text, formatter_class=_Formatter)
        _experiment_args(sub)
        if name == "embed":
            sub.add_argument(
                "--model",
                choices=("finetune", "pretrain"),
                default="finetune",
                help="encode with the fine-tuned or the pretrained encoder",
            )
            sub.add_argument(
                "--split",
                dest="splits",
                action="append",
                choices=("train", "val", "test"),
                help="target split(s) to encode (repeatable; default test)",
            )

    report = commands.add_parser(
        "report",
        help="write report.html of a run folder",
        description="Write one self-contained HTML report of a run folder.",
        formatter_class=_Formatter,
    )
    _common(report)
    report.add_argument("run_dir", metavar="RUN_DIR", help="the run folder (holds run.json)")
    report.add_argument("--title", help="page title")
    add_encoder_parser(commands, _Formatter)
    add_preprocess_parser(commands)
    return parser
