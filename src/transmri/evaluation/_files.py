"""Safe writes for everything evaluation produces: a temp file, then a rename.

A reader never sees a half-written file: the bytes go to a hidden temp file in
the destination folder, which ``os.replace`` then moves over the target in one
step. On any failure the temp file is removed and the target is left as it was.
"""

from __future__ import annotations

import os
from pathlib import Path

from matplotlib.figure import Figure

from transmri._atomic import atomic_write, atomic_write_bytes, atomic_write_text

__all__ = ["FIGURE_DPI", "atomic_write", "atomic_write_bytes", "atomic_write_text", "save_figure"]

#: Resolution of every saved PNG; a figure of ``w x h`` inches gives ``100 w x 100 h`` pixels.
FIGURE_DPI = 100


def save_figure(figure: Figure, path: str | os.PathLike[str]) -> Path:
    """Save ``figure`` as a PNG at :data:`FIGURE_DPI` through a temp file and a rename."""
    return atomic_write(path, lambda handle: figure.savefig(handle, format="png", dpi=FIGURE_DPI))
