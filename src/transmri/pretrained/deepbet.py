"""deepbet's brain-extraction networks as transmri encoders, and brain masks from them.

deepbet (Fisch et al. 2024, MIT licence) ships two TorchScript archives,
``data/models/model.pt`` (the brain mask network) and ``bbox_model.pt`` (a
coarse network that finds the brain's box), trained on 7,837 T1w scans from
191 OpenNeuro datasets. :func:`import_deepbet` reads one of them from the
installed ``deepbet`` distribution (its runtime is never imported), checks
its sha256 against the value pinned here, loads it with ``torch.jit.load``
(the only place in transmri: a TorchScript archive runs code it stores) and
copies the weights into :class:`~transmri.models.deepbet.DeepbetNet`. It
writes the encoder half as ``encoder.safetensors`` + ``encoder.json`` (a
card with provenance) and the whole network as ``network.safetensors``.
Afterwards only those safetensors files are read.

Example:
    >>> card = import_deepbet("encoders/deepbet")  # doctest: +SKIP
    >>> mask = brain_mask(volume, affine)  # doctest: +SKIP
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from safetensors.torch import load_file
from torch import Tensor

from transmri._files import atomic_save_tensors, read_json, sha256_file, tensors_id
from transmri._validation import check_choice
from transmri.errors import CheckpointError, IntegrityError
from transmri.models.deepbet import DeepbetNet
from transmri.training.encoder_io import save_encoder

__all__ = [
    "DEEPBET_SHA256",
    "brain_mask",
    "deepbet_cache_dir",
    "deepbet_source_file",
    "import_deepbet",
    "load_deepbet_network",
]

Which = Literal["model", "bbox"]

#: sha256 of the archives in the deepbet 1.0.2 wheel; any other file is refused.
DEEPBET_SHA256: dict[str, str] = {
    "model": "de8ee7c69654d0dd3935dc4a5d84571d8ecf4637a6bfc01df399c4c2bc86e0fd",
    "bbox": "39a7b2b5f799faa1391ea97bfcdc0b9299f20d84f2316a4ff8918dc4685e40aa",
}
_FILES = {"model": "data/models/model.pt", "bbox": "data/models/bbox_model.pt"}
_ENCODER_PARTS = ("init", "down0", "down1", "down2", "down3")
NETWORK_FILE = "network.safetensors"
_INSTALL = 'pip install "transmri[deepbet]"'
_LAYER_GROUPS = ["init", "down0", "down1", "down2", "down3"]


def _provenance(which: str, source_file: Path, digest: str) -> dict[str, Any]:
    return {
        "zoo_name": f"deepbet-{which}",
        "source_file": str(source_file),
        "source_sha256": digest,
        "source_package": "deepbet 1.0.2 (PyPI)",
        "network": "brain mask" if which == "model" else "brain bounding box (128^3 input)",
        "trained_on": "7,837 T1w scans from 191 OpenNeuro datasets",
        "task": "brain extraction (2-class voxel segmentation)",
        "licence": "MIT",
        "citation": (
            "Fisch L, et al. deepbet: Fast brain extraction of "
            "T1-weighted MRI using Convolutional Neural Networks. Computers in Biology "
            "and Medicine, 2024."
        ),
        "expected_input": {
            "orientation": "RAS (nibabel as_closest_canonical)",
            "voxel_size": (
                "any: deepbet resizes the brain's box (nearest-exact) to 256^3 "
                "(128^3 for bbox), whatever the spacing"
            ),
            "shape": "multiples of 32 for the whole network; >= 33 per axis for the encoder",
            "intensity": (
                "clip to the 0.5-99.5 % quantiles (of a 128^3 nearest-exact resize), "
                "scale to [0, 1], standardise, then 0.226 * x + 0.449"
            ),
        },
        "layer_groups": list(_LAYER_GROUPS),
        "training_subjects_note": "unknown to transmri (OpenNeuro subjects, not IXI)",
    }


def deepbet_source_file(which: Which = "model") -> Path:
    """The installed deepbet archive for ``which``, located without importing deepbet.

    Raises:
        ImportError: deepbet is not installed (names the extra to install).
        FileNotFoundError: the distribution lacks the archive.
    """
    check_choice("which", which, tuple(_FILES))
    from importlib import metadata

    try:
        dist = metadata.distribution("deepbet")
    except metadata.PackageNotFoundError as exc:
        raise ImportError(
            f"deepbet is not installed; its weights are needed for the deepbet encoder: {_INSTALL}"
        ) from exc
    wanted = _FILES[which]
    for entry in dist.files or ():
        if str(entry).replace("\\", "/") == wanted:
            return Path(str(dist.locate_file(entry)))
    raise FileNotFoundError(f"deepbet {dist.version}: no {wanted} in the installed distribution")


def _check_source(path: Path, which: str) -> str:
    digest = sha256_file(path)
    if digest != DEEPBET_SHA256[which]:
        raise IntegrityError(
            f"{path}: sha256 {digest} is not the pinned deepbet '{which}' archive "
            f"({DEEPBET_SHA256[which]}); refusing to load it (torch.jit.load runs code "
            f"stored in the file). Install deepbet 1.0.2: {_INSTALL}"
        )
    return digest


def _state_from_torchscript(path: Path) -> dict[str, Tensor]:
    with warnings.catch_warnings():  # torch 2.9+ deprecates jit.load; the archive is TorchScript
        warnings.filterwarnings("ignore", message=".*torch.jit.load.*", category=DeprecationWarning)
        archive = torch.jit.load(str(path), map_location="cpu")
    return {
        (f"encoder.{k}" if k.split(".", 1)[0] in _ENCODER_PARTS else k): v.detach().clone()
        for k, v in archive.state_dict().items()
    }


def copy_strict(net: torch.nn.Module, state: Mapping[str, Tensor], *, where: str) -> None:
    """Load ``state`` into ``net``, requiring every key and shape to match.

    Raises:
        CheckpointError: listing missing and unexpected keys and mismatching shapes.
    """
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: file {tuple(state[k].shape)}, model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        raise CheckpointError(
            f"{where}: weights do not fit {type(net).__name__}: missing keys {missing[:8]}, "
            f"unexpected keys {unexpected[:8]}, shape mismatches {shapes[:8]}"
        )
    net.load_state_dict(dict(state), strict=True)


def import_deepbet(
    out_dir: str | os.PathLike[str], which: Which = "model", *, source: str | None = None
) -> Path:
    """Convert deepbet's ``which`` archive into a transmri encoder in ``out_dir``.

    Args:
        out_dir: folder for ``encoder.safetensors``, ``encoder.json`` and
            ``network.safetensors`` (created if missing).
        which: ``"model"`` (the brain mask network) or ``"bbox"``.
        source: the archive to read (default: the installed deepbet's); it
            must have the pinned sha256.

    Returns:
        The card's path.

    Raises:
        ImportError: deepbet is not installed and no ``source`` is given.
        IntegrityError: the archive's sha256 is not the pinned one (nothing is
            loaded or written).
        CheckpointError: its tensors do not fit the re-implementation.
    """
    check_choice("which", which, tuple(_FILES))
    path = Path(source) if source is not None else deepbet_source_file(which)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: deepbet archive not found")
    digest = _check_source(path, which)
    net = DeepbetNet()
    copy_strict(net, _state_from_torchscript(path), where=str(path))
    out = Path(out_dir)
    tensors = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    network_sha = atomic_save_tensors(tensors, out / NETWORK_FILE, save_id=tensors_id(tensors))
    provenance = _provenance(which, path, digest)
    provenance["network_file"] = NETWORK_FILE
    provenance["network_sha256"] = network_sha
    shape = (256, 256, 256) if which == "model" else (128, 128, 128)
    return save_encoder(
        net.encoder,
        out,
        architecture=net.encoder.config,
        model_config={"name": "deepbet_network", "which": which},
        input_shape=shape,
        preprocessing={},
        source=f"deepbet '{which}' network: 7,837 T1w scans from 191 OpenNeuro datasets",
        training_subjects=(),
        provenance=provenance,
    )


def deepbet_cache_dir(which: Which = "model") -> Path:
    """Where converted deepbet weights are kept: ``$TRANSMRI_CACHE`` or ``~/.cache/transmri``."""
    check_choice("which", which, tuple(_FILES))
    root = os.environ.get("TRANSMRI_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "transmri"
    )
    return Path(root) / "encoders" / f"deepbet-{which}-{DEEPBET_SHA256[which][:12]}"


def _cached_card(which: Which) -> Path:
    folder = deepbet_cache_dir(which)
    card = folder / "encoder.json"
    if not (card.is_file() and (folder / NETWORK_FILE).is_file()):
        card = import_deepbet(folder, which)
    return card


def load_deepbet_network(which: Which = "model") -> DeepbetNet:
    """deepbet's whole network with its weights, in eval mode.

    Converts the installed archive once into :func:`deepbet_cache_dir`; later
    calls read only the cached safetensors, checked against the sha256 in
    the card.

    Raises:
        ImportError: deepbet is not installed (and nothing is cached).
        IntegrityError: the cached network file is corrupt.
    """
    card_file = _cached_card(which)
    prov = read_json(card_file, what="encoder card").get("provenance") or {}
    if prov.get("source_sha256") != DEEPBET_SHA256[which]:
        raise IntegrityError(
            f"{card_file}: converted from another archive ({prov.get('source_sha256')}); "
            f"expected deepbet '{which}' {DEEPBET_SHA256[which]}"
        )
    weights = card_file.parent / str(prov.get("network_file", NETWORK_FILE))
    found = sha256_file(weights)
    if found != prov.get("network_sha256"):
        raise IntegrityError(
            f"{weights}: sha256 {found[:16]}... differs from its card {card_file}; "
            "delete the folder to convert again"
        )
    net = DeepbetNet()
    copy_strict(net, load_file(str(weights)), where=str(weights))
    return net.eval()


def _normalize(x: Tensor, low: Tensor, high: Tensor) -> Tensor:
    x = ((x - low) / (high - low)).clamp(0.0, 1.0)
    return 0.226 * (x - x.mean()) / x.std() + 0.449


def _largest_component(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    labels, count = ndimage.label(mask)
    if count <= 1:
        return mask.astype(bool)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return np.asarray(labels == int(sizes.argmax()))


def _bbox(mask_small: np.ndarray, shape: tuple[int, ...], margin: float) -> tuple[slice, ...]:
    slices = []
    for axis, size in enumerate(shape):
        other = tuple(a for a in range(3) if a != axis)
        idx = np.where(mask_small.mean(axis=other) > 0.02)[0]
        if idx.size == 0:
            raise ValueError("brain_mask: the bbox network found no brain in the volume")
        scale = size / mask_small.shape[axis]
        center = round(scale * (idx.max() + 1 + idx.min()) / 2)
        extent = round((1 + 2 * margin) * scale * (idx.max() + 1 - idx.min()))
        slices.append(slice(max(0, int(center - extent / 2)), min(size, int(center + extent / 2))))
    return tuple(slices)


def _resize(x: Tensor, shape: tuple[int, ...]) -> Tensor:
    return torch.nn.functional.interpolate(x[None, None], shape, mode="nearest-exact")[0, 0]


def brain_mask(
    volume: np.ndarray,
    affine: np.ndarray,
    *,
    shape: tuple[int, int, int] = (192, 192, 192),
    threshold: float = 0.5,
) -> np.ndarray:
    """A boolean brain mask of a T1w ``volume``, on its own voxel grid.

    Follows deepbet's ``BrainExtraction.run_model`` and ``postprocess``:
    reorient to RAS, find the brain's box with the bbox network on a 128^3
    resize (intensities clipped to its 0.5-99.5 % quantiles), crop it with a
    10 % margin, resize it to ``shape``, run the mask network, threshold,
    keep the largest connected component and fill holes, then bring the
    mask back to the input's orientation. deepbet's default ``shape`` is
    256^3; 192^3 (the default here) takes about half the time for the same
    Dice on IXI. Runs on the CPU, with weights from :func:`load_deepbet_network`.

    Args:
        volume: a 3-D array (any orientation).
        affine: its 4x4 voxel-to-world matrix.
        shape: the mask network's input shape (multiples of 32).
        threshold: probability above which a voxel is brain.

    Raises:
        ValueError: not a 3-D volume, a bad affine or shape, or no brain found.
    """
    import nibabel as nib

    data = np.asarray(volume)
    if data.ndim != 3:
        raise ValueError(f"brain_mask: expected a 3-D volume, got shape {data.shape}")
    aff = np.asarray(affine, dtype=float)
    if aff.shape != (4, 4):
        raise ValueError(f"brain_mask: expected a 4x4 affine, got shape {aff.shape}")
    if len(shape) != 3 or any(int(s) <= 0 or int(s) % 32 for s in shape):
        raise ValueError(f"brain_mask: shape must be three multiples of 32, got {shape}")
    ornt = nib.orientations.io_orientation(aff)
    to_ras = nib.orientations.ornt_transform(ornt, [[0, 1], [1, 1], [2, 1]])
    ras = nib.orientations.apply_orientation(data.astype(np.float32), to_ras)
    x = torch.nan_to_num(torch.from_numpy(np.ascontiguousarray(ras)))
    bbox_net, mask_net = load_deepbet_network("bbox"), load_deepbet_network("model")
    x_small = _resize(x, (128, 128, 128))
    low, high = x_small.quantile(0.005), x_small.quantile(0.995)
    with torch.no_grad():
        small = bbox_net(_normalize(x_small, low, high)[None, None])[0, 1]
    mask_small = _largest_component((small > 0.5).numpy())
    box = _bbox(mask_small, tuple(x.shape), 0.1)
    crop = x[box]
    with torch.no_grad():
        prob = mask_net(
            _normalize(_resize(crop, tuple(int(s) for s in shape)), low, high)[None, None]
        )
    crop_mask = _resize(prob[0, 1], tuple(crop.shape)).numpy() > threshold
    from scipy import ndimage

    crop_mask = ndimage.binary_fill_holes(_largest_component(crop_mask))
    mask = np.zeros(x.shape, dtype=bool)
    mask[box] = crop_mask
    back = nib.orientations.ornt_transform([[0, 1], [1, 1], [2, 1]], ornt)
    return np.ascontiguousarray(nib.orientations.apply_orientation(mask, back)).astype(bool)
