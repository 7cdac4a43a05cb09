"""No code runs from a data file: nothing in ``src/`` unpickles, and planted pickles are refused.

A pickle can run any code when it is loaded. transmri stores volumes as
``.npy`` (read with ``allow_pickle=False``), weights as safetensors and
checkpoints as ``torch.save`` state dicts read with ``weights_only=True``.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import pickle
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
from transmri.errors import CheckpointError
from transmri.models import ConvEncoder, EncoderClassifier
from transmri.training import Learner, load_encoder
from transmri.training.checkpoint import load_checkpoint

SRC = Path(__file__).resolve().parents[2] / "src" / "transmri"

# (module, function) calls that unpickle; allowed only with the keyword shown.
_SAFE_ONLY_WITH = {
    ("torch", "load"): ("weights_only", True),
    ("np", "load"): ("allow_pickle", False),
    ("numpy", "load"): ("allow_pickle", False),
}
_FORBIDDEN = {
    ("pickle", "load"),
    ("pickle", "loads"),
    ("pickle", "Unpickler"),
    ("joblib", "load"),
    ("dill", "load"),
    ("dill", "loads"),
    ("cloudpickle", "load"),
    ("cloudpickle", "loads"),
    ("pd", "read_pickle"),
    ("pandas", "read_pickle"),
    ("yaml", "load"),  # yaml.safe_load is the safe one
    ("yaml", "unsafe_load"),
    ("marshal", "loads"),
}


def _calls(tree: ast.AST) -> list[tuple[str, str, ast.Call]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                out.append((func.value.id, func.attr, node))
            elif isinstance(func, ast.Name) and func.id in {"eval", "exec"}:
                out.append(("builtins", func.id, node))
    return out


def _keyword_is(call: ast.Call, name: str, value: object) -> bool:
    return any(
        k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is value
        for k in call.keywords
    )


def test_no_unsafe_deserialisation_in_src() -> None:
    offenders: list[str] = []
    checked = 0
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for module, name, call in _calls(tree):
            where = f"{path.relative_to(SRC.parent)}:{call.lineno}: {module}.{name}"
            if (module, name) in _FORBIDDEN or module == "builtins":
                offenders.append(where)
            elif (module, name) in _SAFE_ONLY_WITH:
                checked += 1
                keyword, value = _SAFE_ONLY_WITH[(module, name)]
                if not _keyword_is(call, keyword, value):
                    offenders.append(f"{where} without {keyword}={value}")
        for node in ast.walk(tree):  # `from pickle import load` would dodge the call check
            if isinstance(node, ast.ImportFrom) and node.module in {"pickle", "dill", "marshal"}:
                offenders.append(
                    f"{path.relative_to(SRC.parent)}:{node.lineno}: from {node.module}"
                )
    assert offenders == []
    assert checked >= 2  # the scan does see the torch.load / np.load calls that exist


def test_the_scan_catches_what_it_should() -> None:
    bad = "import torch, pickle\ntorch.load(f)\npickle.loads(b)\nnp.load(f, allow_pickle=True)\n"
    found = [
        (m, n)
        for m, n, c in _calls(ast.parse(bad))
        if (m, n) in _FORBIDDEN
        or ((m, n) in _SAFE_ONLY_WITH and not _keyword_is(c, *_SAFE_ONLY_WITH[(m, n)]))
    ]
    assert found == [("torch", "load"), ("pickle", "loads"), ("np", "load")]


class _Evil:
    """Unpickling this creates the marker file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Callable[..., object], tuple[str, str]]:
        return (open, (self.marker, "w"))


def _evil_bytes(marker: Path, wrap: Callable[[object], object] = lambda x: x) -> bytes:
    buffer = io.BytesIO()
    torch.save(wrap(_Evil(marker)), buffer)
    data = buffer.getvalue()
    # sanity: this payload really does run code when loaded unsafely
    probe = marker.with_name("probe")
    pickle.loads(pickle.dumps(_Evil(probe)))
    assert probe.exists()
    probe.unlink()
    return data


