"""When the command shows progress: asked for, or a terminal outside CI."""

from __future__ import annotations

import os
import sys


def show_progress(flag: bool | None) -> bool:
    """``--progress`` / ``--no-progress`` as given, else on when stderr is a terminal outside CI."""
    if flag is not None:
        return bool(flag)
    return sys.stderr.isatty() and not os.environ.get("CI")
