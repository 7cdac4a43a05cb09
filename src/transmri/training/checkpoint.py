"""Checkpoints: plain state dicts + JSON config, checked before they are unpickled.

A checkpoint is written with :func:`torch.save` (temporary file, then
``os.replace``) next to a sidecar ``<name>.pt.sha256`` holding the sha256 of
its bytes (while a checkpoint is being replaced, the sidecar briefly accepts
the old and the new digest, so a process killed mid-save leaves a loadable one).
:func:`load_checkpoint` verifies that digest *before* calling
``torch.load(..., weights_only=True)``, so a truncated or bit-flipped file
fails with :class:`~transmri.errors.IntegrityError` naming it, and only
tensors and plain containers are ever unpickled.

Contents (all optional except ``format_version``):
``model``, ``optimizer``, ``scheduler`` (state dicts), ``epoch`` (epochs done
in this fit), ``history`` (JSON text), ``rng`` (tensors), ``model_config``,
``fit_config``, ``learner_config``, ``fit_state`` (JSON text).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from transmri._files import atomic_write_bytes, atomic_write_text, sha256_file
from transmri.errors import CheckpointError, IntegrityError

__all__ = [
    "CHECKPOINT_FORMAT",
    "check_model_config",
    "get_rng_state",
    "load_checkpoint",
    "save_checkpoint",
    "set_rng_state",
]

CHECKPOINT_FORMAT = 1


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def save_checkpoint(path: str | os.PathLike[str], state: Mapping[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically, with its sha256 sidecar.

    Args:
        path: where to write (``.pt``).
        state: tensors, state dicts, numbers and strings only (configs as JSON text).

    Returns:
        The path written.
    """
    target = Path(path)
    buffer = io.BytesIO()
    torch.save({"format_version": CHECKPOINT_FORMAT, **state}, buffer)
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    sidecar = _sidecar(target)
    # Two files cannot be replaced at once. The sidecar first accepts the new
    # digest *and* those it held, then the checkpoint is replaced, then only the
    # new digest is kept: a process killed at any point leaves a checkpoint
    # (old or new) that verifies. Old digests come from the sidecar, never from
    # hashing the old file, so a damaged file is never blessed.
    before = _recorded(sidecar)
    atomic_write_text(sidecar, "\n".join([digest, *before]) + "\n")
    try:
        atomic_write_bytes(target, data)
    except OSError:  # e.g. disk full: the old checkpoint stays, with its own digest
        if before:
            atomic_write_text(sidecar, "\n".join(before) + "\n")
        else:
            sidecar.unlink(missing_ok=True)
        raise
    atomic_write_text(sidecar, digest + "\n")
    return target


def _recorded(sidecar: Path) -> list[str]:
    """The digests a sidecar accepts (one per line; normally one)."""
    try:
        text = sidecar.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    return [line.strip() for line in text.splitlines() if line.strip()]


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Verify and load a checkpoint written by :func:`save_checkpoint`.

    Raises:
        FileNotFoundError: the file does not exist.
        IntegrityError: the checksum sidecar is missing or does not match
            (truncated or corrupt file); the message names the file.
        CheckpointError: the file is not a transmri checkpoint.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: checkpoint not found")
    sidecar = _sidecar(p)
    if not sidecar.is_file():
        raise IntegrityError(f"{p}: no checksum file {sidecar.name}; cannot verify the checkpoint")
    expected = _recorded(sidecar)
    found = sha256_file(p)
    if found not in expected:
        recorded = expected[0][:16] + "..." if expected else "nothing"
        raise IntegrityError(
            f"{p}: sha256 mismatch (recorded in {sidecar.name}: {recorded}, "
            f"file: {found[:16]}...); the checkpoint is truncated or corrupt"
        )
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # torch's message advises weights_only=False, which would run the file's code.
        raise CheckpointError(
            f"{p}: cannot read the checkpoint: it holds Python objects beyond tensors and "
            "plain containers, which transmri never unpickles (loading them could run code); "
            "only use checkpoints transmri wrote"
        ) from None
    except Exception as exc:  # torch raises many types for unreadable files
        raise CheckpointError(f"{p}: cannot read the checkpoint ({exc})") from exc
    if not isinstance(state, dict) or "format_version" not in state:
        raise CheckpointError(f"{p}: expected a transmri checkpoint (a dict with format_version)")
    if state["format_version"] > CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{p}: checkpoint format {state['format_version']} is newer than this "
            f"transmri reads ({CHECKPOINT_FORMAT}); upgrade transmri"
        )
    return state


def check_model_config(
    path: str | os.PathLike[str], stored: str | Mapping[str, Any], current: Mapping[str, Any]
) -> None:
    """Raise ``CheckpointError`` if a checkpoint's model config differs from the model's.

    Args:
        path: the checkpoint (named in the message).
        stored: the config recorded in it (dict or JSON text).
        current: ``model.config`` of the model to load into.
    """
    saved = json.loads(stored) if isinstance(stored, str) else dict(stored)
    now = json.loads(json.dumps(dict(current)))
    if saved == now:
        return
    keys = sorted(set(saved) | set(now))
    diffs = [
        f"{k}: checkpoint {saved.get(k)!r}, model {now.get(k)!r}"
        for k in keys
        if saved.get(k) != now.get(k)
    ]
    raise CheckpointError(
        f"{path}: the checkpoint was made for another architecture; " + "; ".join(diffs)
    )


def get_rng_state() -> dict[str, Any]:
    """The torch, numpy and Python RNG states as tensors and plain lists."""
    np_state: tuple[Any, ...] = tuple(np.random.get_state())
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
        "numpy_pos": int(np_state[2]),
        "python": json.dumps([py_state[0], list(py_state[1]), py_state[2]]),
    }


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`get_rng_state` returned."""
    torch.set_rng_state(state["torch"])
    keys = state["numpy_keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, int(state["numpy_pos"]), 0, 0.0))
    version, internal, gauss = json.loads(state["python"])
    random.setstate((version, tuple(internal), gauss))
