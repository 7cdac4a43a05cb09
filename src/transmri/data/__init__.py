"""From scan files to model-ready batches: table, I/O, preprocessing, cache, splits."""

from transmri.data.table import ScanTable

__all__ = ["ScanTable"]