def test_pickle_posing_as_checkpoint_refused(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    ckpt = tmp_path / "run" / "checkpoints" / "last.pt"
    ckpt.parent.mkdir(parents=True)
    payload = _evil_bytes(marker, lambda evil: {"format_version": 1, "model": evil})
    ckpt.write_bytes(payload)
    # the attacker also forges a matching checksum: the checksum is no defence here
    ckpt.with_name("last.pt.sha256").write_text(hashlib.sha256(payload).hexdigest())
    with pytest.raises(
        CheckpointError, match=re.escape(str(ckpt)) + r": cannot read the checkpoint"
    ):
        load_checkpoint(ckpt)
    assert not marker.exists()


def test_pickle_posing_as_encoder_refused(
    tiny_data: Callable[..., DataBunch], tmp_path: Path
) -> None:
    data = tiny_data()
    torch.manual_seed(0)
    model = EncoderClassifier(ConvEncoder(channels=(4, 8, 8)), data.num_classes)
    learner = Learner(data, model, tmp_path / "run", model_type="classifier", progress=False)
    learner.fit(1, 1e-3)
    learner.save_encoder()
    marker = tmp_path / "PWNED"
    weights = tmp_path / "run" / "encoder.safetensors"
    payload = _evil_bytes(marker, lambda evil: {"encoder.0.weight": evil})
    weights.write_bytes(payload)
    card_file = tmp_path / "run" / "encoder.json"
    card = json.loads(card_file.read_text())
    card["sha256"] = hashlib.sha256(payload).hexdigest()  # forged checksum
    card_file.write_text(json.dumps(card))
    with pytest.raises(
        CheckpointError, match=re.escape(str(weights)) + r": unreadable safetensors"
    ):
        load_encoder(tmp_path / "run")
    with pytest.raises(CheckpointError, match=re.escape(str(weights))):
        Learner.from_pretrained(data, tmp_path / "run", tmp_path / "target", progress=False)
    assert not marker.exists()


def test_pickle_posing_as_cache_entry_refused_and_rebuilt(tmp_path: Path) -> None:
    config = PreprocessConfig(target_shape=(8, 8, 8))
    csv = tiny_cohort(tmp_path / "cohort", 1)
    scan = ScanTable.from_csv(csv, label_col=None).paths[0]
    cache = VolumeCache(tmp_path / "cache", config)
    key = cache.key(scan)
    npy = cache.entry_path(key)
    npy.parent.mkdir(parents=True)
    marker = tmp_path / "PWNED"
    evil = np.empty((), dtype=object)
    evil[()] = _Evil(marker)
    buffer = io.BytesIO()
    np.save(buffer, evil, allow_pickle=True)
    payload = buffer.getvalue()
    npy.write_bytes(payload)
    npy.with_suffix(".json").write_text(  # a sidecar that matches the planted file exactly
        json.dumps(
            {
                "format_version": 1,
                "key": key,
                "shape": [],
                "dtype": "object",
                "nbytes": len(payload),
                "sha256": hashlib.sha256(payload).hexdigest(),
                "source": scan,
                "mask": None,
            }
        )
    )
    for verify in (False, True):
        volume = VolumeCache(tmp_path / "cache", config).get(scan, verify=verify)
        np.testing.assert_allclose(
            volume.astype(np.float32), preprocess_scan(scan, None, config), atol=2e-3
        )
    assert npy.read_bytes() != payload  # replaced by the real volume
    assert not marker.exists()


def test_pickle_refusal_does_not_advise_weights_only_false(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    ckpt = tmp_path / "last.pt"
    payload = _evil_bytes(marker, lambda evil: {"format_version": 1, "model": evil})
    ckpt.write_bytes(payload)
    ckpt.with_name("last.pt.sha256").write_text(hashlib.sha256(payload).hexdigest())
    with pytest.raises(CheckpointError, match=r"transmri never unpickles") as info:
        load_checkpoint(ckpt)
    assert "weights_only" not in str(info.value) and not marker.exists()
