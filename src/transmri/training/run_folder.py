"""The run folder: created on first write, refusing to mix two different runs.

A run is identified by what makes its files comparable: the model type, the
model's architecture and the data (preprocessing and the subjects of each
split). Re-using a folder for the *same* run is allowed (that is how a fresh
Learner resumes); a folder holding another run, or unrelated files, is
refused with :class:`~transmri.errors.OutputExistsError` unless
``overwrite=True``, which first removes the earlier run's files. A folder
that holds files but no ``run.json`` is not a run: it is refused even with
``overwrite=True``, so a user's own files are never deleted.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from transmri._files import atomic_write_json, read_json, remove_entries
from transmri._version import __version__
from transmri.errors import OutputExistsError

__all__ = ["RUN_ARTIFACTS", "prepare_run_folder", "run_identity"]

RUN_ARTIFACTS: tuple[str, ...] = (
    "run.json",
    "data.json",
    "history.csv",
    "checkpoints",
    "encoder.safetensors",
    "encoder.json",
    "models",
    "figures",
    "tensorboard",
)
"""What ``overwrite=True`` removes (plus ``predictions_*``, ``metrics_*``,
``reconstruction_*``, ``embeddings_*``)."""


def _digest(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def run_identity(
    *,
    model_type: str,
    model_config: Mapping[str, Any],
    preprocessing: Mapping[str, Any],
    splits: Mapping[str, list[str]],
) -> dict[str, Any]:
    """What two runs must share to live in the same folder (JSON-able)."""
    return {
        "model_type": model_type,
        "model": json.loads(json.dumps(dict(model_config), default=str)),
        "preprocessing": _digest(dict(preprocessing)),
        "subjects": {name: _digest(sorted(subjects)) for name, subjects in splits.items()},
    }


#: Per-split outputs of a Learner run (globs beside :data:`RUN_ARTIFACTS`).
RUN_PATTERNS = (
    "predictions_*.csv",
    "metrics_*.json",
    "reconstruction_*.json",
    "embeddings_*.csv",
    "embeddings_*.npy",
)


def _remove_artifacts(root: Path) -> None:
    remove_entries(root, (*RUN_ARTIFACTS, *RUN_PATTERNS))


def prepare_run_folder(
    root: Path, identity: Mapping[str, Any], *, config: Mapping[str, Any], overwrite: bool
) -> Path:
    """Create ``root`` (or accept it for the same run) and write ``run.json``.

    Args:
        root: the run folder.
        identity: :func:`run_identity` of this run.
        config: the resolved settings, recorded in ``run.json``.
        overwrite: remove another run's files instead of refusing.

    Raises:
        OutputExistsError: ``root`` holds another run (the message lists what
            differs) or files that are not a transmri run (even with
            ``overwrite``).
    """
    run_json = root / "run.json"
    if root.exists() and not root.is_dir():
        raise OutputExistsError(f"{root}: expected a run folder, found a file")
    if run_json.exists():
        previous = read_json(run_json, what="run manifest")
        if not _same_run(previous, identity):
            if not overwrite:
                _refuse(root, previous, identity)
            _remove_artifacts(root)
    elif root.is_dir() and any(p for p in root.iterdir() if not p.name.startswith(".")):
        found = sorted(p.name for p in root.iterdir() if not p.name.startswith("."))[:5]
        raise OutputExistsError(
            f"{root}: expected an empty or new run folder, found files {found} and no "
            "run.json; transmri never deletes files it did not write: choose another folder"
        )
    root.mkdir(parents=True, exist_ok=True)
    created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    record = {
        "kind": "learner",
        "transmri_version": __version__,
        "created": created,
        "identity": dict(identity),
        "config": dict(config),
    }
    if not run_json.exists() and not _claim(run_json, record):
        # Another process created this run folder since we looked: same rules.
        previous = read_json(run_json, what="run manifest")
        if not _same_run(previous, identity):
            if not overwrite:
                _refuse(root, previous, identity)
            _remove_artifacts(root)
    if run_json.exists():
        record["created"] = read_json(run_json, what="run manifest").get("created", created)
    atomic_write_json(run_json, record)
    return root


def _same_run(previous: Mapping[str, Any], identity: Mapping[str, Any]) -> bool:
    return bool(previous.get("identity", {}) == dict(identity))


def _refuse(root: Path, previous: Mapping[str, Any], identity: Mapping[str, Any]) -> None:
    before = previous.get("identity", {})
    keys = sorted(set(before) | set(identity))
    diffs = [
        f"{k}: folder {before.get(k)!r}, this run {identity.get(k)!r}"
        for k in keys
        if before.get(k) != identity.get(k)
    ]
    raise OutputExistsError(
        f"{root}: holds a different run ({'; '.join(diffs)}); choose another "
        f"folder or pass overwrite=True to replace it"
    )


def _claim(run_json: Path, record: Mapping[str, Any]) -> bool:
    """Create ``run_json`` only if it does not exist yet (atomic); False if it does.

    Two processes starting different runs in one new folder at the same time
    would otherwise both find it empty; the link succeeds for one of them only.
    """
    tmp = run_json.with_name(f".{run_json.name}.{os.getpid()}.claim.tmp")
    atomic_write_json(tmp, record)
    try:
        os.link(tmp, run_json)
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    return True
