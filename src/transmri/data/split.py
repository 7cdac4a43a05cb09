"""Subject-grouped, label-stratified splits of a :class:`ScanTable`.

A subject's scans always land in the same split, so a model is never tested
on a subject it was trained on; labels are stratified with scikit-learn's
``StratifiedGroupKFold``; every split is deterministic in ``seed``.

Example:
    >>> split = train_val_test_split(table, val_size=0.1, test_size=0.2)  # doctest: +SKIP
    >>> train = table.subset(split.train)  # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from transmri._validation import check_fraction, check_positive_int
from transmri.data.table import ScanTable
from transmri.errors import ConfigError, DataFormatError, DataLeakageError

__all__ = [
    "SPLIT_NAMES",
    "SplitIndices",
    "balanced_subsample",
    "check_leakage",
    "grouped_kfold",
    "kfold_splits",
    "train_val_test_split",
]

SPLIT_NAMES = ("train", "val", "test")

IntArray = npt.NDArray[np.int64]


def _as_positions(name: str, value: object) -> IntArray:
    arr = np.asarray(value)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise DataFormatError(
            f"SplitIndices.{name}: expected a 1-D sequence of integer positions, "
            f"got dtype {arr.dtype} and shape {arr.shape}"
        )
    if (arr < 0).any():
        raise DataFormatError(
            f"SplitIndices.{name}: expected positions >= 0, found {int(arr.min())}"
        )
    if len(np.unique(arr)) != len(arr):
        raise DataFormatError(f"SplitIndices.{name}: a position is listed twice")
    return arr.astype(np.int64)


@dataclass(frozen=True, eq=False)
class SplitIndices:
    """Row positions (0-based, into a :class:`ScanTable`) of each split.

    Args:
        train: positions of the training scans.
        val: positions of the validation scans (may be empty).
        test: positions of the test scans (may be empty).

    Raises:
        DataFormatError: a position is negative, repeated, or in two splits.

    Example:
        >>> s = SplitIndices(train=[0, 1], val=[], test=[2])
        >>> s.as_dict()
        {'train': [0, 1], 'val': [], 'test': [2]}
    """

    train: IntArray
    val: IntArray
    test: IntArray

    def __post_init__(self) -> None:
        for name in SPLIT_NAMES:
            object.__setattr__(self, name, _as_positions(name, getattr(self, name)))
        for i, a in enumerate(SPLIT_NAMES):
            for b in SPLIT_NAMES[i + 1 :]:
                shared = np.intersect1d(getattr(self, a), getattr(self, b))
                if len(shared):
                    raise DataFormatError(
                        f"SplitIndices: positions {shared[:10].tolist()} are in both "
                        f"'{a}' and '{b}'"
                    )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SplitIndices):
            return NotImplemented
        return all(np.array_equal(getattr(self, n), getattr(other, n)) for n in SPLIT_NAMES)

    __hash__ = None  # type: ignore[assignment]

    def __getitem__(self, split: str) -> IntArray:
        if split not in SPLIT_NAMES:
            raise KeyError(f"unknown split {split!r}; expected one of {list(SPLIT_NAMES)}")
        positions: IntArray = getattr(self, split)
        return positions

    def __len__(self) -> int:
        return len(self.train) + len(self.val) + len(self.test)

    def as_dict(self) -> dict[str, list[int]]:
        """The positions as plain lists (JSON-able)."""
        return {n: [int(i) for i in getattr(self, n)] for n in SPLIT_NAMES}

    @classmethod
    def from_dict(cls, data: Mapping[str, Sequence[int]]) -> SplitIndices:
        """Inverse of :meth:`as_dict`; a missing or extra key is an error."""
        keys = set(data)
        if keys != set(SPLIT_NAMES):
            raise DataFormatError(
                f"split positions: expected keys {list(SPLIT_NAMES)}, found {sorted(keys)}"
            )
        arrays = {k: np.asarray(data[k], dtype=np.int64) for k in SPLIT_NAMES}
        return cls(train=arrays["train"], val=arrays["val"], test=arrays["test"])


# ---------------------------------------------------------------------- helpers
def _strata(table: ScanTable, *, stratify: bool, what: str) -> IntArray:
    """Integer stratum per row: its label index, or 0 for all when not stratifying."""
    labels = table.frame["label"]
    if not stratify or labels.isna().all():
        return np.zeros(len(table), dtype=np.int64)
    if labels.isna().any():
        try:
            table.require_labels()
        except DataFormatError as exc:
            raise DataFormatError(
                f"{exc} - a stratified {what} needs every row labelled; "
                "drop the unlabelled rows or pass stratify=False"
            ) from None
    classes = table.labels
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[str(v)] for v in labels.tolist()], dtype=np.int64)


def _check_subjects_per_class(
    table: ScanTable, y: IntArray, needed: int, what: str, *, stratified: bool
) -> None:
    subjects = np.asarray(table.subjects)
    if not stratified:
        n = len(np.unique(subjects))
        if n < needed:
            raise DataFormatError(
                f"{table.source}: the table has {n} subject(s); a {what} needs at least {needed}"
            )
        return
    for i, cls in enumerate(table.labels):
        n = len(np.unique(subjects[y == i]))
        if n < needed:
            raise DataFormatError(
                f"{table.source}: class {cls!r} has {n} subject(s); "
                f"a {what} needs at least {needed}"
            )


def _folds(y: IntArray, groups: npt.NDArray[np.str_], n_splits: int, seed: int) -> list[IntArray]:
    """Test positions (into ``y``) of each stratified, grouped fold."""
    # Imported here: scikit-learn takes seconds to import, and `import transmri.data`
    # should not pay for it until a split is made.
    from sklearn.model_selection import StratifiedGroupKFold

    n_splits = min(n_splits, len(np.unique(groups)))
    cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # Too-small classes are checked (with a better message) before we get here.
        warnings.simplefilter("ignore", UserWarning)
        return [np.asarray(t, dtype=np.int64) for _, t in cv.split(y, y, groups)]


def _carve(
    y: IntArray,
    groups: npt.NDArray[np.str_],
    fraction: float,
    seed: int,
    *,
    classes: Sequence[str],
    where: str,
) -> tuple[IntArray, IntArray]:
    """Split positions ``0..len(y)-1`` into (taken, rest) with ~``fraction`` taken.

    The fold count follows from the fraction (0.1 -> 10 folds, one taken); among
    the folds, one holding every class and closest to the wanted size is chosen.
    A cohort too small for that many folds (scikit-learn refuses more folds than
    the largest class has scans) gets fewer, larger folds: 12 scans at 0.1 give
    6 folds of about 2 scans rather than an error.
    """
    everything = np.arange(len(y), dtype=np.int64)
    if fraction <= 0:
        return np.zeros(0, dtype=np.int64), everything
    small = fraction if fraction <= 0.5 else 1.0 - fraction
    counts = np.bincount(y)
    n_splits = min(max(2, round(1.0 / small)), int(counts.max()))
    if n_splits < 2:
        found = ", ".join(
            f"{classes[i] if i < len(classes) else '<all>'!r}: {int(c)}"
            for i, c in enumerate(counts)
            if c
        )
        raise DataFormatError(
            f"{where}: cannot carve a {fraction:.2f} split from scans per class {{{found}}}; "
            "some class needs at least 2 scans from 2 subjects - add scans or lower the "
            "number of splits (val_size=0 or test_size=0)"
        )
    folds = _folds(y, groups, n_splits, seed)
    present = set(np.unique(y).tolist())
    want = small * len(y)

    def score(fold: IntArray) -> tuple[int, float]:
        missing = len(present - set(np.unique(y[fold]).tolist()))
        return missing, abs(len(fold) - want)

    best = min(range(len(folds)), key=lambda i: score(folds[i]))
    chosen = np.sort(folds[best])
    others = np.setdiff1d(everything, chosen)
    return (chosen, others) if fraction <= 0.5 else (others, chosen)


# ------------------------------------------------------------------- splitting
def train_val_test_split(
    table: ScanTable,
    *,
    val_size: float = 0.1,
    test_size: float = 0.1,
    seed: int = 42,
    stratify: bool = True,
) -> SplitIndices:
    """Split a table into train / validation / test by subject, stratified by label.

    The test set is carved first, then the validation set from what remains.
    The fraction sets the number of ``StratifiedGroupKFold`` folds
    (``test_size=0.1`` -> 10 folds, one of which becomes the test set), so the
    realised fractions are close to, not exactly, the ones asked for; on very
    small cohorts each fold holds at least one subject, and the fold count is
    lowered to what the largest class allows (12 scans, 6 per class, at
    ``val_size=test_size=0.1`` give about 8/2/2 scans rather than an error). An unlabelled table
    (or ``stratify=False``) gets a grouped split without stratification.

    Args:
        table: the scans to split.
        val_size: fraction of scans for validation, in [0, 1); 0 gives an
            empty validation set (with a warning, since early stopping and
            model selection then have nothing to use).
        test_size: fraction of scans for testing, in [0, 1); 0 gives an empty
            test set (with a warning).
        seed: seeds the fold shuffling; the same seed gives the same split.
        stratify: keep label proportions alike across splits.

    Returns:
        The row positions of each split, sorted.

    Raises:
        ConfigError: a fraction outside [0, 1) or ``val_size + test_size >= 1``.
        DataFormatError: a class has fewer subjects than there are non-empty
            splits, or a stratified split of a partly unlabelled table.

    Example:
        >>> split = train_val_test_split(table, test_size=0.2, seed=0)  # doctest: +SKIP
    """
    val_size = check_fraction("val_size", val_size, inclusive=True)
    test_size = check_fraction("test_size", test_size, inclusive=True)
    seed = check_positive_int("seed", seed, minimum=0)
    if val_size + test_size >= 1:
        raise ConfigError(
            f"val_size + test_size: expected a sum < 1 so that training keeps some scans, "
            f"got {val_size} + {test_size} = {val_size + test_size}"
        )
    if len(table) == 0:
        raise DataFormatError(f"{table.source}: cannot split an empty table")
    for name, size in (("val_size", val_size), ("test_size", test_size)):
        if size == 0:
            split = "validation" if name == "val_size" else "test"
            warnings.warn(
                f"{name}=0: the {split} split is empty"
                + (
                    "; early stopping and model selection have no data"
                    if split == "validation"
                    else "; no held-out evaluation is possible"
                ),
                UserWarning,
                stacklevel=2,
            )
    y = _strata(table, stratify=stratify, what="train/val/test split")
    stratified = stratify and not table.frame["label"].isna().all()
    names = ["train"] + [n for n, s in (("val", val_size), ("test", test_size)) if s > 0]
    _check_subjects_per_class(
        table, y, len(names), "/".join(names) + " split", stratified=stratified
    )
    groups = np.asarray(table.subjects)

    classes = table.labels if stratified else []
    where = f"{table.source}: train/val/test split"
    test, rest = _carve(y, groups, test_size, seed, classes=classes, where=where)
    val = np.zeros(0, dtype=np.int64)
    if val_size > 0:
        val_in_rest, train_in_rest = _carve(
            y[rest], groups[rest], val_size / (1 - test_size), seed, classes=classes, where=where
        )
        val, rest = rest[val_in_rest], rest[train_in_rest]
    return SplitIndices(train=np.sort(rest), val=np.sort(val), test=np.sort(test))


def kfold_splits(
    table: ScanTable,
    *,
    k: int = 5,
    repeats: int = 1,
    seed: int = 42,
    val_size: float = 0.0,
    stratify: bool = True,
) -> list[SplitIndices]:
    """Repeated, subject-grouped, stratified k-fold splits (for small cohorts).

    Within one repeat the ``k`` test folds are disjoint and together cover
    every scan; repeat ``r`` shuffles with ``seed + r``. With ``val_size > 0``
    a validation set (that fraction of all scans) is carved from each fold's
    training part, grouped and stratified too.

    Args:
        table: the scans to split.
        k: number of folds (>= 2).
        repeats: how many times to repeat the k-fold with a new shuffle.
        seed: seed of the first repeat.
        val_size: fraction of all scans used for validation in each fold.
        stratify: keep label proportions alike across folds.

    Returns:
        ``k * repeats`` splits, repeat by repeat, fold by fold.

    Raises:
        ConfigError: ``k < 2``, ``repeats < 1`` or a bad ``val_size``.
        DataFormatError: a class has fewer than ``k`` subjects (``k + 1`` with
            a validation set).

    Example:
        >>> folds = kfold_splits(table, k=5, repeats=3, seed=0)  # doctest: +SKIP
        >>> len(folds)  # doctest: +SKIP
        15
    """
    k = check_positive_int("k", k, minimum=2)
    repeats = check_positive_int("repeats", repeats)
    seed = check_positive_int("seed", seed, minimum=0)
    val_size = check_fraction("val_size", val_size, inclusive=True)
    if val_size + 1.0 / k >= 1:
        raise ConfigError(
            f"val_size: with k={k} each test fold holds ~{1 / k:.2f} of the scans, "
            f"so val_size must be < {1 - 1 / k:.2f}; got {val_size}"
        )
    y = _strata(table, stratify=stratify, what=f"{k}-fold split")
    stratified = stratify and not table.frame["label"].isna().all()
    needed = k + (1 if val_size > 0 else 0)
    what = f"{k}-fold split" + (" with a validation set" if val_size > 0 else "")
    _check_subjects_per_class(table, y, needed, what, stratified=stratified)
    groups = np.asarray(table.subjects)
    everything = np.arange(len(table), dtype=np.int64)
    out: list[SplitIndices] = []
    for r in range(repeats):
        for test in _folds(y, groups, k, seed + r):
            test = np.sort(test)
            rest = np.setdiff1d(everything, test)
            val = np.zeros(0, dtype=np.int64)
            if val_size > 0:
                frac = val_size * len(table) / len(rest)
                taken, kept = _carve(
                    y[rest],
                    groups[rest],
                    min(frac, 0.9),
                    seed + r,
                    classes=table.labels if stratified else [],
                    where=f"{table.source}: {what}",
                )
                val, rest = rest[taken], rest[kept]
            out.append(SplitIndices(train=np.sort(rest), val=np.sort(val), test=test))
    return out


# --------------------------------------------------------------------- leakage
def _subject_set(value: ScanTable | Iterable[str]) -> set[str]:
    if isinstance(value, ScanTable):
        return set(value.subjects)
    if isinstance(value, str):
        raise TypeError("expected a collection of subject ids or a ScanTable, got a single str")
    return {str(s) for s in value}


def check_leakage(
    first: ScanTable | Collection[str],
    second: ScanTable | Collection[str],
    *,
    names: tuple[str, str] = ("train", "test"),
) -> None:
    """Raise if two sets of scans share a subject.

    Works within one study (train vs test) and across studies (the subjects
    an encoder was pretrained on vs a target test set).

    Args:
        first: a :class:`ScanTable` or a collection of subject ids.
        second: a :class:`ScanTable` or a collection of subject ids.
        names: how to call the two sets in the message.

    Raises:
        DataLeakageError: listing the first 10 shared subjects and their count.

    Example:
        >>> check_leakage(["s1", "s2"], ["s3"])
        >>> check_leakage(["s1", "s2"], ["s2"], names=("pretraining", "test"))
        Traceback (most recent call last):
        ...
        transmri.errors.DataLeakageError: pretraining and test share 1 subject(s): 's2'
    """
    shared = sorted(_subject_set(first) & _subject_set(second))
    if shared:
        shown = ", ".join(repr(s) for s in shared[:10])
        more = f" ... and {len(shared) - 10} more" if len(shared) > 10 else ""
        raise DataLeakageError(
            f"{names[0]} and {names[1]} share {len(shared)} subject(s): {shown}{more}"
        )


# ------------------------------------------------------------------ subsample
def balanced_subsample(table: ScanTable, n: int, *, seed: int) -> ScanTable:
    """Draw ``n`` scans with (near-)equal counts per label, spread over subjects.

    Each label gets ``n // n_labels`` scans (the first ``n % n_labels`` labels
    in sorted order get one more). Within a label, subjects are drawn in a
    seeded random order and every subject gives one scan before any gives a
    second, so the subsample holds as many distinct subjects as it can. Rows
    are returned whole and in table order: labels, files and extra columns
    stay in step.

    Args:
        table: the scans to draw from (every row labelled, or none).
        n: number of scans wanted.
        seed: seeds the draw.

    Returns:
        A new :class:`ScanTable` with ``n`` rows.

    Raises:
        ConfigError: ``n`` < 1 or larger than the table.
        DataFormatError: a label has fewer scans than its share, or the table
            is partly unlabelled.

    Example:
        >>> small = balanced_subsample(train_table, 20, seed=0)  # doctest: +SKIP
    """
    n = check_positive_int("n", n)
    seed = check_positive_int("seed", seed, minimum=0)
    if n > len(table):
        raise ConfigError(f"n: expected at most {len(table)} (the table's scans), got {n}")
    y = _strata(table, stratify=True, what="balanced subsample")
    names = table.labels or ["<unlabelled>"]
    n_classes = len(names)
    quotas = [n // n_classes + (1 if i < n % n_classes else 0) for i in range(n_classes)]
    rng = np.random.default_rng(seed)
    subjects = np.asarray(table.subjects)
    chosen: list[int] = []
    for cls_index, (name, quota) in enumerate(zip(names, quotas)):
        positions = np.flatnonzero(y == cls_index)
        if len(positions) < quota:
            raise DataFormatError(
                f"{table.source}: class {name!r} has {len(positions)} scan(s); a balanced "
                f"subsample of {n} over {n_classes} class(es) needs {quota}"
            )
        order = rng.permutation(positions)
        subject_rank = {s: i for i, s in enumerate(dict.fromkeys(subjects[order].tolist()))}
        seen: dict[str, int] = {}
        keys = []
        for p in order.tolist():
            s = str(subjects[p])
            keys.append((seen.get(s, 0), subject_rank[s]))
            seen[s] = seen.get(s, 0) + 1
        ranked = [p for _, p in sorted(zip(keys, order.tolist()))]
        chosen.extend(ranked[:quota])
    return table.subset(sorted(chosen))


def grouped_kfold(
    labels: npt.ArrayLike, groups: npt.ArrayLike, *, max_folds: int = 5, seed: int = 0
) -> Any:
    """A shuffled ``StratifiedGroupKFold`` for model selection inside a training set.

    ``k`` is ``max_folds``, lowered to the number of subjects (``groups``) of
    the smallest class so that every fold can hold each class, and at least 2.
    Used by the linear methods of the transfer benchmark and by the recipes'
    probe to choose their regularisation without touching other scans.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    y, g = np.asarray(labels), np.asarray(groups)
    smallest = min(np.unique(g[y == c]).size for c in np.unique(y))
    k = max(2, min(int(max_folds), smallest))
    return StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=int(seed) % 2**32)
