"""The experiment's run folder: one experiment per folder, never two mixed.

A folder is identified by the sha256 of the resolved experiment config
(``output`` aside) with no absolute path of the run folder in it, so that a
copied or moved run folder (``cp -r``, ``mv``) is the same run: paths inside
the run folder are taken relative to it, the cache's location is left out
(its entries are content-addressed) and input data are fingerprinted by
content (:func:`path_fingerprint`), not by where they lie. Keys that only
extend the comparison (:data:`EXTENSION_KEYS`) are left out too: adding
methods, ``N`` values or repeats computes only the new rows.

Reusing a folder for the same config is how separate step commands
(``transmri pretrain`` then ``transmri finetune``) share one run; a folder
holding another experiment is refused unless ``overwrite``, which first
removes the earlier experiment's files (only the names in
:data:`EXPERIMENT_ARTIFACTS` and :data:`EXPERIMENT_PATTERNS`). A folder that
is not a transmri run (no readable ``run.json`` of transmri's) but holds files
is refused even with ``overwrite``: nothing of a user's is ever deleted.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from transmri._files import atomic_write_bytes, read_json, remove_entries
from transmri._version import __version__
from transmri.errors import DataFormatError, OutputExistsError

__all__ = [
    "EXPERIMENT_ARTIFACTS",
    "EXPERIMENT_PATTERNS",
    "EXTENSION_KEYS",
    "STEP_ARTIFACTS",
    "STEP_DEPENDENTS",
    "check_run_folder",
    "config_identity",
    "environment",
    "finished_steps",
    "forget_steps",
    "open_run_folder",
    "path_fingerprint",
    "read_run_json",
    "record_step",
    "write_bytes",
    "write_text",
]

#: What ``overwrite`` removes from a folder holding another experiment.
EXPERIMENT_ARTIFACTS: tuple[str, ...] = (
    "run.json",
    "experiment.resolved.yaml",
    "data_stats.csv",
    "source.csv",
    "target.csv",
    "history.csv",
    "predictions_test.csv",
    "metrics_test.json",
    "comparison.csv",
    "summary.csv",
    "differences.csv",
    "report.html",
    "pretrain",
    "finetune",
    "embed",
    "compare",
    "figures",
    "data",
)

#: Files of the run folder's top level that ``overwrite`` also removes
#: (an earlier run's embeddings must not reach the new run's report).
EXPERIMENT_PATTERNS: tuple[str, ...] = (
    "embeddings_*.csv",
    "embeddings_*.npy",
    "predictions_*.csv",
    "metrics_*.json",
)


#: What each step writes into the run folder (names and top-level patterns);
#: ``restart`` removes a step's entries, and nothing else, before it runs again.
#: The cache, the scan tables and ``data_stats.csv`` are kept (rewritten in place).
STEP_ARTIFACTS: dict[str, tuple[str, ...]] = {
    "prepare": (),
    "pretrain": ("pretrain", "figures/pretraining_curves.png"),
    "finetune": ("finetune", "history.csv"),
    "evaluate": ("predictions_test.csv", "metrics_test.json"),
    "embed": ("embed", "embeddings_*.csv", "embeddings_*.npy"),
    "compare": ("compare", "comparison.csv", "summary.csv", "differences.csv"),
    "report": ("report.html",),
}

#: The steps whose results use a step's output: restarting the step forgets them too
#: (a fine-tuned model of the old encoder must not survive a new pretraining).
STEP_DEPENDENTS: dict[str, tuple[str, ...]] = {
    "prepare": (),
    "pretrain": ("finetune", "evaluate", "embed", "compare", "report"),
    "finetune": ("evaluate", "embed", "report"),
    "evaluate": ("report",),
    "embed": ("report",),
    "compare": ("report",),
    "report": (),
}


def write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` through a temp file and a rename (no half-written file is ever seen)."""
    return atomic_write_bytes(path, data)


def write_text(path: Path, text: str) -> Path:
    """:func:`write_bytes` of UTF-8 text."""
    return write_bytes(path, text.encode("utf-8"))


