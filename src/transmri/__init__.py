"""transmri: transfer learning for 3D brain MRI.

Pretrain a 3D convolutional encoder on a large source study, move it to a
small target study, fine-tune it, and measure honestly whether it helped.
"""

from transmri._version import __version__
from transmri.data import ScanTable
from transmri.errors import (
    CheckpointError,
    ConfigError,
    DataFormatError,
    DataLeakageError,
    IntegrityError,
    NotFittedError,
    OutputExistsError,
)

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataFormatError",
    "DataLeakageError",
    "IntegrityError",
    "NotFittedError",
    "OutputExistsError",
    "ScanTable",
    "__version__",
]
