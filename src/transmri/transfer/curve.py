"""Does transfer help? Learning curves of transfer methods against training from scratch.

:func:`transfer_curve` holds out test subjects, then for each repeat and each
training size ``N`` draws a label-balanced training subset of ``N`` scans from
the remaining subjects, carves an inner validation set out of it (early
stopping and model selection only: the test subjects decide nothing), and
trains and tests every method (:mod:`~transmri.transfer.registry`)
on exactly the same subjects. How the subjects are drawn is described in
:mod:`~transmri.transfer.plan`. One row per method, ``N`` and
repeat goes to ``comparison.csv`` as soon as it is measured, so an
interrupted run resumes where it stopped.

Output folder::

    out_dir/
      run.json            kind "transfer", the settings (read by build_report)
      transfer.json       the settings and the identity a resumed run must match
      splits.json         the subjects of every draw
      comparison.csv      method, n_train, repeat, auc, balanced_accuracy, accuracy,
                          converged, seconds, n_test, test_subjects_hash, n_fit, n_val, notes
      summary.csv         mean and 95% t-interval over repeats per method and N
      differences.csv     paired differences against scratch / ridge / regional_random per N
      figures/learning_curve_<metric>.png
      runs/<method>/n<N>_r<r>/   each method run's own folder (Learner runs)

Example:
    >>> result = transfer_curve(table, preprocessing=PreprocessConfig(target_shape=(48, 56, 48)),
    ...     encoder="runs/pretrain/encoder.json", out_dir="runs/transfer",
    ...     config=TransferConfig(n_train=(10, 20, 40), repeats=5))  # doctest: +SKIP
    >>> print(result.summary)  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from transmri._files import atomic_write_text
from transmri._version import __version__
from transmri.data import DataBunch, PreprocessConfig, ScanTable, VolumeCache
from transmri.errors import ConfigError, DataFormatError, OutputExistsError
from transmri.evaluation.comparison import paired_differences
from transmri.evaluation.metrics import classification_metrics
from transmri.evaluation.plots import plot_learning_curve, summarize_comparison
from transmri.transfer.config import TransferConfig
from transmri.transfer.context import MethodContext, MethodResult
from transmri.transfer.plan import TransferSplit, plan_splits, seed_for
from transmri.transfer.registry import get_method, method_needs_encoder

__all__ = ["COMPARISON_COLUMNS", "TransferResult", "transfer_curve"]

logger = logging.getLogger(__name__)

COMPARISON_COLUMNS: tuple[str, ...] = (
    "method", "n_train", "repeat", "auc", "balanced_accuracy", "accuracy", "converged",
    "seconds", "n_test", "test_subjects_hash", "n_fit", "n_val", "notes",
)  # fmt: skip
"""Columns of ``comparison.csv``, in order."""

_SUMMARY_METRICS = ("auc", "balanced_accuracy", "accuracy", "converged", "seconds")
# Settings that may change between a run and its resumption: they add rows, not change them.
_RESUMABLE = ("methods", "n_train", "repeats", "keep_checkpoints", "n_jobs")


@dataclass(frozen=True)
class TransferResult:
    """What :func:`transfer_curve` measured.

    Attributes:
        frame: ``comparison.csv``, one row per method, ``N`` and repeat.
        summary: mean and 95% interval over repeats per method and ``N``.
        differences: paired differences (AUC, balanced accuracy) against the references.
        paths: ``comparison``, ``summary``, ``differences``, ``splits``, ``run``,
            ``figures`` (the learning-curve PNGs are in it).
    """

    frame: pd.DataFrame
    summary: pd.DataFrame
    differences: pd.DataFrame
    paths: dict[str, Path] = field(default_factory=dict)


# ---------------------------------------------------------------- the loop
def _write_frame(path: Path, frame: pd.DataFrame) -> Path:
    return atomic_write_text(path, frame.to_csv(index=False))


def _write_json(path: Path, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def _identity(
    target: ScanTable,
    config: TransferConfig,
    preprocessing: PreprocessConfig,
    card: Any,
    *,
    by_path: bool = False,
) -> dict[str, Any]:
    settings = {k: v for k, v in config.to_dict().items() if k not in _RESUMABLE}
    # Scans by content (the cache's keys), not by location: a copied or moved
    # benchmark folder (with its data) resumes. ``by_path``: the older identity.
    cache = VolumeCache(Path("."), preprocessing)  # keys only; nothing is read or written
    scans = target.paths if by_path else map(cache.key, target.paths, target.masks)
    rows = sorted(zip(scans, target.frame["label"].astype(str), target.subjects))
    return {
        "config": settings,
        "preprocessing": preprocessing.fingerprint(),
        "encoder_sha256": None if card is None else card.get("sha256"),
        "target": hashlib.sha256(json.dumps(rows).encode("utf-8")).hexdigest()[:16],
    }


def _prepare_folder(
    out: Path, identity: dict[str, Any], *, overwrite: bool, legacy: dict[str, Any] | None = None
) -> None:
    """Accept a folder of the same benchmark (to resume), refuse another unless ``overwrite``."""
    manifest = out / "transfer.json"
    if manifest.is_file():
        before = json.loads(manifest.read_text(encoding="utf-8")).get("identity")
        if before in (identity, legacy):
            return
        if not overwrite:
            diffs = [k for k in identity if (before or {}).get(k) != identity[k]]
            raise OutputExistsError(
                f"{out}: holds a transfer benchmark with other settings (differs in {diffs}); "
                "choose another folder or pass overwrite=True"
            )
    elif out.is_dir() and any(not p.name.startswith(".") for p in out.iterdir()):
        # Not a benchmark folder: its files are someone else's, never removed.
        raise OutputExistsError(
            f"{out}: expected a new or empty folder, found other files and no transfer.json; "
            "choose another folder"
        )
    for name in ("comparison.csv", "summary.csv", "differences.csv", "splits.json"):
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / "runs", ignore_errors=True)


def _read_rows(path: Path) -> pd.DataFrame:
    if not path.is_file():
        return pd.DataFrame(columns=list(COMPARISON_COLUMNS))
    text_columns = {"method": str, "test_subjects_hash": str, "notes": str}
    frame = pd.read_csv(path, dtype=text_columns)  # a hash of digits must stay text
    missing = [c for c in COMPARISON_COLUMNS if c not in frame.columns]
    if missing:
        raise DataFormatError(f"{path}: not a comparison table, missing column(s) {missing}")
    frame["notes"] = frame["notes"].fillna("").astype(str)
    return frame


def _run_one(context: MethodContext) -> tuple[MethodResult | None, str]:
    try:
        return get_method(context.method)(context), ""
    except FloatingPointError as exc:  # a diverged training run is a result, not a crash
        return None, f"failed: {exc}"


def _write_manifests(
    out: Path,
    identity: dict[str, Any],
    target: ScanTable,
    config: TransferConfig,
    preprocessing: PreprocessConfig,
    encoder_path: Path | None,
    card: dict[str, Any] | None,
    splits: Sequence[TransferSplit],
) -> None:
    """Write ``transfer.json``, ``run.json`` (for ``build_report``) and ``splits.json``."""
    out.mkdir(parents=True, exist_ok=True)
    settings = {
        "transfer": config.to_dict(),
        "preprocessing": preprocessing.to_dict(),
        "encoder": None if encoder_path is None else str(encoder_path),
        "encoder_source": None if card is None else card.get("source"),
        "target": target.source,
        "target_summary": target.summary(),
    }
    _write_json(out / "transfer.json", {"identity": identity, "settings": settings})
    synthetic = "synthetic" in target.frame and bool(
        target.frame["synthetic"].astype(str).str.lower().isin(["true", "1"]).any()
    )
    _write_json(
        out / "run.json",
        {
            "kind": "transfer",
            "name": f"Transfer benchmark: {Path(target.source).name or target.source}",
            "transmri_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "synthetic": synthetic,
            "config": settings,
        },
    )
    _write_json(
        out / "splits.json",
        [
            {"repeat": s.repeat, "n_train": s.n_train, "train": sorted(set(s.train.subjects)),
             "val": sorted(set(s.val.subjects)), "test": sorted(set(s.test.subjects)),
             "test_subjects_hash": s.test_hash}
            for s in splits
        ],
    )  # fmt: skip


def transfer_curve(
    target: ScanTable,
    *,
    preprocessing: PreprocessConfig,
    encoder: str | os.PathLike[str] | None,
    out_dir: str | os.PathLike[str],
    config: TransferConfig | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    report: Callable[[str], None] | None = None,
) -> TransferResult:
    """Measure every method at every training size on the same subjects; see the module doc.

    Args:
        target: the labelled target study.
        preprocessing: how its scans become volumes (must match the encoder's).
        encoder: the pretrained encoder (card, weights or run folder), a zoo
            name such as ``deepbet`` (see :data:`transmri.pretrained.ZOO`;
            converted on first use into the transmri cache), or ``None``
            (then only methods without an encoder can run).
        out_dir: the benchmark folder; rerunning with it resumes.
        config: the settings (default :class:`TransferConfig()`).
        cache_dir: the volume cache (default ``out_dir/cache``).
        overwrite: replace a benchmark with other settings found in ``out_dir``.
        report: called with one line after each measured run (``run k of n``,
            method, N, repeat, AUC, seconds, time left), e.g. ``print``.

    Returns:
        The comparison table, its summary, paired differences and file paths.

    Raises:
        ConfigError: a method needs an encoder and none is given; the target's
            preprocessing differs from the encoder's.
        DataLeakageError: a test subject was in the encoder's pretraining set.
        OutputExistsError: ``out_dir`` holds a benchmark with other settings.
        DataFormatError: the target cannot give the draws asked for.
    """
    config = TransferConfig() if config is None else config
    if not isinstance(config, TransferConfig):
        raise TypeError(f"config: expected a TransferConfig, got {type(config).__name__}")
    if not isinstance(preprocessing, PreprocessConfig):
        raise TypeError(
            f"preprocessing: expected a PreprocessConfig, got {type(preprocessing).__name__}"
        )
    needing = [m for m in config.methods if method_needs_encoder(m)]
    if encoder is None and needing:
        raise ConfigError(
            f"methods: {needing} need a pretrained encoder; pass encoder= or drop them"
        )
    card: dict[str, Any] | None = None
    encoder_path = None if encoder is None else Path(encoder)
    if encoder_path is not None and not encoder_path.exists():
        from transmri.pretrained.zoo import resolve_encoder

        # a zoo name (converted once into the transmri cache), or a precise error
        encoder_path = resolve_encoder(encoder_path, where="encoder")
    splits = plan_splits(target, config)
    if encoder_path is not None:
        from transmri.training import load_encoder
        from transmri.training.encoder_io import check_compatibility, check_encoder_leakage
        from transmri.training.factories import data_voxel_size

        _, card = load_encoder(encoder_path)
        if preprocessing.target_shape is not None:
            check_compatibility(
                card, input_shape=preprocessing.target_shape,
                preprocessing=preprocessing.to_dict(), where=str(encoder_path),
                voxel_size=data_voxel_size(target, preprocessing, card),
            )  # fmt: skip
        for subjects in {tuple(sorted(set(s.test.subjects))) for s in splits}:
            check_encoder_leakage(card, subjects, where=str(encoder_path))

    out = Path(out_dir)
    identity = _identity(target, config, preprocessing, card)
    legacy = _identity(target, config, preprocessing, card, by_path=True)
    _prepare_folder(out, identity, overwrite=overwrite, legacy=legacy)
    _write_manifests(out, identity, target, config, preprocessing, encoder_path, card, splits)

    cache = Path(cache_dir) if cache_dir is not None else out / "cache"
    used = sorted({p for s in splits for t in (s.train, s.val, s.test) for p in t.paths})
    VolumeCache(cache, preprocessing).fill(
        target.subset(np.flatnonzero(target.frame["path"].isin(used))),
        n_jobs=config.n_jobs,
        progress=False,
    )

    comparison = out / "comparison.csv"
    frame = _read_rows(comparison)
    done = {
        (str(m), int(n), int(r))
        for m, n, r in zip(frame["method"], frame["n_train"], frame["repeat"])
    }
    total = sum(
        1
        for split in splits
        for m in config.methods
        if (m, split.n_train, split.repeat) not in done
    )
    measured: list[float] = []
    for split in splits:
        stale = frame[
            (frame["repeat"] == split.repeat) & (frame["test_subjects_hash"] != split.test_hash)
        ]
        if len(stale):
            raise DataFormatError(
                f"{comparison}: rows of repeat {split.repeat} used other test subjects"
            )
        todo = [m for m in config.methods if (m, split.n_train, split.repeat) not in done]
        if not todo:
            continue
        seed = seed_for(config.seed, split.repeat, 4, split.n_train)
        data = DataBunch.from_splits(
            train=split.train, val=split.val, test=split.test,
            preprocessing=preprocessing, cache_dir=cache, seed=seed,
        )  # fmt: skip
        for method in todo:
            context = MethodContext(
                method=method, train=split.train, val=split.val, test=split.test, data=data,
                encoder=encoder_path, config=config, seed=seed,
                work_dir=out / "runs" / method / f"n{split.n_train:04d}_r{split.repeat:02d}",
            )  # fmt: skip
            row = _measure(context, split)
            frame = pd.concat([frame, pd.DataFrame([row])], ignore_index=True)
            _write_frame(comparison, frame[list(COMPARISON_COLUMNS)])
            logger.info(
                "%s N=%d repeat=%d: AUC %.3f, balanced accuracy %.3f, %.1f s%s",
                method, split.n_train, split.repeat, row["auc"], row["balanced_accuracy"],
                row["seconds"], "" if row["converged"] else " (not converged)",
            )  # fmt: skip
            measured.append(float(row["seconds"]))
            if report is not None:
                report(_progress_line(row, len(measured), total, measured))
    return _finish(out, frame, config)


def _progress_line(row: Mapping[str, Any], k: int, total: int, seconds: list[float]) -> str:
    """``compare: run 3 of 24: finetune N=10 repeat 0: AUC 0.712 (12 s; about 4 min left)``."""
    left = (total - k) * sum(seconds) / len(seconds)
    eta = f"about {left / 60:.0f} min left" if left >= 90 else f"about {left:.0f} s left"
    return (
        f"compare: run {k} of {total}: {row['method']} N={row['n_train']} repeat "
        f"{row['repeat']}: AUC {row['auc']:.3f} ({row['seconds']:.0f} s; "
        f"{eta if k < total else 'done'})"
    )


def _measure(context: MethodContext, split: TransferSplit) -> dict[str, Any]:
    start = time.perf_counter()
    result, failure = _run_one(context)
    seconds = time.perf_counter() - start
    n_test = len(split.test)
    point = dict.fromkeys(("auc", "balanced_accuracy", "accuracy"), math.nan)
    if result is not None:
        probs = np.asarray(result.probs, dtype=float)
        if probs.shape != (n_test, len(context.classes)):
            raise DataFormatError(
                f"method {context.method!r}: expected probabilities of shape "
                f"({n_test}, {len(context.classes)}), got {probs.shape}"
            )
        point = classification_metrics(
            split.test.frame["label"].astype(str).to_numpy(), probs,
            classes=context.classes, groups=split.test.subjects, n_boot=0,
        ).point  # fmt: skip
    return {
        "method": context.method,
        "n_train": split.n_train,
        "repeat": split.repeat,
        "auc": point["auc"],
        "balanced_accuracy": point["balanced_accuracy"],
        "accuracy": point["accuracy"],
        "converged": bool(result is not None and result.converged),
        "seconds": round(seconds, 2),
        "n_test": n_test,
        "test_subjects_hash": split.test_hash,
        "n_fit": len(split.train),
        "n_val": len(split.val),
        "notes": failure if result is None else result.notes,
    }


def _finish(out: Path, frame: pd.DataFrame, config: TransferConfig) -> TransferResult:
    order = {m: i for i, m in enumerate(config.methods)}
    frame = frame.assign(_o=frame["method"].map(order).fillna(len(order)))
    frame = frame.sort_values(["_o", "n_train", "repeat"]).drop(columns="_o").reset_index(drop=True)
    frame["converged"] = frame["converged"].astype(str).str.lower().isin(["true", "1", "1.0"])
    paths = {"comparison": _write_frame(out / "comparison.csv", frame[list(COMPARISON_COLUMNS)])}
    summary = summarize_comparison(frame, metrics=list(_SUMMARY_METRICS))
    paths["summary"] = _write_frame(out / "summary.csv", summary)
    references = [m for m in ("scratch", "ridge", "regional_random") if m in set(frame["method"])]
    parts = [paired_differences(frame, reference=r) for r in references]
    differences = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    paths["differences"] = _write_frame(out / "differences.csv", differences)
    paths["figures"] = out / "figures"
    if len(frame):
        for metric in ("auc", "balanced_accuracy"):
            plot_learning_curve(
                frame, metric=metric, path=paths["figures"] / f"learning_curve_{metric}.png"
            )
    paths["splits"], paths["run"] = out / "splits.json", out / "run.json"
    return TransferResult(frame=frame, summary=summary, differences=differences, paths=paths)
