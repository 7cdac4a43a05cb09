"""The plan of a transfer benchmark: its settings and every draw of subjects.

:func:`plan_splits` makes every draw of a
:class:`~transmri.transfer.config.TransferConfig` without reading a volume,
and :func:`held_out_subjects` says which subjects a pretraining set must avoid.

Draws (all deterministic in ``config.seed``):

- test subjects: label-stratified, whole subjects; the same for every method
  and ``N`` of a repeat and, unless ``vary_test``, for every repeat (one
  held-out set, so that a pretraining set can avoid all of it);
- training subset: :func:`~transmri.data.balanced_subsample` of the other
  subjects; with ``nested`` (default) its seed depends on the repeat only, so
  the subset of a smaller ``N`` lies inside that of a larger ``N``;
- inner validation: ``val_fraction`` of each class's subjects of the subset
  (at least one per class, at least one left for training), whole subjects.

Example:
    >>> config = TransferConfig(n_train=(10, 20), repeats=2, test_size=50)  # doctest: +SKIP
    >>> pretraining = table.frame[~table.frame["subject"].isin(
    ...     held_out_subjects(table, config))]  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from transmri.data import ScanTable, balanced_subsample
from transmri.errors import ConfigError, DataFormatError
from transmri.transfer.config import TransferConfig

__all__ = [
    "TransferSplit",
    "held_out_subjects",
    "plan_splits",
    "seed_for",
    "subjects_hash",
]


@dataclass(frozen=True)
class TransferSplit:
    """The scans of one draw: repeat ``repeat``, training size ``n_train``."""

    repeat: int
    n_train: int
    train: ScanTable
    val: ScanTable
    test: ScanTable

    @property
    def test_hash(self) -> str:
        """First 12 hex digits of the sha256 of the sorted test subjects."""
        return subjects_hash(self.test.subjects)


# ------------------------------------------------------------------- draws
def seed_for(*parts: int) -> int:
    """A 32-bit seed derived from integers (e.g. the benchmark seed, a repeat and an ``N``)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


def subjects_hash(subjects: Sequence[str]) -> str:
    """First 12 hex digits of the sha256 of the sorted, distinct subjects."""
    text = "\n".join(sorted(set(subjects)))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def _subject_classes(table: ScanTable) -> dict[str, list[str]]:
    """Class -> its subjects (in table order); a subject with two labels is an error."""
    seen: dict[str, str] = {}
    for subject, label in zip(table.subjects, table.frame["label"].astype(str)):
        if seen.setdefault(subject, label) != label:
            raise DataFormatError(
                f"{table.source}: subject {subject!r} has scans labelled {seen[subject]!r} and "
                f"{label!r}; a subject-grouped, stratified draw needs one label per subject"
            )
    out: dict[str, list[str]] = {c: [] for c in table.labels}
    for subject, label in seen.items():
        out[label].append(subject)
    return out


def _test_subjects(table: ScanTable, config: TransferConfig, repeat: int) -> list[str]:
    by_class = _subject_classes(table)
    total = sum(len(s) for s in by_class.values())
    wanted = (
        int(config.test_size)
        if not isinstance(config.test_size, float)
        else math.floor(config.test_size * total + 0.5)
    )
    if not len(by_class) <= wanted < total:
        raise ConfigError(
            f"test_size: expected between {len(by_class)} (one subject per class) and "
            f"{total - 1} test subjects for {table.source} ({total} subjects), got {wanted}"
        )
    # Largest-remainder allocation keeps the class proportions; every class gets one.
    exact = {c: wanted * len(s) / total for c, s in by_class.items()}
    quota = {c: max(1, math.floor(v)) for c, v in exact.items()}
    for c in sorted(exact, key=lambda c: exact[c] - math.floor(exact[c]), reverse=True):
        if sum(quota.values()) >= wanted:
            break
        quota[c] += 1
    rng = np.random.default_rng(seed_for(config.seed, repeat if config.vary_test else 0, 1))
    chosen: list[str] = []
    for c in sorted(by_class):
        chosen.extend(rng.permutation(np.array(by_class[c]))[: quota[c]].tolist())
    return sorted(chosen)


def _carve_val(subset: ScanTable, fraction: float, seed: int) -> tuple[ScanTable, ScanTable]:
    rng = np.random.default_rng(seed)
    val_subjects: set[str] = set()
    for cls, subjects in sorted(_subject_classes(subset).items()):
        if len(subjects) < 2:
            raise DataFormatError(
                f"{subset.source}: class {cls!r} has {len(subjects)} subject(s) in a training "
                f"subset of {len(subset)} scans; an inner validation set needs at least 2 "
                f"subjects per class (raise n_train)"
            )
        k = min(len(subjects) - 1, max(1, math.floor(fraction * len(subjects) + 0.5)))
        val_subjects.update(rng.permutation(np.array(subjects))[:k].tolist())
    is_val = np.array([s in val_subjects for s in subset.subjects])
    return subset.subset(np.flatnonzero(~is_val)), subset.subset(np.flatnonzero(is_val))


def _check_target(target: ScanTable) -> None:
    if not isinstance(target, ScanTable):
        raise TypeError(f"target: expected a ScanTable, got {type(target).__name__}")
    target.require_labels()
    if len(target.labels) < 2:
        raise DataFormatError(
            f"{target.source}: a transfer benchmark needs at least 2 classes, found {target.labels}"
        )


def held_out_subjects(target: ScanTable, config: TransferConfig) -> list[str]:
    """Every subject a :func:`transfer_curve` run with ``config`` tests on (sorted).

    A pretraining set must avoid all of them; with ``vary_test=False`` this is
    the one held-out test set.
    """
    _check_target(target)
    repeats = range(config.repeats) if config.vary_test else range(1)
    return sorted({s for r in repeats for s in _test_subjects(target, config, r)})


def plan_splits(target: ScanTable, config: TransferConfig) -> list[TransferSplit]:
    """Every draw of a benchmark, repeat by repeat, ``N`` by ``N`` (no I/O).

    Raises:
        ConfigError: a ``test_size`` that leaves no training subject.
        DataFormatError: too few scans of a class for an ``N``, a subject with
            two labels, or a class with one subject in a subset.
    """
    _check_target(target)
    out: list[TransferSplit] = []
    for r in range(config.repeats):
        test_subjects = set(_test_subjects(target, config, r))
        is_test = np.array([s in test_subjects for s in target.subjects])
        test = target.subset(np.flatnonzero(is_test))
        rest = target.subset(np.flatnonzero(~is_test))
        for n in config.n_train:
            draw = seed_for(config.seed, r, 2) if config.nested else seed_for(config.seed, r, 2, n)
            if n > len(rest):
                raise ConfigError(
                    f"n_train: {n} scans asked for, but {target.source} has {len(rest)} scans "
                    f"outside the {len(test_subjects)} test subjects"
                )
            subset = balanced_subsample(rest, n, seed=draw)
            train, val = _carve_val(subset, config.val_fraction, seed_for(config.seed, r, 3, n))
            out.append(TransferSplit(repeat=r, n_train=n, train=train, val=val, test=test))
    return out
