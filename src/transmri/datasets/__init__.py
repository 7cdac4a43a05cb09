"""Dataset adapters: turn a folder layout or a study download into a ScanTable.

Each adapter returns a :class:`transmri.data.ScanTable` and records what it
could not use (scans without a label, labels without a scan, ...) in
``table.skipped``, also reported through ``logging`` and a warning with
counts. :func:`make_synthetic_cohort` writes a SYNTHETIC cohort from the
MNI152 template for demos and tests.
"""

from transmri.datasets.adni import ADNI_LABEL_MAP, get_adni
from transmri.datasets.bids import from_bids
from transmri.datasets.idss import IDSS_EVALUATION, IDSS_FOLDS, get_idss
from transmri.datasets.ixi import IXI_SITES, get_ixi
from transmri.datasets.ppmi import PPMI_LABEL_MAP, get_ppmi, ppmi_mri_type
from transmri.datasets.synthetic import (
    SYNTHETIC_LABELS,
    SYNTHETIC_REGIONS,
    SyntheticCohortConfig,
    load_synthetic_cohort,
    make_synthetic_cohort,
    region_mask,
)

__all__ = [
    "ADNI_LABEL_MAP",
    "IDSS_EVALUATION",
    "IDSS_FOLDS",
    "IXI_SITES",
    "PPMI_LABEL_MAP",
    "SYNTHETIC_LABELS",
    "SYNTHETIC_REGIONS",
    "SyntheticCohortConfig",
    "from_bids",
    "get_adni",
    "get_idss",
    "get_ixi",
    "get_ppmi",
    "load_synthetic_cohort",
    "make_synthetic_cohort",
    "ppmi_mri_type",
    "region_mask",
]
