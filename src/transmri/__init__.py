"""transmri: transfer learning for 3D brain MRI.

Pretrain a 3D convolutional encoder on a large source study, move it to a
small target study, fine-tune it, and measure honestly whether it helped.

The public names below are loaded on first use (PEP 562), so that
``import transmri`` and ``transmri --help`` stay fast: torch and MONAI are
imported only when a name that needs them is touched.

Example:
    >>> import transmri
    >>> transmri.__version__
    '0.1.0'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from transmri._version import __version__
from transmri.errors import (
    CheckpointError,
    ConfigError,
    DataFormatError,
    DataLeakageError,
    IntegrityError,
    NotFittedError,
    OutputExistsError,
)

# public name -> module that defines it
_LAZY: dict[str, str] = {
    # data
    "AugmentConfig": "transmri.data",
    "DataBunch": "transmri.data",
    "MRIDataset": "transmri.data",
    "PreprocessConfig": "transmri.data",
    "ScanTable": "transmri.data",
    "VolumeCache": "transmri.data",
    "balanced_subsample": "transmri.data",
    "check_leakage": "transmri.data",
    "kfold_splits": "transmri.data",
    "load_nifti": "transmri.data",
    "preprocess_scan": "transmri.data",
    "train_val_test_split": "transmri.data",
    # datasets
    "SyntheticCohortConfig": "transmri.datasets",
    "from_bids": "transmri.datasets",
    "get_adni": "transmri.datasets",
    "get_idss": "transmri.datasets",
    "get_ixi": "transmri.datasets",
    "get_ppmi": "transmri.datasets",
    "load_synthetic_cohort": "transmri.datasets",
    "make_synthetic_cohort": "transmri.datasets",
    # models
    "ConvAutoEncoder": "transmri.models",
    "EncoderClassifier": "transmri.models",
    "MultiTaskAutoEncoder": "transmri.models",
    "StridedConvAutoEncoder": "transmri.models",
    "VariationalAutoEncoder": "transmri.models",
    "build_model": "transmri.models",
    # training
    "Learner": "transmri.training",
    "create_autoencoder": "transmri.training",
    "create_classifier": "transmri.training",
    "create_classifier_from_encoder": "transmri.training",
    "create_mixed": "transmri.training",
    "load_encoder": "transmri.training",
    "save_encoder": "transmri.training",
    # evaluation
    "build_report": "transmri.evaluation",
    "classification_metrics": "transmri.evaluation",
    "reconstruction_metrics": "transmri.evaluation",
    # transfer
    "TransferConfig": "transmri.transfer",
    "transfer_curve": "transmri.transfer",
}

__all__ = [
    "AugmentConfig",
    "CheckpointError",
    "ConfigError",
    "ConvAutoEncoder",
    "DataBunch",
    "DataFormatError",
    "DataLeakageError",
    "EncoderClassifier",
    "IntegrityError",
    "Learner",
    "MRIDataset",
    "MultiTaskAutoEncoder",
    "NotFittedError",
    "OutputExistsError",
    "PreprocessConfig",
    "ScanTable",
    "StridedConvAutoEncoder",
    "SyntheticCohortConfig",
    "TransferConfig",
    "VariationalAutoEncoder",
    "VolumeCache",
    "__version__",
    "balanced_subsample",
    "build_model",
    "build_report",
    "check_leakage",
    "classification_metrics",
    "create_autoencoder",
    "create_classifier",
    "create_classifier_from_encoder",
    "create_mixed",
    "from_bids",
    "get_adni",
    "get_idss",
    "get_ixi",
    "get_ppmi",
    "kfold_splits",
    "load_encoder",
    "load_nifti",
    "load_synthetic_cohort",
    "make_synthetic_cohort",
    "preprocess_scan",
    "reconstruction_metrics",
    "save_encoder",
    "train_val_test_split",
    "transfer_curve",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'transmri' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from transmri.data import (
        AugmentConfig,
        DataBunch,
        MRIDataset,
        PreprocessConfig,
        ScanTable,
        VolumeCache,
        balanced_subsample,
        check_leakage,
        kfold_splits,
        load_nifti,
        preprocess_scan,
        train_val_test_split,
    )
    from transmri.datasets import (
        SyntheticCohortConfig,
        from_bids,
        get_adni,
        get_idss,
        get_ixi,
        get_ppmi,
        load_synthetic_cohort,
        make_synthetic_cohort,
    )
    from transmri.evaluation import (
        build_report,
        classification_metrics,
        reconstruction_metrics,
    )
    from transmri.models import (
        ConvAutoEncoder,
        EncoderClassifier,
        MultiTaskAutoEncoder,
        StridedConvAutoEncoder,
        VariationalAutoEncoder,
        build_model,
    )
    from transmri.training import (
        Learner,
        create_autoencoder,
        create_classifier,
        create_classifier_from_encoder,
        create_mixed,
        load_encoder,
        save_encoder,
    )
    from transmri.transfer import TransferConfig, transfer_curve
