"""Input checks shared by every stage, so that messages read alike.

Each function raises a built-in-derived project error whose message names the
argument (or key), what was expected and what was found.
"""

from __future__ import annotations

import math
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

from transmri.errors import ConfigError

__all__ = [
    "check_choice",
    "check_config_keys",
    "check_existing_dir",
    "check_existing_file",
    "check_fraction",
    "check_positive_float",
    "check_positive_int",
    "check_shape3d",
    "number_pair",
]

T = TypeVar("T")


def check_positive_int(name: str, value: object, *, minimum: int = 1) -> int:
    """Return ``value`` as an int if it is an integer ``>= minimum``.

    Example:
        >>> check_positive_int("epochs", 3)
        3
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise ConfigError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def check_positive_float(name: str, value: object, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a finite float that is > 0 (or >= 0 with ``allow_zero``)."""
    bound = ">= 0" if allow_zero else "> 0"
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{name}: expected a finite number {bound}, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{name}: expected a finite number {bound}, got {value!r}")
    return float(value)


def check_fraction(name: str, value: object, *, inclusive: bool = False) -> float:
    """Return ``value`` if it lies in (0, 1) (or [0, 1] with ``inclusive``)."""
    interval = "[0, 1]" if inclusive else "(0, 1)"
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{name}: expected a number in {interval}, got {value!r}")
    ok = 0 <= value <= 1 if inclusive else 0 < value < 1
    if not ok:
        raise ConfigError(f"{name}: expected a number in {interval}, got {value!r}")
    return float(value)


def check_choice(name: str, value: T, choices: Collection[T]) -> T:
    """Return ``value`` if it is one of ``choices``.

    Example:
        >>> check_choice("scaling", "minmax", ("minmax", "zscore"))
        'minmax'
    """
    if value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ConfigError(f"{name}: expected one of {options}, got {value!r}")
    return value


def check_shape3d(name: str, value: object, *, minimum: int = 1) -> tuple[int, int, int]:
    """Return ``value`` as a tuple of three positive ints."""
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 3:
        raise ConfigError(f"{name}: expected three sizes (D, H, W), got {value!r}")
    return tuple(  # type: ignore[return-value]
        check_positive_int(f"{name}[{i}]", v, minimum=minimum) for i, v in enumerate(value)
    )


def check_existing_file(path: str | os.PathLike[str], *, what: str = "file") -> Path:
    """Return ``path`` as a Path if it is an existing regular file."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: {what} not found")
    if p.is_dir():
        raise IsADirectoryError(f"{p}: expected a {what}, found a directory")
    return p


def check_existing_dir(path: str | os.PathLike[str], *, what: str = "folder") -> Path:
    """Return ``path`` as a Path if it is an existing directory."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: {what} not found")
    if not p.is_dir():
        raise NotADirectoryError(f"{p}: expected a {what}, found a file")
    return p


def check_config_keys(what: str, data: object, config_class: type) -> dict[str, Any]:
    """Return ``data`` as a dict if it is a mapping whose keys are fields of ``config_class``.

    Used by every config's ``from_dict``, so an unknown key reads the same
    everywhere: ``"preprocessing: unknown key(s) ['scalng']; expected some of [...]"``.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{what}: expected a mapping, got {type(data).__name__}")
    known = [f.name for f in fields(config_class)]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"{what}: unknown key(s) {unknown}; expected some of {known}")
    return dict(data)


def number_pair(value: object) -> tuple[float, float] | None:
    """``value`` as two finite floats if it is a 2-sequence of real numbers, else None.

    Example:
        >>> number_pair([1, 2.5])
        (1.0, 2.5)
    """
    if not isinstance(value, tuple | list) or len(value) != 2:
        return None
    out: list[float] = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            return None
        out.append(float(v))
    return (out[0], out[1])
