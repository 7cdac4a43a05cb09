"""The encoder zoo: public pretrained encoders that import in one call.

:data:`ZOO` is a plain table of names to a one-line description;
:func:`import_encoder` converts one into ``encoder.safetensors`` +
``encoder.json`` (a card with provenance) in a folder.

Example:
    >>> sorted(ZOO)
    ['deepbet', 'deepbet-bbox']
"""

from __future__ import annotations

import os
from pathlib import Path

from transmri.errors import ConfigError

__all__ = ["ZOO", "import_encoder"]

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
}


def import_encoder(
    name: str, out_dir: str | os.PathLike[str], *, source: str | os.PathLike[str] | None = None
) -> Path:
    """Convert the zoo encoder ``name`` into ``out_dir``; return the card's path.

    Raises:
        ConfigError: ``name`` is not in :data:`ZOO`.
    """
    if name not in ZOO:
        raise ConfigError(f"encoder zoo: unknown name {name!r}; expected one of {sorted(ZOO)}")
    from transmri.pretrained.deepbet import import_deepbet

    src = None if source is None else str(source)
    if name == "deepbet-bbox":
        return import_deepbet(out_dir, "bbox", source=src)
    return import_deepbet(out_dir, "model", source=src)
