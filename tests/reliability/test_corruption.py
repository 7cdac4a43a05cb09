"""Corruption: truncated or bit-flipped cache entries, checkpoints and encoder files.

Each file carries a sha256 in its sidecar (cache ``.json``, checkpoint
``.pt.sha256``, encoder card ``encoder.json``). A damaged cache entry is
rebuilt from its source scan; a damaged weights file is refused with an
error naming it, never loaded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.reliability._helpers import tiny_cohort
from transmri.data import DataBunch
from transmri.data.cache import VolumeCache
from transmri.data.preprocess import PreprocessConfig, preprocess_scan
from transmri.data.table import ScanTable
from transmri.errors import DataFormatError, IntegrityError
from transmri.models import ConvEncoder, EncoderClassifier
from transmri.training import Learner, load_encoder
from transmri.training.checkpoint import load_checkpoint, save_checkpoint

CONFIG = PreprocessConfig(target_shape=(8, 8, 8))


def _flip_bit(path: Path, *, at: int = -3) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x10
    path.write_bytes(bytes(data))


def _truncate(path: Path, *, keep: float = 0.6) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


DAMAGE: dict[str, Callable[[Path], None]] = {"truncated": _truncate, "bit-flipped": _flip_bit}


# ----------------------------------------------------------------- cache
@pytest.fixture
def filled(tmp_path: Path) -> tuple[VolumeCache, ScanTable]:
    csv = tiny_cohort(tmp_path / "cohort", 4)
    table = ScanTable.from_csv(csv, label_col=None)
    cache = VolumeCache(tmp_path / "cache", CONFIG)
    assert cache.fill(table, progress=False) == 4
    return cache, table


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_cache_entry_found_by_verify_and_rebuilt(
    filled: tuple[VolumeCache, ScanTable], damage: str
) -> None:
    cache, table = filled
    path = table.paths[1]
    key = cache.key(path)
    npy = cache.entry_path(key)
    good = npy.read_bytes()
    DAMAGE[damage](npy)
    assert npy.read_bytes() != good
    fresh = VolumeCache(cache.root, CONFIG)  # a new process: nothing remembered
    assert fresh.verify() == [key]  # found, named by its key...
    assert npy.read_bytes() == good  # ...and rebuilt from the source scan, byte for byte
    assert fresh.verify() == []


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_get_with_verify_never_serves_a_damaged_entry(
    filled: tuple[VolumeCache, ScanTable], damage: str
) -> None:
    cache, table = filled
    path = table.paths[2]
    npy = cache.entry_path(cache.key(path))
    DAMAGE[damage](npy)
    volume = VolumeCache(cache.root, CONFIG).get(path, verify=True)
    np.testing.assert_allclose(
        volume.astype(np.float32), preprocess_scan(path, None, CONFIG), atol=2e-3
    )


def test_truncated_entry_is_caught_by_the_cheap_check(
    filled: tuple[VolumeCache, ScanTable],
) -> None:
    # Without verify=True, get() still compares the file size with the sidecar.
    cache, table = filled
    path = table.paths[0]
    _truncate(cache.entry_path(cache.key(path)))
    volume = VolumeCache(cache.root, CONFIG).get_tensor(path)
    np.testing.assert_allclose(volume[0].numpy(), preprocess_scan(path, None, CONFIG), atol=2e-3)


def test_truncated_sidecar_means_rebuild(filled: tuple[VolumeCache, ScanTable]) -> None:
    cache, table = filled
    path = table.paths[3]
    key = cache.key(path)
    sidecar = cache.entry_path(key).with_suffix(".json")
    _truncate(sidecar)
    fresh = VolumeCache(cache.root, CONFIG)
    assert (path, None) not in fresh  # an unreadable sidecar is no entry
    fresh.get(path)
    assert json.loads(sidecar.read_text())["key"] == key
    assert fresh.verify() == []


@pytest.mark.parametrize("field", ["sha256", "key", "nbytes"])
def test_bit_flipped_sidecar_field_found(filled: tuple[VolumeCache, ScanTable], field: str) -> None:
    cache, table = filled
    path = table.paths[3]
    key = cache.key(path)
    sidecar = cache.entry_path(key).with_suffix(".json")
    text = sidecar.read_text()
    meta = json.loads(text)
    value = str(meta[field])
    flipped = value[:-1] + chr(ord(value[-1]) ^ 0x01)  # one bit of the last character
    sidecar.write_text(text.replace(value, flipped, 1))
    assert VolumeCache(cache.root, CONFIG).verify() == [key]
    assert json.loads(sidecar.read_text())[field] == meta[field]  # rebuilt


# ------------------------------------------------------------ checkpoints
def _checkpoint(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = EncoderClassifier(ConvEncoder(channels=(4, 8, 8)), 2)
    return save_checkpoint(tmp_path / "ckpt" / "last.pt", {"model": model.state_dict(), "epoch": 3})


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_checkpoint_refused_naming_it(tmp_path: Path, damage: str) -> None:
    path = _checkpoint(tmp_path)
    assert load_checkpoint(path)["epoch"] == 3
    DAMAGE[damage](path)
    with pytest.raises(IntegrityError, match=re.escape(str(path)) + r": sha256 mismatch"):
        load_checkpoint(path)


def test_checkpoint_without_checksum_refused(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path)
    path.with_name("last.pt.sha256").unlink()
    with pytest.raises(IntegrityError, match=re.escape(str(path)) + r": no checksum file"):
        load_checkpoint(path)


# --------------------------------------------------------------- encoders
@pytest.fixture
def trained(tiny_data: Callable[..., DataBunch], tmp_path: Path) -> Learner:
    data = tiny_data()
    torch.manual_seed(0)
    model = EncoderClassifier(ConvEncoder(channels=(4, 8, 8)), data.num_classes)
    learner = Learner(
        data, model, tmp_path / "run", model_type="classifier", batch_size=4, progress=False
    )
    learner.fit(1, 1e-3)
    learner.save_encoder()
    learner.save("model")
    return learner


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_encoder_weights_refused(trained: Learner, damage: str) -> None:
    weights = trained.path / "encoder.safetensors"
    encoder, _ = load_encoder(trained.path)
    assert isinstance(encoder, torch.nn.Module)
    DAMAGE[damage](weights)
    pattern = re.escape(str(weights)) + r": sha256 mismatch \(recorded in .*encoder\.json"
    with pytest.raises(IntegrityError, match=pattern):
        load_encoder(trained.path)
    with pytest.raises(IntegrityError, match=pattern):
        Learner.from_pretrained(
            trained.data, trained.path, trained.path.parent / "target", progress=False
        )
    assert not (trained.path.parent / "target").exists()  # nothing written on refusal


def test_damaged_encoder_card_refused(trained: Learner) -> None:
    card = trained.path / "encoder.json"
    _truncate(card)
    with pytest.raises(DataFormatError, match=re.escape(str(card)) + r": expected a readable"):
        load_encoder(trained.path)


def test_encoder_card_without_checksum_is_not_silent(trained: Learner) -> None:
    card_file = trained.path / "encoder.json"
    card = json.loads(card_file.read_text())
    del card["sha256"]
    card_file.write_text(json.dumps(card))
    with pytest.warns(UserWarning, match=re.escape(str(card_file)) + r": no sha256 recorded"):
        load_encoder(trained.path)


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_saved_model_refused(trained: Learner, damage: str) -> None:
    weights = trained.path / "models" / "model.safetensors"
    before = {k: v.clone() for k, v in trained.model.state_dict().items()}
    DAMAGE[damage](weights)
    with pytest.raises(IntegrityError, match=re.escape(str(weights)) + r": sha256 mismatch"):
        trained.load("model")
    for key, value in trained.model.state_dict().items():
        assert torch.equal(value, before[key]), key  # the model was not touched
