"""Tests of the ``transmri`` command, run in a subprocess as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
COMMANDS = ("demo", "run", "prepare", "stats", "pretrain", "finetune", "evaluate", "embed",
            "compare", "report", "encoder")  # fmt: skip

#: Shrinks examples/synthetic.yaml to seconds: tiny cohorts at 8 mm, one epoch each.
TINY = [
    "data.source.options.n_subjects=24",
    "data.source.options.voxel_size=8",
    "data.target.options.n_subjects=24",
    "data.target.options.voxel_size=8",
    "data.preprocessing.target_shape=[24, 28, 24]",
    "pretrain.epochs=1",
    "finetune.epochs_frozen=1",
    "finetune.epochs_unfrozen=1",
    "evaluation.methods=[finetune, ridge]",
    "evaluation.n_boot=50",
]


def transmri(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    return subprocess.run(
        [sys.executable, "-m", "transmri", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=600,
    )


def tiny_args() -> list[str]:
    return [a for s in TINY for a in ("--set", s)]


def files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_help_is_fast_and_lists_every_command() -> None:
    start = time.monotonic()
    done = transmri("--help")
    assert done.returncode == 0
    assert time.monotonic() - start < 10
    for command in COMMANDS:
        assert command in done.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    done = transmri(command, "--help")
    assert done.returncode == 0, done.stderr
    assert "usage: transmri " + command in done.stdout


def test_version() -> None:
    from transmri import __version__

    done = transmri("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"transmri {__version__}"


def test_usage_error_exits_2() -> None:
    assert transmri().returncode == 2
    assert transmri("run").returncode == 2
    assert transmri("demo", "--epochs", "many").returncode == 2


def _experiment(tmp_path: Path, change: dict | None = None, text: str | None = None) -> Path:
    data = {
        "name": "bad",
        "data": {
            "source": {"adapter": "synthetic"},
            "target": {"adapter": "synthetic", "options": {"condition": "second"}},
        },
    }
    for key, value in (change or {}).items():
        node = data
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    path = tmp_path / "experiment.yaml"
    path.write_text(text if text is not None else yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing_file", r"nope.yaml: experiment file not found"),
        ("malformed", r"experiment.yaml: malformed YAML at line"),
        ("unknown_key", r"experiment.yaml: unknown key 'model.hed'; expected one of"),
        ("bad_value", r"experiment.yaml: finetune.lr: expected a finite number > 0, got -1"),
        ("missing_data", r"data.target.path: .*missing.csv does not exist"),
        ("bad_override", r"unknown key 'pretrain.epoch'"),
        ("other_run", r"holds experiment 'bad' with another config; pass --overwrite"),
        ("report_missing", r"run folder not found"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    tmp_path: Path, case: str, expected: str
) -> None:
    import re

    args: list[str]
    if case == "missing_file":
        args = ["run", str(tmp_path / "nope.yaml")]
    elif case == "malformed":
        args = ["run", str(_experiment(tmp_path, text="name: [oops\ndata: {"))]
    elif case == "unknown_key":
        args = ["run", str(_experiment(tmp_path, {"model.hed": "gap"}))]
    elif case == "bad_value":
        args = ["pretrain", str(_experiment(tmp_path, {"finetune.lr": -1}))]
    elif case == "missing_data":
        target = {"adapter": "csv", "path": "missing.csv"}
        args = ["run", str(_experiment(tmp_path, {"data.target": target}))]
    elif case == "bad_override":
        args = ["run", str(_experiment(tmp_path)), "--set", "pretrain.epoch=1"]
    elif case == "other_run":
        run = tmp_path / "runs" / "bad"
        run.mkdir(parents=True)
        (run / "run.json").write_text(
            json.dumps({"kind": "experiment", "name": "bad", "steps": {"prepare": {}}})
        )
        args = ["stats", str(_experiment(tmp_path))]
    else:
        args = ["report", str(tmp_path / "no-run")]
    before = files(tmp_path)
    done = transmri(*args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("transmri: error: ")
    assert re.search(expected, lines[0]), lines[0]
    assert "Traceback" not in done.stderr
    assert files(tmp_path) == before


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    done = transmri("--debug", "run", str(_experiment(tmp_path, {"model.hed": 1})))
    assert done.returncode == 2 and "Traceback" in done.stderr


def test_run_then_steps_then_report(tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = transmri("run", str(EXAMPLES / "synthetic.yaml"), "--out", str(out), *tiny_args())
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"Report: {out / 'report.html'}" in done.stdout
    for name in ("run.json", "experiment.resolved.yaml", "data_stats.csv", "history.csv",
                 "predictions_test.csv", "metrics_test.json", "embeddings_test.csv",
                 "embeddings_test.npy", "comparison.csv", "report.html",
                 "pretrain/encoder.json", "finetune/models/model.safetensors"):  # fmt: skip
        assert (out / name).is_file(), name
    run = json.loads((out / "run.json").read_text())
    assert run["kind"] == "experiment" and run["synthetic"] is True
    assert set(run["steps"]) >= {"prepare", "pretrain", "finetune", "evaluate", "compare"}
    resolved = yaml.safe_load((out / "experiment.resolved.yaml").read_text())
    assert resolved["pretrain"]["epochs"] == 1 and resolved["output"] == str(out)
    import pandas as pd

    comparison = pd.read_csv(out / "comparison.csv")
    assert set(comparison["method"]) == {"finetune", "ridge"}
    assert comparison["n_test"].nunique() == 1  # every method on the same test scans

    # A single step reuses the same run folder (same config) in a new process.
    embed = ("embed", str(EXAMPLES / "synthetic.yaml"), "--out", str(out), *tiny_args(),
             "--model", "pretrain", "--split", "val")  # fmt: skip
    done = transmri(*embed)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "embeddings_pretrained-val.npy").is_file()
    # ... but a changed config is another run: refused.
    done = transmri("evaluate", str(EXAMPLES / "synthetic.yaml"), "--out", str(out))
    assert done.returncode == 2 and "another config" in done.stderr

    (out / "report.html").unlink()
    done = transmri("report", str(out))
    assert done.returncode == 0 and (out / "report.html").is_file()
    page = (out / "report.html").read_text()
    assert 'id="comparison"' in page and "Synthetic data." in page


def test_warnings_are_one_line_and_sklearns_are_hidden(
    tmp_path: Path, make_cohort: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    import warnings

    import pandas as pd

    from transmri.cli._warnings import cli_warnings

    with cli_warnings():
        warnings.warn_explicit("least populated class", UserWarning, "_split.py", 1,
                               module="sklearn.model_selection._split")  # fmt: skip
        warnings.warn("get_adni (x.csv): kept 3 scans,\n skipped 1", UserWarning, stacklevel=1)
    shown = capsys.readouterr().err
    assert shown == "transmri: warning: get_adni (x.csv): kept 3 scans, skipped 1\n"
    # through the command: an adapter-level warning, then a refusal before any volume is read
    csv = make_cohort(16, (16, 16, 16))
    frame = pd.read_csv(csv)
    frame.loc[2, "label"] = "MCI"
    frame["subject"] = "t-" + frame["subject"]
    frame.to_csv(csv, index=False)
    target = {"adapter": "csv", "path": str(csv), "labels": ["AD", "CN"], "drop_other_labels": True}
    source = {"adapter": "csv", "path": str(make_cohort(8, (16, 16, 16), folder="src", seed=1))}
    experiment = _experiment(
        tmp_path, {"data.source": source, "data.target": target, "evaluation.n_train": [100]}
    )
    done = transmri("prepare", str(experiment), cwd=tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert lines[0].startswith("transmri: warning: data.target: dropped 1 of 16 scans"), lines
    assert lines[1].startswith("transmri: error: n_train: 100 scans asked for"), lines
    assert len(lines) == 2 and ".py:" not in done.stderr
