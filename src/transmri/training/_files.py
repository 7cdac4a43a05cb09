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
from pathlib import Path
from typing import Any

from transmri.errors import DataFormatError, IntegrityError

__all__ = [
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "read_json",
    "sha256_file",
    "verify_sha256",
]


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``.

    Raises:
        OSError: the file cannot be written (disk full, read-only folder), of
            the cause's type and errno, naming ``path``. The temporary file is
            removed and ``path`` keeps its previous content.
    """
    target = Path(path)
    tmp: str | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise type(exc)(exc.errno, f"{target}: cannot write ({exc.strerror or exc})") from exc
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


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
