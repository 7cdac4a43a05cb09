"""The one home of safe writes, JSON reads and content hashes, shared by every stage.

A reader never sees a half-written file: the bytes go to a hidden temp file
beside the target (unique name, so concurrent writers do not collide), are
flushed and fsynced, and ``os.replace`` moves them over the target in one step.
On any failure the temp file is removed and the target keeps its old content.
The file gets the mode a plain ``open(path, "w")`` would give (``0o666``
less the umask), not the temp file's private ``0o600``, so colleagues can
read a shared report or encoder.

For libraries that want a file name (nibabel, safetensors, pandas),
:func:`atomic_path` yields a temp path in the target's folder and moves it
into place on success. :func:`replace_path` is the one rename of the package
(a test checks that ``os.replace`` and friends appear in this file only).

This module imports no torch, matplotlib or safetensors at the top (the
functions that need them import them), so every stage, ``transmri --help``
included, can use it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from transmri.errors import CheckpointError, DataFormatError, IntegrityError

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from torch import Tensor

__all__ = [
    "FIGURE_DPI",
    "atomic_path",
    "atomic_save_tensors",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "file_mode",
    "read_json",
    "replace_path",
    "save_figure",
    "sha256_file",
    "tensors_id",
    "verify_sha256",
    "verify_weights",
]

#: Resolution of every saved PNG; a figure of ``w x h`` inches gives ``100 w x 100 h`` pixels.
FIGURE_DPI = 100

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
        raise _write_error(target, exc) from exc
    except BaseException:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)
        raise
    return target


def _write_error(target: Path, exc: OSError) -> OSError:
    """``exc`` retold about ``target`` (not the temp file), of the same type and errno."""
    reason = _why_not_writable(target) or str(exc.strerror or exc)
    return type(exc)(exc.errno, f"{target}: cannot write ({reason})")


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


@contextmanager
def atomic_path(path: str | os.PathLike[str], *, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temp path beside ``path`` for a library to write; move it over ``path`` on success.

    The file written there is fsynced, given :func:`file_mode` and renamed over
    ``path``; if the block raises, the temp file is removed and ``path`` keeps
    its old content.

    Args:
        path: destination file; its folder is created if missing.
        suffix: end of the temp file's name, for libraries that read the
            format from it (``".tmp.nii.gz"`` for nibabel).

    Raises:
        OSError: the file cannot be written, naming ``path``.

    Example:
        >>> with atomic_path(folder / "scan.nii.gz", suffix=".tmp.nii.gz") as tmp:  # doctest: +SKIP
        ...     nib.save(image, tmp)
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
        os.close(fd)
    except OSError as exc:
        raise _write_error(target, exc) from exc
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _write_error(target, exc) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def replace_path(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Move ``source`` (a file or a folder staged beside ``target``) onto ``target`` in one step.

    The package's only rename: a staged result (a converted scan, a filled
    cache entry folder) is published with it. Same rules as :func:`os.replace`:
    both on one file system; a non-empty folder ``target`` is not replaced.

    Raises:
        OSError: as :func:`os.replace` does (the caller decides whether a
            concurrent writer that finished first makes it harmless).
    """
    os.replace(source, target)
    return Path(target)


def save_figure(figure: Figure, path: str | os.PathLike[str], *, dpi: int = FIGURE_DPI) -> Path:
    """Save ``figure`` as a PNG (``dpi`` dots per inch) through a temp file and a rename."""
    return atomic_write(path, lambda handle: figure.savefig(handle, format="png", dpi=dpi))


def remove_entries(root: Path, entries: Iterable[str]) -> None:
    """Remove each entry of ``root`` named in ``entries`` (a name, or a glob with ``*``).

    Folders go with their contents; a symlink is removed, not followed. Only
    the entries named are touched: the caller lists what transmri wrote.
    """
    for entry in entries:
        for target in root.glob(entry) if "*" in entry else [root / entry]:
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()


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
    import torch

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
    with atomic_path(path) as tmp:
        save_file(dict(tensors), str(tmp), metadata=metadata)
        digest = sha256_file(tmp)
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
