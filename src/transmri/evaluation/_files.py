"""Safe writes for everything evaluation produces: a temp file, then a rename.

A reader never sees a half-written file: the bytes go to a hidden temp file in
the destination folder, which ``os.replace`` then moves over the target in one
step. On any failure the temp file is removed and the target is left as it was.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from matplotlib.figure import Figure

__all__ = ["FIGURE_DPI", "atomic_write", "atomic_write_bytes", "atomic_write_text", "save_figure"]

#: Resolution of every saved PNG; a figure of ``w x h`` inches gives ``100 w x 100 h`` pixels.
FIGURE_DPI = 100


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write`` on a temp file beside ``path``, then rename it to ``path``.

    Args:
        path: Destination file; its folder is created if missing.
        write: Writes the content into the open binary file it is given.

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
        os.replace(tmp_name, target)
    except OSError as exc:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)
        raise type(exc)(exc.errno, f"{target}: cannot write ({exc.strerror or exc})") from exc
    except BaseException:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)
        raise
    return target


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temp file and a rename."""

    def write(handle: IO[bytes]) -> None:
        handle.write(data)

    return atomic_write(path, write)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through a temp file and a rename."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def save_figure(figure: Figure, path: str | os.PathLike[str]) -> Path:
    """Save ``figure`` as a PNG at :data:`FIGURE_DPI` through a temp file and a rename."""
    return atomic_write(path, lambda handle: figure.savefig(handle, format="png", dpi=FIGURE_DPI))
