"""Project exceptions.

Every exception subclasses a built-in type, so callers that do not know
transmri can still catch ``ValueError`` or ``FileNotFoundError``. Messages say
what was expected, what was found and where (file, row, column, subject, key).
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataFormatError",
    "DataLeakageError",
    "IntegrityError",
    "NotFittedError",
    "OutputExistsError",
    "TransmriError",
]


class TransmriError(Exception):
    """Base class of every transmri exception."""


class DataFormatError(TransmriError, ValueError):
    """Input data is malformed: a bad NIfTI file, table row, label or shape."""


class DataLeakageError(TransmriError, ValueError):
    """The same subject appears in two sets that must be disjoint."""


class ConfigError(TransmriError, ValueError):
    """A configuration value or experiment-file key is invalid or unknown."""


class NotFittedError(TransmriError, AttributeError):
    """An operation needs learned state that ``fit`` has not produced yet."""


class CheckpointError(TransmriError, ValueError):
    """A checkpoint or saved encoder does not match the model or is unreadable."""


class IntegrityError(TransmriError, ValueError):
    """A stored file's checksum does not match its manifest: truncated or corrupt."""


class OutputExistsError(TransmriError, FileExistsError):
    """An output folder already holds a different run; refused unless overwriting."""
