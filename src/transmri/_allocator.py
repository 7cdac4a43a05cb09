"""Keep glibc from handing large buffers back to the OS after every training step.

glibc's ``malloc`` serves blocks above a threshold with ``mmap`` and returns
them with ``munmap`` when freed; it also trims the top of the heap once more
than ``M_TRIM_THRESHOLD`` bytes are free. A 3D convolution allocates and frees
activations of tens of megabytes every step, so with the defaults each step
maps fresh pages and pays a minor page fault per 4 KiB page (about 105,000 a
step measured for the CAE at 64x64x48, batch 8; see ``benchmarks/allocator.py``
and ``docs/BENCHMARKS.md``). Raising both thresholds once at start-up lets the
freed memory be reused instead.

The setting is process-wide, so it is applied only where transmri owns the
process's main work (the ``transmri`` command and :meth:`Learner.fit`), only on
glibc, at most once, and never when the user has already chosen a policy with
the ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` environment
variables. ``TRANSMRI_MALLOC=default`` turns it off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "keep_freed_memory"]

# mallopt parameter numbers from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

# mallopt takes a C int, so 2 GiB - 1 is the largest threshold it can set (the
# MALLOC_*_ environment variables take more). A 32 MiB threshold is not enough:
# the CAE's first activation at 64x64x48, batch 8, is about 100 MiB.
MMAP_THRESHOLD = 2**31 - 1
TRIM_THRESHOLD = 2**31 - 1

_state: dict[str, bool] = {}


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds once; say whether they are now raised.

    Returns:
        ``True`` when this call (or an earlier one) raised the thresholds,
        ``False`` when they were left alone: not glibc, the user set the
        ``MALLOC_*`` variables, ``TRANSMRI_MALLOC=default``, or ``mallopt``
        refused a value.
    """
    if "applied" in _state:
        return _state["applied"]
    _state["applied"] = _apply()
    return _state["applied"]


def _apply() -> bool:
    if os.environ.get("TRANSMRI_MALLOC", "").lower() == "default":
        return False
    if any(k in os.environ for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok_mmap = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    ok_trim = mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    return ok_mmap and ok_trim
