"""Warnings as the ``transmri`` command shows them: one line each, no source path.

Python prints a warning as two lines naming the file and line that raised it,
which means nothing to a user of the command. Inside :func:`cli_warnings`
every warning is one line on stderr (``transmri: warning: ...``), and
scikit-learn's own warnings (convergence, small classes in an internal
cross-validation), which transmri's methods handle, are not shown.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

__all__ = ["cli_warnings", "show_warning"]


def show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """Print ``message`` as one line: ``transmri: warning: <message>``."""
    text = " ".join(str(message).split())
    print(f"transmri: warning: {text}", file=file or sys.stderr, flush=True)


@contextmanager
def cli_warnings() -> Iterator[None]:
    """Within the block: one-line warnings, scikit-learn's hidden; restored after."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"sklearn(\..*)?$")
        warnings.showwarning = show_warning
        yield
