"""Raw-scan steps, once per scan: brain extraction, N4, affine registration to MNI152, QC."""

from transmri.raw.pipeline import RawScanConfig, preprocess_table

__all__ = ["RawScanConfig", "preprocess_table"]
