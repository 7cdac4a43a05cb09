"""The encoder zoo: public pretrained encoders that import in one call.

:data:`ZOO` is a plain table of names to a one-line description;
:func:`import_encoder` converts one into ``encoder.safetensors`` +
``encoder.json`` (a card with provenance) in a folder.

deepbet's weights come with its package; the MedicalNet and SFCN ones are
files the user brings (:data:`USER_CHECKPOINTS`): nothing is downloaded.

Example:
    >>> sorted(ZOO)[:3]
    ['deepbet', 'deepbet-bbox', 'medicalnet-resnet10']
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from transmri.errors import ConfigError

__all__ = [
    "ENCODER_FILES",
    "USER_CHECKPOINTS",
    "ZOO",
    "check_encoder_ref",
    "import_encoder",
    "resolve_encoder",
]

#: The two files of an encoder folder (weights, then card).
ENCODER_FILES: tuple[str, ...] = ("encoder.safetensors", "encoder.json")

#: Zoo names and what each is.
ZOO: dict[str, str] = {
    "deepbet": (
        "deepbet brain-mask network's encoder (LinkNet 3D U-Net, 2.08 M parameters; "
        "7,837 T1w scans, 191 OpenNeuro datasets; MIT); needs transmri[deepbet]"
    ),
    "deepbet-bbox": (
        "deepbet bounding-box network's encoder (same architecture, other weights, "
        "trained at 128^3); needs transmri[deepbet]"
    ),
    "medicalnet-resnet10": (
        "MedicalNet 3D ResNet-10 (Med3D; segmentation pretraining on 3DSeg-8 or 23 CT/MRI "
        "datasets; MIT; 14.4 M parameters); your resnet_10*.pth"
    ),
    "medicalnet-resnet18": "MedicalNet 3D ResNet-18 (shortcut A; 33.0 M); your resnet_18*.pth",
    "medicalnet-resnet34": "MedicalNet 3D ResNet-34 (shortcut A; 63.3 M); your resnet_34*.pth",
    "medicalnet-resnet50": "MedicalNet 3D ResNet-50 (bottleneck; 46.2 M); your resnet_50*.pth",
    "sfcn-age": (
        "SFCN brain-age network (Peng et al. 2021; UK Biobank, 14,503-subject release; MIT; "
        "2.95 M parameters; 1 mm MNI152 160x192x160); your run_20190719_00_epoch_best_mae.p"
    ),
    "sfcn-sex": (
        "SFCN sex network (UK Biobank; channels 28-58-128-256-256-64); "
        "your run_20191008_00_epoch_last.p"
    ),
}

#: Zoo names whose weights the user provides (a file path is required to import them).
USER_CHECKPOINTS: tuple[str, ...] = tuple(n for n in ZOO if not n.startswith("deepbet"))


def import_encoder(
    name: str, out_dir: str | os.PathLike[str], *, source: str | os.PathLike[str] | None = None
) -> Path:
    """Convert the zoo encoder ``name`` into ``out_dir``; return the card's path.

    Args:
        name: a :data:`ZOO` name.
        out_dir: the encoder folder to write.
        source: the checkpoint file; required for :data:`USER_CHECKPOINTS`
            (MedicalNet, SFCN), optional for deepbet (default: the installed one).

    Raises:
        ConfigError: ``name`` is not in :data:`ZOO`, or a user checkpoint is not given.
    """
    if name not in ZOO:
        raise ConfigError(f"encoder zoo: unknown name {name!r}; expected one of {sorted(ZOO)}")
    if name in USER_CHECKPOINTS:
        return _import_user_checkpoint(name, out_dir, source)
    from transmri.pretrained.deepbet import import_deepbet

    src = None if source is None else str(source)
    if name == "deepbet-bbox":
        return import_deepbet(out_dir, "bbox", source=src)
    return import_deepbet(out_dir, "model", source=src)


def _import_user_checkpoint(
    name: str, out_dir: str | os.PathLike[str], source: str | os.PathLike[str] | None
) -> Path:
    if source is None:
        raise ConfigError(
            f"encoder zoo: {name} is imported from a checkpoint file you provide (nothing is "
            f"downloaded); give its path: transmri encoder import {name} PATH --out DIR"
        )
    if name.startswith("sfcn-"):
        from transmri.pretrained.sfcn import import_sfcn

        return import_sfcn(source, out_dir, "sex" if name == "sfcn-sex" else "age")
    from transmri.pretrained.medicalnet import import_medicalnet

    return import_medicalnet(source, int(name.rsplit("resnet", 1)[1]), out_dir)


def _which(name: str) -> Literal["model", "bbox"]:
    return "bbox" if name == "deepbet-bbox" else "model"


def check_encoder_ref(
    value: str | os.PathLike[str],
    *,
    base_dir: str | os.PathLike[str] | None = None,
    where: str = "encoder",
) -> str | Path:
    """Check that ``value`` names a zoo encoder or an encoder folder, without converting.

    Args:
        value: a :data:`ZOO` name (``deepbet``), an encoder folder holding
            ``encoder.safetensors`` + ``encoder.json``, or an ``encoder.json`` card.
        base_dir: folder a relative path is relative to (default: the current one).
        where: what the message names (e.g. ``experiment.yaml: pretrain.encoder``).

    Returns:
        The zoo name, or the card's absolute path.

    Raises:
        ConfigError: neither a zoo name (the known ones are listed) nor an
            existing path; a zoo name whose checkpoint the user provides
            (:data:`USER_CHECKPOINTS`: convert it first); a folder or card
            that lacks one of the two files (the missing one is named).
        ImportError: a zoo encoder whose package is not installed and that was
            never converted (the message names the extra).
    """
    text = os.fspath(value)
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"{where}: expected a zoo name or an encoder folder, got {value!r}")
    path = Path(os.path.expanduser(text))
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    if text in USER_CHECKPOINTS and not path.exists():
        raise ConfigError(
            f"{where}: {text} is converted from a checkpoint file you provide: run "
            f"`transmri encoder import {text} PATH --out DIR` once and name DIR here"
        )
    if text in ZOO and not path.exists():
        from transmri.pretrained.deepbet import NETWORK_FILE, deepbet_cache_dir, deepbet_source_file

        folder = deepbet_cache_dir(_which(text))
        if not ((folder / "encoder.json").is_file() and (folder / NETWORK_FILE).is_file()):
            deepbet_source_file(_which(text))  # ImportError naming the extra
        return text
    if not path.exists():
        raise ConfigError(
            f"{where}: {text!r} is neither a zoo encoder (known: {', '.join(sorted(ZOO))}) "
            f"nor an existing path ({path} does not exist)"
        )
    folder = path if path.is_dir() else path.parent
    if path.is_file() and path.suffix != ".json":
        raise ConfigError(f"{where}: {path} is a file but not an encoder card (encoder.json)")
    card = path if path.is_file() else folder / "encoder.json"
    weights = card.with_suffix(".safetensors")
    for needed in (weights, card):
        if not needed.is_file():
            raise ConfigError(
                f"{where}: {folder} is not an encoder folder: {needed.name} is missing "
                f"(an encoder folder holds {' + '.join(ENCODER_FILES)}; zoo names: "
                f"{', '.join(sorted(ZOO))})"
            )
    return card.absolute()


def resolve_encoder(
    value: str | os.PathLike[str],
    *,
    base_dir: str | os.PathLike[str] | None = None,
    where: str = "encoder",
) -> Path:
    """The card of ``value`` (see :func:`check_encoder_ref`), converting a zoo name on first use.

    A zoo encoder is converted once into the transmri cache
    (``$TRANSMRI_CACHE``, else ``~/.cache/transmri``) and read from there
    afterwards.

    Raises:
        ConfigError, ImportError: as :func:`check_encoder_ref`.
    """
    ref = check_encoder_ref(value, base_dir=base_dir, where=where)
    if isinstance(ref, Path):
        return ref
    from transmri.pretrained.deepbet import _cached_card

    return _cached_card(_which(ref))