#: ``evaluation`` keys left out of the identity: changing them adds rows to
#: the comparison (``transfer_curve`` measures only the missing ones) and
#: changes nothing else: the held-out test subjects, hence the pretraining
#: set and the fine-tuning split, do not depend on them.
EXTENSION_KEYS: tuple[str, ...] = ("methods", "n_train", "repeats")


def path_fingerprint(path: Path, *, skip: tuple[Path, ...] = ()) -> str:
    """What an input file or folder holds, wherever it lies (for run identities).

    A file: the sha256 of its bytes (a scan table, a mask, a demographics
    sheet). A folder (a BIDS, IXI or ADNI root, an encoder folder): the
    sha256 of the relative names and sizes of its files (hidden ones and the
    folders in ``skip`` left out), which needs no read of the scans.
    """
    digest = hashlib.sha256()
    if path.is_file():
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        return f"file:{digest.hexdigest()[:16]}"
    if not path.is_dir():
        return f"missing:{path.name}"
    skipped = {os.path.realpath(s) for s in skip}
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(
            d
            for d in dirs
            if not d.startswith(".") and os.path.realpath(os.path.join(root, d)) not in skipped
        )
        for name in sorted(files):
            if name.startswith("."):
                continue
            full = os.path.join(root, name)
            try:
                size = os.stat(full).st_size
            except OSError:  # a dangling link: its name still counts
                size = -1
            digest.update(f"{os.path.relpath(full, path)}\t{size}\n".encode())
    return f"folder:{digest.hexdigest()[:16]}"


def config_identity(config: Mapping[str, Any]) -> str:
    """sha256 (hex, 16 digits) of a config without its ``output`` key."""
    body = {k: v for k, v in config.items() if k != "output"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def read_run_json(run_dir: Path) -> dict[str, Any]:
    """The folder's ``run.json`` as a dict.

    Raises:
        FileNotFoundError: no run.json.
        DataFormatError: it is not a JSON object.
    """
    path = run_dir / "run.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; is {run_dir} a transmri run folder?")
    return read_json(path, what="run.json")


def _is_run(previous: Mapping[str, Any]) -> bool:
    """Whether a parsed ``run.json`` was written by transmri."""
    return isinstance(previous.get("kind"), str)


