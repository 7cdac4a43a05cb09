"""Safe writes shared by every stage: a temp file in the same folder, then a rename.

A reader never sees a half-written file: the bytes go to a hidden temp file
beside the target (unique name, so concurrent writers do not collide), are
flushed and fsynced, and ``os.replace`` moves them over the target in one step.
On any failure the temp file is removed and the target keeps its old content.
The file gets the mode a plain ``open(path, "w")`` would give (``0o666``
less the umask), not the temp file's private ``0o600``, so colleagues can
read a shared report or encoder.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = [
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "file_mode",
]

_UMASK_LOCK = threading.Lock()


def file_mode() -> int:
    """The mode a new file gets from a plain ``open``: ``0o666`` less the umask."""
    with _UMASK_LOCK:  # reading the umask means setting it; keep that step alone
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write`` on a temp file beside ``path``, then rename it to ``path``.

    Args:
        path: destination file; its folder is created if missing.
        write: writes the content into the open binary file it is given.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        OSError: the file cannot be written (read-only folder, disk full), of
            the cause's type and errno, naming ``path`` (not the temp file).
    """
    target = Path(path)
    tmp_name: str | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, file_mode())
        os.replace(tmp_name, target)
    except OSError as exc:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)
        reason = _why_not_writable(target) or str(exc.strerror or exc)
        raise type(exc)(exc.errno, f"{target}: cannot write ({reason})") from exc
    except BaseException:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)
        raise
    return target


def _why_not_writable(target: Path) -> str | None:
    """A plain-words reason for the common path mistakes, or ``None``."""
    if target.is_dir():
        return "it is a folder; give a file path"
    for parent in target.parents:
        if parent.exists():
            return None if parent.is_dir() else f"{parent} is a file, not a folder"
    return None


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""

    def write(handle: IO[bytes]) -> None:
        handle.write(data)

    return atomic_write(path, write)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented JSON with sorted keys (stable bytes) to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")
