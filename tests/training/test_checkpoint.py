"""Checkpoints: round trip, integrity checks before unpickling, architecture checks."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from transmri.errors import CheckpointError, IntegrityError
from transmri.training.checkpoint import (
    check_model_config,
    get_rng_state,
    load_checkpoint,
    save_checkpoint,
    set_rng_state,
)


def _write(tmp_path: Path) -> Path:
    model = nn.Linear(3, 2)
    return save_checkpoint(tmp_path / "last.pt", {"model": model.state_dict(), "epoch": 3})


def test_round_trip_and_sidecar(tmp_path: Path) -> None:
    path = _write(tmp_path)
    assert (tmp_path / "last.pt.sha256").is_file()
    state = load_checkpoint(path)
    assert state["epoch"] == 3 and set(state["model"]) == {"weight", "bias"}
    assert not list(tmp_path.glob("*.tmp"))


def test_truncated_file_is_refused_naming_it(tmp_path: Path) -> None:
    path = _write(tmp_path)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(IntegrityError, match=r"last\.pt: sha256 mismatch.*truncated or corrupt"):
        load_checkpoint(path)


def test_bit_flip_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=r"last\.pt"):
        load_checkpoint(path)


def test_missing_sidecar_and_missing_file(tmp_path: Path) -> None:
    path = _write(tmp_path)
    (tmp_path / "last.pt.sha256").unlink()
    with pytest.raises(IntegrityError, match=r"no checksum file last\.pt\.sha256"):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError, match=r"nope\.pt: checkpoint not found"):
        load_checkpoint(tmp_path / "nope.pt")


def test_architecture_mismatch_names_fields(tmp_path: Path) -> None:
    stored = json.dumps({"name": "cae", "channels": [8, 16]})
    with pytest.raises(
        CheckpointError, match=r"another architecture; channels: checkpoint \[8, 16\]"
    ):
        check_model_config(tmp_path / "x.pt", stored, {"name": "cae", "channels": [4, 8]})
    check_model_config(tmp_path / "x.pt", stored, {"name": "cae", "channels": [8, 16]})


def test_rng_state_round_trip(tmp_path: Path) -> None:
    state = get_rng_state()
    save_checkpoint(tmp_path / "r.pt", {"rng": state})
    expected = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(load_checkpoint(tmp_path / "r.pt")["rng"])
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], again[0])
    assert np.array_equal(expected[1], again[1]) and expected[2] == again[2]
