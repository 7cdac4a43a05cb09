"""From scan files to model-ready batches: table, I/O, preprocessing, cache, splits.

The stages, in data-flow order: :class:`ScanTable` (one row per scan) ->
(:func:`convert_dicom_series` for a DICOM series folder) ->
:func:`load_nifti` / :func:`preprocess_scan` -> :class:`VolumeCache` ->
:func:`train_val_test_split` / :func:`kfold_splits` -> :class:`MRIDataset`
(+ :func:`build_augmentation` on the training split) -> :class:`DataBunch`.
"""

from transmri.data.augment import (
    AUGMENT_PRESETS,
    Augmentation,
    AugmentConfig,
    build_augmentation,
)
from transmri.data.cache import VolumeCache, check_content_leakage
from transmri.data.databunch import DataBunch
from transmri.data.dataset import MRIDataset, infer_target_classes
from transmri.data.dicom import (
    DicomConversion,
    DicomSeries,
    convert_dicom_series,
    read_dicom_series,
)
from transmri.data.io import load_mask, load_nifti, read_grid
from transmri.data.preprocess import PreprocessConfig, preprocess_scan
from transmri.data.split import (
    SplitIndices,
    balanced_subsample,
    check_leakage,
    kfold_splits,
    train_val_test_split,
)
from transmri.data.table import ScanTable

__all__ = [
    "AUGMENT_PRESETS",
    "AugmentConfig",
    "Augmentation",
    "DataBunch",
    "DicomConversion",
    "DicomSeries",
    "MRIDataset",
    "PreprocessConfig",
    "ScanTable",
    "SplitIndices",
    "VolumeCache",
    "balanced_subsample",
    "build_augmentation",
    "check_content_leakage",
    "check_leakage",
    "convert_dicom_series",
    "infer_target_classes",
    "kfold_splits",
    "load_mask",
    "load_nifti",
    "preprocess_scan",
    "read_dicom_series",
    "read_grid",
    "train_val_test_split",
]
