"""Encoder files: safetensors + card, checksum, card migration, compatibility and leakage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from transmri.data import PreprocessConfig
from transmri.errors import CheckpointError, ConfigError, DataLeakageError, IntegrityError
from transmri.models import ConvEncoder
from transmri.training.encoder_io import (
    CARD_FORMAT,
    check_compatibility,
    check_encoder_leakage,
    load_encoder,
    migrate_card,
    save_encoder,
)

PRE = PreprocessConfig(target_shape=(16, 16, 16)).to_dict()


def _save(tmp_path: Path, encoder: ConvEncoder | None = None) -> tuple[ConvEncoder, Path]:
    encoder = encoder or ConvEncoder(channels=(4, 8))
    card = save_encoder(
        encoder,
        tmp_path / "run",
        architecture=encoder.config,
        input_shape=(16, 16, 16),
        preprocessing=PRE,
        source="synthetic cohort",
        training_subjects=["sub-002", "sub-001"],
        metrics={"val_loss": 0.1},
    )
    return encoder, card


def test_round_trip_restores_weights_and_card(tmp_path: Path) -> None:
    encoder, card_path = _save(tmp_path)
    assert card_path == tmp_path / "run" / "encoder.json"
    loaded, card = load_encoder(tmp_path / "run")
    for key, value in encoder.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    assert card["format_version"] == CARD_FORMAT
    assert card["training_subjects"] == ["sub-001", "sub-002"]
    assert card["input_shape"] == [16, 16, 16] and card["preprocessing"] == PRE
    assert card["load_report"] == {"missing": [], "unexpected": []}
    assert len(card["sha256"]) == 64


def test_corrupt_weights_raise_integrity_error_naming_file(tmp_path: Path) -> None:
    _save(tmp_path)
    weights = tmp_path / "run" / "encoder.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=r"encoder\.safetensors: sha256 mismatch"):
        load_encoder(tmp_path / "run" / "encoder.json")


def test_v0_card_without_new_fields_still_loads(tmp_path: Path) -> None:
    encoder, card_path = _save(tmp_path)
    card = json.loads(card_path.read_text())
    v0 = {
        "config": card["architecture"],
        "input_shape": card["input_shape"],
        "preprocessing": card["preprocessing"],
        "sha256": card["sha256"],
    }
    card_path.write_text(json.dumps(v0))
    _, upgraded = load_encoder(card_path)
    assert upgraded["format_version"] == CARD_FORMAT
    assert upgraded["architecture"] == encoder.config
    assert upgraded["training_subjects"] is None and upgraded["metrics"] == {}
    with pytest.warns(UserWarning, match="lists no training subjects"):
        check_encoder_leakage(upgraded, ["sub-001"], where="old card")


def test_newer_card_is_refused() -> None:
    with pytest.raises(ConfigError, match="format_version 99 is newer"):
        migrate_card({"format_version": 99, "architecture": {}})


def test_other_architecture_is_a_checkpoint_error(tmp_path: Path) -> None:
    _, card_path = _save(tmp_path)
    card = json.loads(card_path.read_text())
    card["architecture"]["channels"] = [8, 16]
    card_path.write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="weights do not fit the architecture"):
        load_encoder(card_path)


def test_partial_weights_report_missing_keys(tmp_path: Path) -> None:
    _, card_path = _save(tmp_path, ConvEncoder(channels=(4, 8)))
    bigger = ConvEncoder(channels=(4, 8, 8))
    card = json.loads(card_path.read_text())
    card["architecture"] = bigger.config
    card_path.write_text(json.dumps(card))
    with pytest.warns(UserWarning, match="missing keys"):
        _, loaded = load_encoder(card_path)
    assert loaded["load_report"]["missing"] and not loaded["load_report"]["unexpected"]


def test_compatibility_names_each_differing_field() -> None:
    card = {"input_shape": [64, 64, 48], "preprocessing": {**PRE, "target_shape": [64, 64, 48]}}
    other = {**PRE, "scaling": "zscore", "mask": "/elsewhere/mask.nii"}
    with pytest.raises(ConfigError) as info:
        check_compatibility(card, input_shape=(16, 16, 16), preprocessing=other)
    message = str(info.value)
    assert "input_shape: encoder (64, 64, 48), data (16, 16, 16)" in message
    assert "target_shape: encoder (64, 64, 48), data (16, 16, 16)" in message
    assert "scaling: encoder minmax, data zscore" in message
    assert "mask" not in message  # a dataset's own mask file may differ
    check_compatibility(
        {"input_shape": [16, 16, 16], "preprocessing": PRE},
        input_shape=(16, 16, 16),
        preprocessing=PRE,
    )


def test_leakage_names_subjects() -> None:
    card = {"training_subjects": ["a", "b", "c"]}
    with pytest.raises(DataLeakageError, match="share 2 subject\\(s\\): 'a', 'c'"):
        check_encoder_leakage(card, ["c", "a", "z"], where="enc")
    check_encoder_leakage(card, ["z"], where="enc")


def test_interrupted_save_is_named_as_such(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from transmri.training import encoder_io

    _save(tmp_path, ConvEncoder(channels=(4, 8)))
    newer = ConvEncoder(channels=(4, 8))
    with torch.no_grad():
        for p in newer.parameters():
            p.add_(1.0)

    def killed(*args: object, **kwargs: object) -> Path:
        raise KeyboardInterrupt  # the process dies after the weights, before the card

    monkeypatch.setattr(encoder_io, "atomic_write_json", killed)
    with pytest.raises(KeyboardInterrupt):
        _save(tmp_path, newer)
    monkeypatch.undo()
    assert not list((tmp_path / "run").glob(".*.tmp"))
    with pytest.raises(
        IntegrityError,
        match=r"encoder\.safetensors: written by another save than its card .*encoder\.json "
        r"\(save_id \w+ in the weights, \w+ in the card\): an interrupted or concurrent save",
    ):
        load_encoder(tmp_path / "run")
    _save(tmp_path, newer)  # saving again repairs it
    loaded, _ = load_encoder(tmp_path / "run")
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in newer.state_dict().items())


def test_two_savers_do_not_share_a_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import safetensors.torch

    first, second = ConvEncoder(channels=(4, 8)), ConvEncoder(channels=(4, 8))
    real_save_file = safetensors.torch.save_file
    calls: list[str] = []

    def interleaved(tensors: dict, filename: str, metadata: dict | None = None) -> None:
        calls.append(filename)
        real_save_file(tensors, filename, metadata=metadata)
        if len(calls) == 1:  # a second saver runs while the first is about to rename
            _save(tmp_path, second)

    monkeypatch.setattr(safetensors.torch, "save_file", interleaved)
    _save(tmp_path, first)
    monkeypatch.undo()
    assert len(calls) == 2 and calls[0] != calls[1]
    loaded, card = load_encoder(tmp_path / "run")  # the last to finish wins, consistently
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in first.state_dict().items())
    assert len(card["save_id"]) == 16


def test_equal_weights_give_byte_identical_files(tmp_path: Path) -> None:
    # The save_id comes from the content, so re-saving the same weights changes nothing
    # (the transfer benchmark keys its folder on the encoder's sha256).
    torch.manual_seed(0)
    encoder = ConvEncoder(channels=(4, 8))
    _, first = _save(tmp_path / "a", encoder)
    _, second = _save(tmp_path / "b", encoder)
    weights = "encoder.safetensors"
    assert (first.parent / weights).read_bytes() == (second.parent / weights).read_bytes()
    assert json.loads(first.read_text())["sha256"] == json.loads(second.read_text())["sha256"]
