"""Safe writes and checksums for everything the training stage puts on disk.

Every file is written to a temporary name in the same folder and then moved
into place with :func:`os.replace`, so a crash never leaves a half-written file
under the final name.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from transmri._atomic import atomic_write_bytes, atomic_write_json, atomic_write_text, file_mode
from transmri.errors import CheckpointError, DataFormatError, IntegrityError

__all__ = [
    "atomic_save_tensors",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "read_json",
    "sha256_file",
    "tensors_id",
    "verify_sha256",
    "verify_weights",
]


def read_json(path: str | os.PathLike[str], *, what: str = "JSON file") -> dict[str, Any]:
    """Read a JSON object from ``path``; a malformed file raises ``DataFormatError``."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: {what} not found")
    try:
        obj = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"{p}: expected a readable {what}, got invalid JSON ({exc})") from exc
    if not isinstance(obj, dict):
        raise DataFormatError(f"{p}: expected a JSON object, got {type(obj).__name__}")
    return obj


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Return the hex sha256 of the file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: str | os.PathLike[str], expected: str, *, source: str) -> None:
    """Raise ``IntegrityError`` naming ``path`` when its sha256 is not ``expected``.

    Args:
        path: the file to check.
        expected: the recorded hex digest.
        source: where ``expected`` was recorded (named in the message).
    """
    found = sha256_file(path)
    if found != expected:
        raise IntegrityError(
            f"{path}: sha256 mismatch (recorded in {source}: {expected[:16]}..., "
            f"file: {found[:16]}...); the file is truncated or corrupt"
        )


def tensors_id(tensors: Mapping[str, Tensor]) -> str:
    """An id of the tensors' content (names, dtypes, shapes, bytes): 16 hex digits.

    Stored in a weights file's header and in its card, it tells a card and
    weights from two different saves apart from a corrupt file. Being a
    function of the content (not random), equal weights still give
    byte-identical files.
    """
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def atomic_save_tensors(
    tensors: Mapping[str, Tensor], path: str | os.PathLike[str], *, save_id: str
) -> str:
    """Write a safetensors file through a unique temporary name; return its sha256.

    The digest is taken from the temporary file, so it describes exactly the
    bytes this call wrote even if another process replaces ``path`` at the
    same moment; two concurrent savers never share a temporary file. The
    header holds one metadata entry, ``"transmri"`` (JSON: ``save_id`` and
    ``version``): safetensors writes several entries in a random order, which
    would make equal weights give files with different digests.

    Raises:
        OSError: the file cannot be written; ``path`` keeps its previous content.
    """
    from safetensors.torch import save_file

    from transmri._version import __version__

    metadata = {"transmri": json.dumps({"save_id": save_id, "version": __version__})}
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(dict(tensors), tmp, metadata=metadata)
        digest = sha256_file(tmp)
        os.chmod(tmp, file_mode())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return digest


def _save_id_of(weights: Path) -> str | None:
    """The ``save_id`` (:func:`tensors_id`) in a safetensors header, or None (absent/unreadable)."""
    try:
        from safetensors import safe_open

        with safe_open(str(weights), framework="pt") as fh:
            metadata = fh.metadata() or {}
        value = json.loads(metadata.get("transmri", "{}")).get("save_id")
    except Exception:  # safetensors raises its own error types on a damaged header
        return None
    return value if isinstance(value, str) else None


def verify_weights(weights: Path, card: Mapping[str, Any], *, card_file: Path) -> None:
    """Check a weights file against the ``sha256`` (and ``save_id``) of its card.

    Raises:
        CheckpointError: the card records no ``sha256``.
        IntegrityError: the digest differs. The message says whether the
            weights come from another save than the card (an interrupted or
            concurrent save left them out of step: save again) or the file is
            truncated or corrupt.
    """
    expected = card.get("sha256")
    if not isinstance(expected, str) or not expected:
        raise CheckpointError(
            f"{card_file}: expected a 'sha256' entry (the digest of {weights.name}), "
            f"found {'none' if expected is None else repr(expected)}; the card is incomplete "
            "or was not written by transmri - save the weights again"
        )
    try:
        verify_sha256(weights, expected, source=str(card_file))
    except IntegrityError:
        recorded, found = card.get("save_id"), _save_id_of(weights)
        if isinstance(recorded, str) and found is not None and found != recorded:
            raise IntegrityError(
                f"{weights}: written by another save than its card {card_file} "
                f"(save_id {found} in the weights, {recorded} in the card): an interrupted "
                "or concurrent save left the two out of step; save the weights again"
            ) from None
        raise
