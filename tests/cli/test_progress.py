"""Tests of transmri.cli._progress: progress on a terminal, off in CI, as asked otherwise."""

from __future__ import annotations

import io

import pytest

from transmri.cli._parser import build_parser
from transmri.cli._progress import show_progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_an_explicit_flag_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stderr", _Terminal())
    assert show_progress(False) is False
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert show_progress(True) is True


def test_default_is_on_at_a_terminal_and_off_in_ci_or_a_pipe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr("sys.stderr", _Terminal())
    assert show_progress(None) is True
    monkeypatch.setenv("CI", "true")
    assert show_progress(None) is False
    monkeypatch.delenv("CI")
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert show_progress(None) is False


def test_every_command_takes_progress_and_no_progress() -> None:
    parser = build_parser()
    assert parser.parse_args(["run", "e.yaml"]).progress is None
    assert parser.parse_args(["compare", "e.yaml", "--no-progress"]).progress is False
    assert parser.parse_args(["demo", "--progress"]).progress is True
    assert parser.parse_args(["preprocess", "t.csv", "--out", "d"]).progress is None
