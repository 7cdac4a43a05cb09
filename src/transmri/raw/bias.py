"""N4 bias-field correction with ANTsPy (optional raw-scan step)."""

from __future__ import annotations

import numpy as np

__all__ = ["n4_correct"]


def n4_correct(
    volume: np.ndarray, affine: np.ndarray, mask: np.ndarray | None = None
) -> np.ndarray:
    """N4-correct ``volume`` (ANTs' ``n4_bias_field_correction``), same grid, float32.

    Raises:
        ImportError: antspyx is not installed, with the ``pip install`` to run.
    """
    try:
        import ants
        import nibabel as nib
    except ImportError as exc:
        raise ImportError(
            'bias_correct=True needs antspyx: pip install "transmri[register]"'
        ) from exc
    image = ants.from_nibabel_nifti(nib.Nifti1Image(np.asarray(volume, np.float32), affine))
    ants_mask = None
    if mask is not None:
        ants_mask = ants.from_nibabel_nifti(nib.Nifti1Image(mask.astype(np.float32), affine))
    out = ants.n4_bias_field_correction(image, mask=ants_mask)
    return np.asarray(out.numpy(), dtype=np.float32)
