"""Turn a ``data.source`` / ``data.target`` section into a :class:`~transmri.data.ScanTable`.

Each adapter of :mod:`transmri.datasets` is called with ``path`` and the
section's ``options``; then ``filter``, ``label_map`` and ``labels`` are
applied in that order. A ``synthetic`` cohort is generated first (reused
when it already exists with the same settings).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from transmri.data import ScanTable
from transmri.errors import DataFormatError
from transmri.experiment.schema import ExperimentConfig, SourceConfig

__all__ = [
    "PATH_OPTIONS",
    "check_encoder_source",
    "check_source_paths",
    "config_roles",
    "keep_classes",
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


def _has_mask_column(csv_path: Path) -> bool:
    if not csv_path.is_file():
        return False  # the adapter names the problem
    from transmri.datasets._common import read_table

    return "mask" in read_table(csv_path, what="scan table").columns


def skipped_rows(table: ScanTable, positions: Sequence[int], reasons: list[str]) -> pd.DataFrame:
    """A ``skipped`` frame (item, reason) for the rows at ``positions`` of ``table``."""
    items = [str(table.frame["path"].iloc[i]) for i in list(positions)]
    return pd.DataFrame(
        {"item": pd.Series(items, dtype=str), "reason": pd.Series(reasons, dtype=str)}
    )


def keep_classes(table: ScanTable, labels: Sequence[str], *, drop: bool, where: str) -> ScanTable:
    """Check every row's label against ``labels``; drop the others only when ``drop``.

    Raises:
        DataFormatError: a row with another label or none (naming the rows and
            values, with counts), unless ``drop``; with ``drop``, a label that
            differs from a wanted one only in case or spaces, or a wanted label
            that never occurs.
    """
    wanted = [str(x) for x in labels]
    present = set(table.labels)
    absent = [x for x in wanted if x not in present]
    if absent:
        raise DataFormatError(
            f"{where}.labels: label(s) {absent} asked for but not found in {table.source}; "
            f"labels present: {sorted(present)}"
        )
    frame = table.frame
    values = ["" if pd.isna(v) else str(v) for v in frame["label"].tolist()]
    other = [i for i, v in enumerate(values) if v not in wanted]
    if not other:
        return table
    rows = [int(r) for r in frame["row"].tolist()]
    counts: dict[str, list[int]] = {}
    for i in other:
        counts.setdefault(values[i], []).append(rows[i])

    def shown(label: str) -> str:
        found = counts[label]
        first = ", ".join(str(r) for r in found[:5]) + (" ..." if len(found) > 5 else "")
        name = repr(label) if label else "no label"
        return f"{name} ({len(found)} row(s): {first})"

    folded = {w.strip().casefold(): w for w in wanted}
    near = [v for v in counts if v and v.strip().casefold() in folded]
    if near:
        label = near[0]
        raise DataFormatError(
            f"{table.source}, {where}.labels: label {label!r} differs from "
            f"{folded[label.strip().casefold()]!r} only in case or spaces: "
            f"{shown(label)}; fix the table or map it with {where}.label_map"
        )
    summary = "; ".join(shown(v) for v in sorted(counts))
    if not drop:
        raise DataFormatError(
            f"{table.source}, column 'label': {len(other)} of {len(table)} row(s) have a "
            f"label outside {where}.labels {wanted}: {summary}; fix them, map them with "
            f"{where}.label_map, or set {where}.drop_other_labels: true to drop them"
        )
    import warnings

    warnings.warn(
        f"{where}: dropped {len(other)} of {len(table)} scans with a label outside "
        f"{wanted} ({where}.drop_other_labels): {summary}",
        UserWarning,
        stacklevel=2,
    )
    dropped = set(other)
    keep = [i for i in range(len(values)) if i not in dropped]
    reasons = [
        f"{where}.drop_other_labels: " + ("no label" if not values[i] else f"label {values[i]!r}")
        for i in other
    ]
    return table.with_frame(frame.iloc[keep], skipped=skipped_rows(table, other, reasons))


def _select_rows(
    table: ScanTable, rule: dict[str, tuple[str, ...]] | Any, *, where: str, keep: bool
) -> ScanTable:
    """Keep (``keep``) or drop the rows whose column holds one of the values; record the rest."""
    kept = np.ones(len(table), dtype=bool)
    reasons = ["" for _ in range(len(table))]
    for column, values in rule.items():
        if column not in table.frame.columns:
            raise DataFormatError(
                f"{where}: column {column!r} not in the table; columns are "
                f"{sorted(map(str, table.frame.columns))}"
            )
        hit = table.frame[column].astype(str).isin(values).to_numpy()
        out = ~hit if keep else hit
        for i in np.flatnonzero(kept & out).tolist():
            value = str(table.frame[column].iloc[i])
            reasons[i] = f"{where}: {column} {value!r} " + ("not kept" if keep else "excluded")
        kept &= ~out
    dropped = np.flatnonzero(~kept).tolist()
    return table.with_frame(
        table.frame.iloc[np.flatnonzero(kept)],
        skipped=skipped_rows(table, dropped, [reasons[i] for i in dropped]),
    )


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
        if source.adapter == "csv" and "mask_col" not in options and _has_mask_column(path):
            options["mask_col"] = "mask"  # a column called mask is the masks unless said otherwise
        table = _adapters()[source.adapter](path, **options)
    where = f"data.{role}"
    if source.filter:
        table = _select_rows(table, source.filter, where=f"{where}.filter", keep=True)
    if source.exclude:
        table = _select_rows(table, source.exclude, where=f"{where}.exclude", keep=False)
    if source.label_map:
        table = table.map_labels(source.label_map)
    if source.labels is not None:
        table = keep_classes(table, source.labels, drop=source.drop_other_labels, where=where)
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
