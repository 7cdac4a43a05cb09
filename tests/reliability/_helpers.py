"""Helpers shared by the reliability tests: tiny cohorts written fast, subprocess runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"


def write_volume(path: Path, data: np.ndarray, *, affine: np.ndarray | None = None) -> Path:
    """Write ``data`` as NIfTI (uncompressed unless the name ends in .gz)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(data), np.eye(4) if affine is None else affine), path)
    return path


def tiny_cohort(
    root: Path,
    n: int,
    *,
    shape: tuple[int, int, int] = (8, 8, 8),
    seed: int = 0,
    labels: Sequence[str] = ("CN", "AD"),
    scans_per_subject: int = 1,
) -> Path:
    """Write ``n`` small random scans (a blob of signal) and a CSV; return the CSV path.

    The CSV has columns path (relative), subject, label. Every scan differs,
    so every scan has its own cache key.
    """
    rng = np.random.default_rng(seed)
    rows = []
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij"))
    brain = (grid**2).sum(0) < 0.9
    for i in range(n):
        vol = (brain * (50 + 10 * rng.random(shape))).astype(np.float32)
        write_volume(root / "scans" / f"s{i:05d}.nii", vol)
        subject = f"sub-{i // scans_per_subject:05d}"
        rows.append(
            {
                "path": f"scans/s{i:05d}.nii",
                "subject": subject,
                "label": labels[(i // scans_per_subject) % len(labels)],
            }
        )
    csv = root / "scans.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    return csv


def child_env() -> dict[str, str]:
    """Environment of a child Python: one thread, the package importable."""
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    env["MKL_NUM_THREADS"] = "1"
    # src/ for the package, the project root for tests.reliability's job modules
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), str(ROOT), env.get("PYTHONPATH", "")])
    return env


def start(script: str, *args: str | os.PathLike[str]) -> subprocess.Popen[str]:
    """Start ``python -c script args...`` in its own process group."""
    return subprocess.Popen(
        [sys.executable, "-c", script, *[str(a) for a in args]],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
        start_new_session=True,
    )


def run(script: str, *args: str | os.PathLike[str], timeout: float = 240) -> str:
    """Run ``python -c script args...``; return its stdout, or fail with its stderr."""
    proc = start(script, *args)
    out, err = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"child failed ({proc.returncode}):\n{err[-3000:]}")
    return out


def kill_when(
    proc: subprocess.Popen[str], ready: Callable[[], bool], *, timeout: float = 180
) -> None:
    """SIGKILL ``proc`` (and its process group) as soon as ``ready()`` is true.

    Fails (with the child's stderr) if the child ends, or ``timeout`` passes, first.
    """
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            _, err = proc.communicate()
            raise AssertionError(f"child ended before it could be killed:\n{err[-3000:]}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise AssertionError("timed out waiting for the moment to kill the child")
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def temp_files(root: Path) -> list[Path]:
    """Leftover temporary files (``.*.tmp``) anywhere under ``root``."""
    return sorted(p for p in root.rglob("*") if p.name.endswith(".tmp"))
