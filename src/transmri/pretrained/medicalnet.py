"""MedicalNet's pretrained 3D ResNets (Chen et al. 2019, "Med3D") as transmri encoders.

MedicalNet (Tencent, MIT licence) published ResNet-10/18/34/50 weights
pretrained for segmentation on "3DSeg-8" (8 public CT and MRI segmentation
datasets; ``resnet_<depth>.pth``) and later on 23 datasets
(``resnet_<depth>_23dataset.pth``). Nothing is downloaded: the user gives
the file. :func:`import_medicalnet` reads it with
``torch.load(weights_only=True)``, strips ``DataParallel``'s ``module.``
prefixes, drops the segmentation head (``conv_seg``), copies the rest
strictly into :class:`~transmri.models.MedicalNetEncoder` and writes
``encoder.safetensors`` + ``encoder.json`` (a card with provenance).

Example:
    >>> import_medicalnet("resnet_18_23dataset.pth", 18, "encoders/medicalnet18")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

from transmri._files import sha256_file
from transmri._validation import check_choice
from transmri.models.medicalnet import (
    MEDICALNET_BLOCKS,
    MEDICALNET_DEPTHS,
    MEDICALNET_SHORTCUTS,
    MedicalNetEncoder,
)
from transmri.pretrained._checkpoint import match_state, read_state_dict, strip_prefix
from transmri.training.encoder_io import save_encoder

__all__ = ["MEDICALNET_CITATION", "import_medicalnet", "infer_medicalnet_architecture"]

MEDICALNET_CITATION = (
    "Chen S, Ma K, Zheng Y. Med3D: Transfer Learning for 3D Medical Image Analysis. "
    "arXiv:1904.00625, 2019."
)
_HEAD = "conv_seg."
#: MedicalNet's fine-tuning default (``setting.py``: input_D 56, input_H 448, input_W 448).
_DEFAULT_SHAPE = (56, 448, 448)
_LAYER = re.compile(r"^layer([1-4])\.(\d+)\.")


def infer_medicalnet_architecture(state: Mapping[str, Tensor]) -> tuple[int, str] | None:
    """``(depth, shortcut)`` of MedicalNet's ResNet whose key layout ``state`` has, or ``None``.

    Counts the blocks of ``layer1``-``layer4``, looks for bottleneck
    ``conv3`` weights and for ``downsample`` convolutions (shortcut ``"B"``).
    """
    blocks: dict[int, set[int]] = {i: set() for i in range(1, 5)}
    for key in state:
        found = _LAYER.match(key)
        if found:
            blocks[int(found.group(1))].add(int(found.group(2)))
    counts = tuple(len(blocks[i]) for i in range(1, 5))
    kind = "bottleneck" if any(".conv3." in k for k in state) else "basic"
    shortcut = "B" if any(".downsample.0.weight" in k for k in state) else "A"
    for depth, layout in MEDICALNET_BLOCKS.items():
        if layout == (kind, counts):
            return depth, shortcut
    return None


def _hint(depth: int, shortcut: str) -> Any:
    def hint(state: Mapping[str, Tensor]) -> str:
        found = infer_medicalnet_architecture(state)
        if found is None:
            if not any(_LAYER.match(k) for k in state):
                return (
                    "The file does not look like a MedicalNet ResNet (no layer1-layer4 "
                    f"keys; its first keys: {sorted(state)[:4]})"
                )
            return "Its layer1-layer4 block counts match no MedicalNet depth (10, 18, 34, 50)"
        other_depth, other_shortcut = found
        if (other_depth, other_shortcut) == (depth, shortcut):
            return ""
        text = f"The file's keys and shapes are those of ResNet-{other_depth}"
        text += f" with shortcut {other_shortcut}: import it as medicalnet-resnet{other_depth}"
        if other_shortcut != MEDICALNET_SHORTCUTS[other_depth]:
            text += f" (shortcut={other_shortcut!r})"
        return text

    return hint


def _trained_on(path: Path) -> str:
    if "23dataset" in path.name:
        return (
            "23 public medical segmentation datasets (CT and MRI; MedicalNet's "
            "*_23dataset.pth release, going by the file name)"
        )
    return (
        "3DSeg-8: 8 public CT and MRI segmentation datasets (Chen et al. 2019), or the "
        "later 23-dataset release (its files are named *_23dataset.pth); the file name "
        "does not say which"
    )


def _provenance(
    path: Path, digest: str, depth: int, shortcut: str, dropped: list[str], filled: list[str]
) -> dict[str, Any]:
    return {
        "zoo_name": f"medicalnet-resnet{depth}",
        "source_file": str(path),
        "source_sha256": digest,
        "source_code": "Tencent/MedicalNet models/resnet.py",
        "network": (
            f"3D ResNet-{depth}, shortcut {shortcut}, layer3/layer4 dilated (2, 4) at "
            "stride 1; segmentation head (conv_seg) dropped"
        ),
        "trained_on": _trained_on(path),
        "task": "voxel-wise segmentation (one head per dataset during pretraining)",
        "licence": "MIT (MedicalNet repository)",
        "citation": MEDICALNET_CITATION,
        "expected_input": {
            "orientation": "none fixed (MedicalNet used the arrays as stored in NIfTI)",
            "voxel_size": "none fixed: each volume was resized to the training shape",
            "voxel_size_mm": None,
            "shape": (
                "any; the code is ceil(D/8) x ceil(H/8) x ceil(W/8); MedicalNet's "
                "fine-tuning default was 56x448x448"
            ),
            "intensity": (
                "z-score by the mean and standard deviation of the nonzero voxels "
                "(MedicalNet then filled the zero background with N(0, 1) noise); "
                "transmri's scaling='zscore' is the closest"
            ),
            "channels": 1,
        },
        "layer_groups": ["stem", "layer1", "layer2", "layer3", "layer4"],
        "dropped_keys": dropped,
        "filled_keys": filled,
        "training_subjects_note": "unknown to transmri (public challenge data, not IXI)",
    }


def import_medicalnet(
    path: str | os.PathLike[str],
    depth: int,
    out: str | os.PathLike[str],
    *,
    shortcut: str | None = None,
) -> Path:
    """Convert a MedicalNet checkpoint into a transmri encoder in ``out``.

    Args:
        path: the ``.pth`` file (``{"state_dict": ...}`` or a bare state
            dict; ``module.`` prefixes are stripped, ``conv_seg.*`` dropped).
        depth: 10, 18, 34 or 50.
        out: folder for ``encoder.safetensors`` and ``encoder.json`` (created).
        shortcut: ``"A"`` or ``"B"``; default: the one MedicalNet's published
            checkpoint of that depth uses (B for 10 and 50, A for 18 and 34).

    Returns:
        The card's path.

    Raises:
        FileNotFoundError: no such file.
        DataFormatError: not a PyTorch checkpoint, truncated, or not a state dict.
        CheckpointError: a pickle that would run code (refused, nothing
            loaded), or weights that do not fit (the first missing and
            unexpected keys and mismatching shapes are named, and the depth
            the file looks like is suggested). Nothing is written on error.
    """
    depth = check_choice("depth", depth, MEDICALNET_DEPTHS)
    source = Path(path)
    state = strip_prefix(read_state_dict(source, what="MedicalNet checkpoint"))
    dropped = sorted(k for k in state if k.startswith(_HEAD))
    state = {k: v for k, v in state.items() if not k.startswith(_HEAD)}
    encoder = MedicalNetEncoder(depth=depth, shortcut=shortcut)
    filled = match_state(
        encoder,
        state,
        where=str(source),
        hint=_hint(depth, encoder.shortcut),
        what=f"MedicalNet ResNet-{depth} (shortcut {encoder.shortcut})",
    )
    digest = sha256_file(source)
    return save_encoder(
        encoder,
        Path(out),
        architecture=encoder.config,
        model_config=None,
        input_shape=_DEFAULT_SHAPE,
        preprocessing={},
        source=f"MedicalNet ResNet-{depth} (Med3D): segmentation on {_trained_on(source)}",
        training_subjects=(),
        provenance=_provenance(source, digest, depth, encoder.shortcut, dropped, filled),
    )
