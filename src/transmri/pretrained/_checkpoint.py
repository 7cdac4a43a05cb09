"""Reading third-party PyTorch checkpoints safely, and fitting them to a module strictly.

Every importer of the zoo reads a user's file through :func:`read_state_dict`
(``torch.load(..., weights_only=True)``: a pickle that asks to build any
object other than tensors and plain containers is refused, never run) and
copies it with :func:`match_state` (every key and shape must fit).
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from transmri.errors import CheckpointError, DataFormatError

__all__ = ["match_state", "read_state_dict", "strip_prefix"]

# torch names the refused global in one of two ways, by why it refuses it.
_GLOBAL = re.compile(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)")
_SHOWN = 8


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:160]}" if text else type(exc).__name__


def _load(path: Path, what: str) -> object:
    try:
        with warnings.catch_warnings():
            # torch warns about the pickle protocol of old files; the load decides.
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = _GLOBAL.search(str(exc))
        if found:
            raise CheckpointError(
                f"{path}: refused: this {what} is a pickle that asks to call "
                f"{found.group(1)!r} when loaded, which could run any code. transmri reads "
                "checkpoints with torch.load(weights_only=True) only: tensors, numbers, "
                "strings and containers. Save the weights alone where the file was made "
                "(torch.save(model.state_dict(), path)) and import that file"
            ) from None
        # torch's message advises weights_only=False: keep only the reason.
        reasons = [
            line.strip()
            for line in str(exc).splitlines()
            if line.strip() and "weights_only" not in line and "documentation" not in line
        ]
        raise DataFormatError(
            f"{path}: not a readable PyTorch {what} (truncated, corrupt or another format: "
            f"the restricted unpickler stopped{': ' + reasons[0][:160] if reasons else ''})"
        ) from None
    except Exception as exc:  # torch raises RuntimeError, EOFError, KeyError... by format
        raise DataFormatError(
            f"{path}: not a readable PyTorch {what} (truncated, corrupt or another "
            f"format: {_first_line(exc)})"
        ) from None


def read_state_dict(path: str | os.PathLike[str], *, what: str = "checkpoint") -> dict[str, Tensor]:
    """The tensors of a ``torch.save`` file: a state dict, or ``{"state_dict": ...}``.

    Other entries beside ``"state_dict"`` (``"epoch"``, an optimiser's
    state) are ignored.

    Args:
        path: the file.
        what: what the file is, for messages (e.g. ``"MedicalNet checkpoint"``).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: a pickle that would call code when loaded (its global
            is named; nothing is run).
        DataFormatError: not a PyTorch file, truncated, one the restricted
            unpickler cannot read, or not a state dict (names to tensors); the
            message names the file.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: {what} not found")
    data = _load(p, what)
    if isinstance(data, Mapping) and isinstance(data.get("state_dict"), Mapping):
        data = data["state_dict"]
    if not isinstance(data, Mapping) or not data:
        found = (
            f"a mapping with keys {sorted(map(str, data))[:_SHOWN]}"
            if isinstance(data, Mapping)
            else type(data).__name__
        )
        raise DataFormatError(
            f"{p}: expected a state dict (parameter names to tensors) or "
            f"{{'state_dict': ...}}, found {found}"
        )
    state: dict[str, Tensor] = {}
    for key, value in data.items():
        if not isinstance(key, str) or not isinstance(value, Tensor):
            raise DataFormatError(
                f"{p}: state dict entry {key!r} is a {type(value).__name__}, not a tensor"
            )
        state[key] = value
    return state


def strip_prefix(state: Mapping[str, Tensor], prefix: str = "module.") -> dict[str, Tensor]:
    """``state`` with ``prefix`` removed from every key that has it (``DataParallel``'s)."""
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        while key.startswith(prefix):
            key = key[len(prefix) :]
        out[key] = value
    return out


def match_state(
    module: nn.Module,
    state: Mapping[str, Tensor],
    *,
    where: str,
    hint: Callable[[Mapping[str, Tensor]], str] | None = None,
    what: str | None = None,
    optional_suffixes: tuple[str, ...] = ("num_batches_tracked",),
) -> list[str]:
    """Load ``state`` into ``module``, every key and shape matching; return keys left as built.

    Only keys ending in ``optional_suffixes`` may be missing (batch-norm
    counters, absent from checkpoints saved before PyTorch 0.4.1; they do
    not change a forward pass in eval mode).

    Args:
        module: the module to fill.
        state: its tensors, named as ``module.state_dict()`` names them.
        where: the file, put first in the message.
        hint: given the state, a sentence to add to the message (e.g. which
            architecture the shapes suggest), or ``""``.
        what: the architecture's name in the message (default: the module's class).

    Raises:
        CheckpointError: listing the first missing and unexpected keys and
            mismatching shapes (and the hint).
    """
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: file {tuple(state[k].shape)}, model {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    required = [k for k in missing if not k.endswith(optional_suffixes)]
    if required or unexpected or shapes:
        parts = [f"{where}: the weights do not fit {what or type(module).__name__}"]
        for label, items in (
            ("missing keys", required),
            ("unexpected keys", unexpected),
            ("shape mismatches", shapes),
        ):
            if items:
                more = f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
                parts.append(f"{len(items)} {label}: {', '.join(items[:_SHOWN])}{more}")
        advice = hint(state) if hint is not None else ""
        raise CheckpointError("; ".join(parts) + (f". {advice}" if advice else ""))
    filled = {k: v for k, v in own.items() if k in missing}
    module.load_state_dict({**dict(state), **filled}, strict=True)
    return missing
