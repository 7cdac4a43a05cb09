"""Tests of transmri._atomic: the shared safe write."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from transmri._atomic import atomic_write_json, atomic_write_text, file_mode
from transmri.training._files import atomic_save_tensors


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_writes_respect_the_umask(tmp_path: Path, umask_022: None) -> None:
    # Issue 17, item 3: mkstemp's private 0600 made shared reports unreadable.
    assert file_mode() == 0o644
    atomic_write_text(tmp_path / "report.html", "<html></html>")
    atomic_write_json(tmp_path / "metrics_test.json", {"auc": 0.5})
    atomic_save_tensors({"w": torch.zeros(2)}, tmp_path / "encoder.safetensors", save_id="x")
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    for name in ("report.html", "metrics_test.json", "encoder.safetensors"):
        assert _mode(tmp_path / name) == _mode(plain) == 0o644, name


def test_a_private_umask_stays_private(tmp_path: Path) -> None:
    previous = os.umask(0o077)
    try:
        atomic_write_text(tmp_path / "secret.txt", "x")
    finally:
        os.umask(previous)
    assert _mode(tmp_path / "secret.txt") == 0o600
