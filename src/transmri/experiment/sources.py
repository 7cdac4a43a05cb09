"""Turn a ``data.source`` / ``data.target`` section into a :class:`~transmri.data.ScanTable`.

Each adapter of :mod:`transmri.datasets` is called with ``path`` and the
section's ``options``; then ``filter``, ``label_map`` and ``labels`` are
applied in that order. A ``synthetic`` cohort is generated first (reused
when it already exists with the same settings).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from transmri.data import ScanTable
from transmri.errors import DataFormatError
from transmri.experiment.schema import ExperimentConfig, SourceConfig

__all__ = [
    "PATH_OPTIONS",
    "check_encoder_source",
    "check_source_paths",
    "config_roles",
    "load_cohort",
    "source_path",
]

#: Options holding a file or folder path, resolved against the experiment file's folder.
PATH_OPTIONS: tuple[str, ...] = ("collection_csv", "mask", "demographics", "root")


def config_roles(config: ExperimentConfig) -> tuple[str, ...]:
    """The cohorts the experiment uses: ``("source", "target")``, or ``("target",)``.

    With ``pretrain.encoder`` the source cohort is not used (even when given).
    """
    if config.pretrain.encoder is not None or config.data.source is None:
        return ("target",)
    return ("source", "target")


def check_encoder_source(config: ExperimentConfig) -> None:
    """Check ``pretrain.encoder`` (a zoo name or an encoder folder) without converting it.

    Raises:
        ConfigError: an unknown zoo name (the known ones are listed), or a
            path that is not an encoder folder (the missing file is named).
        ImportError: a zoo encoder whose package is missing (names the extra).
    """
    if config.pretrain.encoder is not None:
        from transmri.pretrained.zoo import check_encoder_ref

        check_encoder_ref(
            config.pretrain.encoder, base_dir=config.base_dir, where="pretrain.encoder"
        )


def source_path(config: ExperimentConfig, role: str) -> Path:
    """Where cohort ``role`` (``"source"``/``"target"``) lies (or is generated to)."""
    source: SourceConfig = getattr(config.data, role)
    resolved = config.resolve(source.path)
    return resolved if resolved is not None else config.run_dir / "data" / role


def check_source_paths(config: ExperimentConfig) -> None:
    """Check that the data paths of both cohorts exist (synthetic ones are made later).

    Raises:
        FileNotFoundError: naming the key and the path.
    """
    for role in config_roles(config):
        source: SourceConfig = getattr(config.data, role)
        if source.adapter == "synthetic":
            continue
        path = source_path(config, role)
        if not path.exists():
            raise FileNotFoundError(f"data.{role}.path: {path} does not exist")
        for key in PATH_OPTIONS:
            value = source.options.get(key)
            if isinstance(value, str) and not (resolved := config.resolve(value)).exists():  # type: ignore[union-attr]
                raise FileNotFoundError(f"data.{role}.options.{key}: {resolved} does not exist")


def _adapters() -> dict[str, Callable[..., ScanTable]]:
    from transmri.datasets import from_bids, get_adni, get_idss, get_ixi, get_ppmi

    return {
        "csv": ScanTable.from_csv,
        "bids": from_bids,
        "adni": get_adni,
        "ppmi": get_ppmi,
        "idss": get_idss,
        "ixi": get_ixi,
    }


def _synthetic(config: ExperimentConfig, role: str, path: Path) -> ScanTable:
    from transmri.datasets import (
        SyntheticCohortConfig,
        load_synthetic_cohort,
        make_synthetic_cohort,
    )

    options: dict[str, Any] = dict(getattr(config.data, role).options)
    options.setdefault("seed", config.seed + (0 if role == "source" else 1))
    options.setdefault("site", f"synthetic-{role}")
    # Distinct subject ids across the two cohorts, or they would look like the
    # same people to the leakage checks.
    options.setdefault("subject_prefix", f"{role}-sub-")
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
    make_synthetic_cohort(path, SyntheticCohortConfig(**options))
    return load_synthetic_cohort(path)


def load_cohort(config: ExperimentConfig, role: str) -> ScanTable:
    """Read cohort ``role`` (``"source"`` or ``"target"``) as the experiment describes it.

    Raises:
        FileNotFoundError: a data path does not exist.
        DataFormatError: the adapter's errors; a ``filter`` column that does not
            exist; no scan left after filtering.
    """
    source: SourceConfig = getattr(config.data, role)
    path = source_path(config, role)
    if source.adapter == "synthetic":
        table = _synthetic(config, role, path)
    else:
        options = dict(source.options)
        for key in PATH_OPTIONS:
            if isinstance(options.get(key), str):
                options[key] = str(config.resolve(options[key]))
        table = _adapters()[source.adapter](path, **options)
    where = f"data.{role}"
    if source.filter:
        keep = np.ones(len(table), dtype=bool)
        for column, values in source.filter.items():
            if column not in table.frame.columns:
                raise DataFormatError(
                    f"{where}.filter: column {column!r} not in the table; columns are "
                    f"{sorted(map(str, table.frame.columns))}"
                )
            keep &= table.frame[column].astype(str).isin(values).to_numpy()
        table = table.subset(np.flatnonzero(keep))
    if source.label_map:
        table = table.map_labels(source.label_map)
    if source.labels is not None:
        table = table.keep_labels(list(source.labels))
    if len(table) == 0:
        raise DataFormatError(f"{where}: no scan left from {path} after the adapter and filters")
    if source.max_scans is not None and len(table) > source.max_scans:
        if table.frame["label"].notna().all():
            from transmri.data import balanced_subsample

            table = balanced_subsample(table, source.max_scans, seed=config.seed)
        else:
            rng = np.random.default_rng(config.seed)
            table = table.subset(np.sort(rng.permutation(len(table))[: source.max_scans]))
    return table
