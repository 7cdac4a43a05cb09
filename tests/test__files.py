"""Tests of transmri._files: the shared safe write, JSON read and hashes."""

from __future__ import annotations

import io
import os
import re
import stat
import tokenize
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from transmri._files import (
    atomic_path,
    atomic_save_tensors,
    atomic_write_json,
    atomic_write_text,
    file_mode,
)


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


def test_atomic_path_moves_the_file_into_place_with_the_umask_mode(
    tmp_path: Path, umask_022: None
) -> None:
    target = tmp_path / "sub" / "scan.nii.gz"
    with atomic_path(target, suffix=".tmp.nii.gz") as tmp:
        assert tmp.parent == target.parent and tmp.name.endswith(".tmp.nii.gz")
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert _mode(target) == 0o644
    assert sorted(p.name for p in target.parent.iterdir()) == ["scan.nii.gz"]


def test_atomic_path_keeps_the_old_file_and_no_temp_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "table.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="library failed"), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("library failed")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]


def test_atomic_path_names_the_target_when_it_cannot_write(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    target = tmp_path / "file" / "out.csv"
    with (
        pytest.raises(OSError, match=r"file/out\.csv: cannot write \(.*file is a file"),
        atomic_path(target),
    ):
        pass


_ROOT = Path(__file__).resolve().parents[1]
# A rename onto a final name, as code (strings and comments are skipped).
_RENAME = re.compile(
    r"\bos\.(replace|rename|renames)\b|\bshutil\.move\b|\.rename\((?!columns=|index=)"
)


def _code_only(path: Path) -> str:
    """The file's source with strings and comments blanked out."""
    kept = []
    for token in tokenize.generate_tokens(io.StringIO(path.read_text("utf-8")).readline):
        if token.type not in (tokenize.STRING, tokenize.COMMENT):
            kept.append(token.string)
    return " ".join(kept).replace(" . ", ".").replace(" (", "(")


def test_renames_happen_only_in_files_module() -> None:
    # Issue 18, item 5: hand-written temp-file-and-rename copies bypassed the
    # one safe write (some without fsync or clean-up); every rename goes through _files.
    offenders = []
    for folder in ("src", "benchmarks", "examples"):
        for path in sorted((_ROOT / folder).rglob("*.py")):
            if path == _ROOT / "src" / "transmri" / "_files.py":
                continue
            found = _RENAME.findall(_code_only(path))
            if found:
                offenders.append(f"{path.relative_to(_ROOT)}: {found}")
    assert offenders == []
    assert _RENAME.search(_code_only(_ROOT / "src" / "transmri" / "_files.py"))


def test_remove_entries_removes_only_what_is_named(tmp_path: Path) -> None:
    from transmri._files import remove_entries

    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "a.png").write_text("x")
    (tmp_path / "metrics_test.json").write_text("{}")
    (tmp_path / "metrics_val.json").write_text("{}")
    (tmp_path / "mine.txt").write_text("the user's")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    (tmp_path / "linked").symlink_to(outside, target_is_directory=True)
    remove_entries(tmp_path, ("figures", "metrics_*.json", "linked", "absent"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt", "outside"]
    assert (outside / "keep.txt").read_text() == "keep"  # a link is removed, not followed