def check_run_folder(
    run_dir: Path, identity: str, *, overwrite: bool, legacy: str | None = None
) -> None:
    """Refuse ``run_dir`` if it holds another run or a user's files (nothing is written here).

    ``legacy``: the identity an older transmri gave this config (absolute
    paths); a folder holding it is the same run.

    Raises:
        OutputExistsError: ``run_dir`` is a file; holds files but is not a
            transmri run (even with ``overwrite``); or holds a different
            experiment that finished at least one step and ``overwrite``
            is false (an experiment that finished none may be replaced).
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise OutputExistsError(f"{run_dir}: expected a run folder, found a file")
    if not run_dir.is_dir():
        return
    previous: dict[str, Any] = {}
    if (run_dir / "run.json").is_file():
        try:
            previous = read_run_json(run_dir)
        except DataFormatError:
            previous = {}
    if not _is_run(previous):
        found = sorted(p.name for p in run_dir.iterdir() if not p.name.startswith("."))
        if found:
            raise OutputExistsError(
                f"{run_dir}: not empty and not a transmri run (found {found[:5]}); "
                "transmri never deletes files it did not write: choose another --out "
                "(a new or empty folder)"
            )
        return
    if overwrite:
        return
    if previous.get("kind") == "experiment" and previous.get("identity") in (identity, legacy):
        return
    if previous.get("kind") == "experiment" and not previous.get("steps"):
        # No step ever finished (a run that failed on its data): nothing to
        # keep, so following the error's advice with a changed config works.
        return
    what = (
        f"experiment {previous.get('name')!r} with another config"
        if previous.get("kind") == "experiment"
        else f"a run of kind {previous.get('kind')!r}"
    )
    raise OutputExistsError(
        f"{run_dir}: holds {what}; pass --overwrite to replace it or choose another --out"
    )


def _remove_artifacts(run_dir: Path) -> None:
    """Remove what an earlier experiment wrote to ``run_dir`` (and nothing else)."""
    remove_entries(run_dir, (*EXPERIMENT_ARTIFACTS, *EXPERIMENT_PATTERNS))


def open_run_folder(
    run_dir: Path,
    *,
    identity: str,
    name: str,
    synthetic: bool,
    config: Mapping[str, Any],
    resolved_yaml: str,
    overwrite: bool,
    legacy: str | None = None,
) -> Path:
    """Create (or accept) the run folder and write ``run.json`` and ``experiment.resolved.yaml``.

    A folder recorded under the ``legacy`` identity is the same run; it is
    recorded under ``identity`` from now on.
    """
    check_run_folder(run_dir, identity, overwrite=overwrite, legacy=legacy)
    previous: dict[str, Any] = {}
    if (run_dir / "run.json").is_file():
        try:
            previous = read_run_json(run_dir)
        except DataFormatError:
            previous = {}
    if previous.get("identity") not in (identity, legacy) and run_dir.is_dir():
        _remove_artifacts(run_dir)
        previous = {}
    run_dir.mkdir(parents=True, exist_ok=True)
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    run = {
        "kind": "experiment",
        "name": name,
        "transmri_version": __version__,
        "created": previous.get("created", now),
        "synthetic": synthetic,
        "identity": identity,
        "steps": previous.get("steps", {}),
        "environment": environment(),
        "config": dict(config),
    }
    write_text(run_dir / "run.json", json.dumps(run, indent=2, default=str) + "\n")
    write_text(run_dir / "experiment.resolved.yaml", resolved_yaml)
    return run_dir


def _torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def environment() -> dict[str, Any]:
    """What, besides the seed, decides the exact numbers of a run.

    The same seed gives bit-identical results with the same ``torch_threads``
    (intra-op threads: ``OMP_NUM_THREADS`` or the number of cores) on the same
    machine and library versions. Another thread count sums in another order,
    so losses differ in the last digits and, over many epochs, a model near
    chance can change its test AUC (see ``docs/RELIABILITY.md``).
    """
    import platform

    import torch

    return {
        "torch_threads": _torch_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def record_step(run_dir: Path, step: str, summary: Mapping[str, Any]) -> None:
    """Note in ``run.json`` that ``step`` finished, with a short summary."""
    run = read_run_json(run_dir)
    steps = dict(run.get("steps", {}))
    finished = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    steps[step] = {"finished": finished, "torch_threads": _torch_threads(), **dict(summary)}
    run["steps"] = steps
    write_text(run_dir / "run.json", json.dumps(run, indent=2, default=str) + "\n")


def finished_steps(run_dir: Path) -> dict[str, Any]:
    """The steps ``run.json`` records as finished (name -> summary); empty for a new folder."""
    if not (run_dir / "run.json").is_file():
        return {}
    steps = read_run_json(run_dir).get("steps", {})
    return dict(steps) if isinstance(steps, dict) else {}


def forget_steps(run_dir: Path, steps: tuple[str, ...] | list[str]) -> list[str]:
    """Remove what ``steps`` and their dependents wrote, and their records in ``run.json``.

    Only the entries of :data:`STEP_ARTIFACTS` are removed: a user's own files
    in the run folder stay.

    Returns:
        The steps forgotten (``steps`` and their dependents, in :data:`STEP_ARTIFACTS` order).
    """
    wanted = set(steps) | {d for s in steps for d in STEP_DEPENDENTS.get(s, ())}
    forgotten = [s for s in STEP_ARTIFACTS if s in wanted]
    for step in forgotten:
        remove_entries(run_dir, STEP_ARTIFACTS[step])
    if (run_dir / "run.json").is_file():
        run = read_run_json(run_dir)
        kept = {k: v for k, v in dict(run.get("steps", {})).items() if k not in wanted}
        if kept != run.get("steps", {}):
            run["steps"] = kept
            write_text(run_dir / "run.json", json.dumps(run, indent=2, default=str) + "\n")
    return forgotten
