"""Tests of transmri.data.split: grouped, stratified, deterministic splits."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from transmri.data.split import (
    SplitIndices,
    balanced_subsample,
    check_leakage,
    kfold_splits,
    train_val_test_split,
)
from transmri.data.table import ScanTable
from transmri.errors import ConfigError, DataFormatError, DataLeakageError


def make_table(
    n_subjects: int = 60,
    *,
    scans_per_subject: int | list[int] = 2,
    labels: tuple[str, ...] = ("CN", "AD"),
    weights: tuple[float, ...] | None = None,
    unlabelled: bool = False,
) -> ScanTable:
    """An in-memory table: subject i has label labels[i % len] (or by weights)."""
    rows = []
    per = (
        scans_per_subject
        if isinstance(scans_per_subject, list)
        else [scans_per_subject] * n_subjects
    )
    if weights is None:
        subject_labels = [labels[i % len(labels)] for i in range(n_subjects)]
    else:
        counts = [round(w * n_subjects) for w in weights]
        subject_labels = [lab for lab, c in zip(labels, counts) for _ in range(c)]
    for i, lab in enumerate(subject_labels):
        for j in range(per[i]):
            rows.append(
                {
                    "path": f"/data/s{i:03d}_{j}.nii.gz",
                    "subject": f"s{i:03d}",
                    "label": None if unlabelled else lab,
                    "age": float(i),
                }
            )
    return ScanTable.from_frame(pd.DataFrame(rows), check_files=False, source="t.csv")


def subjects_of(table: ScanTable, positions: np.ndarray) -> set[str]:
    return set(np.asarray(table.subjects)[positions].tolist())


def label_fraction(table: ScanTable, positions: np.ndarray, label: str) -> float:
    labels = table.frame["label"].to_numpy()[positions]
    return float((labels == label).mean())


# ---------------------------------------------------------------- SplitIndices
def test_split_indices_round_trip_and_equality() -> None:
    s = SplitIndices(train=[0, 1, 4], val=[], test=[2, 3])
    d = s.as_dict()
    assert d == {"train": [0, 1, 4], "val": [], "test": [2, 3]}
    assert SplitIndices.from_dict(json.loads(json.dumps(d))) == s
    assert s.train.dtype == np.int64 and len(s) == 5
    assert s["test"].tolist() == [2, 3]


def test_split_indices_rejects_overlap() -> None:
    with pytest.raises(DataFormatError, match=r"positions \[1\] are in both 'train' and 'test'"):
        SplitIndices(train=[0, 1], val=[], test=[1])


def test_split_indices_rejects_bad_positions() -> None:
    with pytest.raises(DataFormatError, match=r"SplitIndices.val: expected positions >= 0"):
        SplitIndices(train=[0], val=[-1], test=[])
    with pytest.raises(DataFormatError, match="listed twice"):
        SplitIndices(train=[0, 0], val=[], test=[])
    with pytest.raises(DataFormatError, match="integer positions"):
        SplitIndices(train=[0.5], val=[], test=[])


def test_split_indices_from_dict_bad_keys() -> None:
    with pytest.raises(DataFormatError, match=r"expected keys \['train', 'val', 'test'\]"):
        SplitIndices.from_dict({"train": [0], "test": [1]})


def test_split_indices_unknown_split_key() -> None:
    with pytest.raises(KeyError, match="unknown split 'valid'"):
        SplitIndices(train=[0], val=[], test=[])["valid"]


# ------------------------------------------------------- train_val_test_split
def test_split_is_subject_disjoint_and_complete() -> None:
    table = make_table(60, scans_per_subject=[1 + i % 3 for i in range(60)])
    s = train_val_test_split(table, val_size=0.15, test_size=0.2, seed=3)
    all_pos = np.concatenate([s.train, s.val, s.test])
    assert sorted(all_pos.tolist()) == list(range(len(table)))
    tr, va, te = (subjects_of(table, p) for p in (s.train, s.val, s.test))
    assert not (tr & va) and not (tr & te) and not (va & te)


def test_split_sizes_close_to_requested() -> None:
    table = make_table(100, scans_per_subject=1)
    s = train_val_test_split(table, val_size=0.1, test_size=0.2, seed=0)
    assert abs(len(s.test) - 20) <= 3
    assert abs(len(s.val) - 10) <= 3


def test_split_is_stratified() -> None:
    table = make_table(90, labels=("CN", "AD", "MCI"), weights=(0.5, 0.3, 0.2))
    s = train_val_test_split(table, val_size=0.2, test_size=0.2, seed=1)
    for label, expected in (("CN", 0.5), ("AD", 0.3), ("MCI", 0.2)):
        for positions in (s.train, s.val, s.test):
            assert abs(label_fraction(table, positions, label) - expected) < 0.1


def test_split_is_deterministic_in_seed() -> None:
    table = make_table(60)
    a = train_val_test_split(table, seed=7)
    b = train_val_test_split(table, seed=7)
    c = train_val_test_split(table, seed=8)
    assert a == b
    assert a != c


def test_split_every_class_in_every_split_on_small_cohort() -> None:
    table = make_table(12, scans_per_subject=2)  # 6 subjects per class
    s = train_val_test_split(table, val_size=0.1, test_size=0.1, seed=0)
    for positions in (s.train, s.val, s.test):
        assert set(table.frame["label"].to_numpy()[positions]) == {"CN", "AD"}


@pytest.mark.parametrize("weights", [None, (0.75, 0.25)])
def test_split_tiny_cohort_gets_fewer_folds_not_a_sklearn_error(
    weights: tuple[float, float] | None,
) -> None:
    # 12 scans, one per subject: 10 folds for 0.1 is more than any class has scans;
    # scikit-learn used to refuse ("n_splits=10 cannot be greater than ...").
    table = make_table(12, scans_per_subject=1, weights=weights)
    s = train_val_test_split(table, val_size=0.1, test_size=0.1, seed=0)
    assert len(s) == 12
    assert (len(s.train), len(s.val), len(s.test)) == (8, 2, 2)
    for positions in (s.train, s.val, s.test):
        assert set(table.frame["label"].to_numpy()[positions]) == {"CN", "AD"}
    assert train_val_test_split(table, val_size=0.1, test_size=0.1, seed=0) == s


def test_carve_names_classes_when_no_fold_is_possible() -> None:
    from transmri.data.split import _carve

    y = np.array([0, 1], dtype=np.int64)
    groups = np.array(["s1", "s2"])
    with pytest.raises(
        DataFormatError,
        match=r"^t.csv: split: cannot carve a 0.10 split from scans per class "
        r"\{'CN': 1, 'AD': 1\}; some class needs at least 2 scans",
    ):
        _carve(y, groups, 0.1, 0, classes=["CN", "AD"], where="t.csv: split")


def test_import_does_not_load_scikit_learn() -> None:
    import subprocess
    import sys

    code = "import sys, transmri.data; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_split_val_zero_warns_and_is_empty() -> None:
    table = make_table(30)
    with pytest.warns(UserWarning, match="val_size=0: the validation split is empty"):
        s = train_val_test_split(table, val_size=0, test_size=0.2)
    assert len(s.val) == 0
    assert len(s.train) + len(s.test) == len(table)


def test_split_test_zero_warns() -> None:
    with pytest.warns(UserWarning, match="test_size=0: the test split is empty"):
        s = train_val_test_split(make_table(30), val_size=0.2, test_size=0)
    assert len(s.test) == 0 and len(s.val) > 0


def test_split_large_fraction() -> None:
    table = make_table(40, scans_per_subject=1)
    with pytest.warns(UserWarning, match="val_size=0"):
        s = train_val_test_split(table, val_size=0, test_size=0.7, seed=0)
    assert 24 <= len(s.test) <= 32


def test_split_too_few_subjects_names_class() -> None:
    table = make_table(20, labels=("CN", "AD"), weights=(0.9, 0.1))  # AD: 2 subjects
    with pytest.raises(
        DataFormatError,
        match=r"class 'AD' has 2 subject\(s\); a train/val/test split needs at least 3",
    ):
        train_val_test_split(table)


def test_split_two_subjects_enough_without_val() -> None:
    table = make_table(20, labels=("CN", "AD"), weights=(0.9, 0.1))
    with pytest.warns(UserWarning):
        s = train_val_test_split(table, val_size=0, test_size=0.2)
    assert set(table.frame["label"].to_numpy()[s.test]) == {"CN", "AD"}


def test_split_unlabelled_table_is_grouped() -> None:
    table = make_table(30, unlabelled=True)
    s = train_val_test_split(table, seed=0)
    tr, te = subjects_of(table, s.train), subjects_of(table, s.test)
    assert tr and te and not (tr & te)


def test_split_partly_unlabelled_needs_stratify_false() -> None:
    frame = make_table(20).frame.copy()
    frame.loc[3, "label"] = pd.NA
    table = ScanTable(frame, source="t.csv")
    with pytest.raises(DataFormatError, match=r"row 4.*missing label.*stratify=False"):
        train_val_test_split(table)
    s = train_val_test_split(table, stratify=False)
    assert len(s) == len(table)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"val_size": -0.1}, r"val_size: expected a number in \[0, 1\], got -0.1"),
        ({"test_size": 1.5}, r"test_size: expected a number in \[0, 1\], got 1.5"),
        ({"val_size": 0.5, "test_size": 0.5}, r"val_size \+ test_size: expected a sum < 1"),
        ({"seed": -1}, r"seed: expected an integer >= 0, got -1"),
    ],
)
def test_split_bad_arguments(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        train_val_test_split(make_table(20), **kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------ kfold
def test_kfold_test_folds_partition_the_table() -> None:
    table = make_table(40, scans_per_subject=1)
    folds = kfold_splits(table, k=5, repeats=2, seed=0)
    assert len(folds) == 10
    for r in range(2):
        tests = [f.test for f in folds[r * 5 : (r + 1) * 5]]
        joined = np.concatenate(tests)
        assert sorted(joined.tolist()) == list(range(40))  # disjoint and covering
    for f in folds:
        assert not subjects_of(table, f.train) & subjects_of(table, f.test)
        assert len(f.val) == 0
        assert set(table.frame["label"].to_numpy()[f.test]) == {"CN", "AD"}
    # repeats shuffle differently
    assert [f.test.tolist() for f in folds[:5]] != [f.test.tolist() for f in folds[5:]]


def test_kfold_grouped_with_validation() -> None:
    table = make_table(30, scans_per_subject=2)
    folds = kfold_splits(table, k=3, seed=1, val_size=0.2)
    for f in folds:
        tr, va, te = (subjects_of(table, p) for p in (f.train, f.val, f.test))
        assert va and not (tr & va) and not (tr & te) and not (va & te)
        assert len(f) == len(table)
        assert abs(len(f.val) - 12) <= 4


def test_kfold_deterministic() -> None:
    table = make_table(40)
    assert kfold_splits(table, k=4, seed=5) == kfold_splits(table, k=4, seed=5)


def test_kfold_too_few_subjects() -> None:
    table = make_table(20, weights=(0.8, 0.2))  # AD: 4 subjects
    with pytest.raises(DataFormatError, match=r"class 'AD' has 4 subject\(s\); a 5-fold split"):
        kfold_splits(table, k=5)


def test_kfold_bad_arguments() -> None:
    with pytest.raises(ConfigError, match=r"k: expected an integer >= 2, got 1"):
        kfold_splits(make_table(20), k=1)
    with pytest.raises(ConfigError, match=r"repeats: expected an integer >= 1, got 0"):
        kfold_splits(make_table(20), repeats=0)
    with pytest.raises(ConfigError, match=r"val_size: with k=2"):
        kfold_splits(make_table(20), k=2, val_size=0.6)


# ---------------------------------------------------------------- leakage
def test_check_leakage_passes_on_disjoint_sets() -> None:
    check_leakage(["a", "b"], {"c"})
    table = make_table(10)
    s = train_val_test_split(table, seed=0)
    check_leakage(table.subset(s.train), table.subset(s.test))


def test_check_leakage_names_shared_subjects() -> None:
    with pytest.raises(DataLeakageError, match=r"pretraining and test share 1 subject\(s\): 's2'"):
        check_leakage(["s1", "s2"], ["s2", "s3"], names=("pretraining", "test"))


def test_check_leakage_lists_first_ten_and_count() -> None:
    first = [f"s{i:02d}" for i in range(25)]
    with pytest.raises(
        DataLeakageError, match=r"share 25 subject\(s\): 's00'.*'s09' \.\.\. and 15 more"
    ):
        check_leakage(first, first)


def test_check_leakage_accepts_tables() -> None:
    table = make_table(10)
    with pytest.raises(DataLeakageError, match="train and test share"):
        check_leakage(table.subset([0, 1]), table.subset([1, 2]))


def test_check_leakage_rejects_single_string() -> None:
    with pytest.raises(TypeError, match="got a single str"):
        check_leakage("s1", ["s1"])


# ------------------------------------------------------------- subsample
def test_balanced_subsample_keeps_rows_in_step() -> None:
    table = make_table(40, labels=("CN", "AD"), weights=(0.75, 0.25))
    sub = balanced_subsample(table, 16, seed=0)
    assert len(sub) == 16
    assert sub.label_counts() == {"AD": 8, "CN": 8}
    # every row is an original row, whole: path, subject, label and age agree
    original = table.frame.set_index("path")
    for _, row in sub.frame.iterrows():
        ref = original.loc[row["path"]]
        assert (ref["subject"], ref["label"], ref["age"]) == (
            row["subject"],
            row["label"],
            row["age"],
        )


def test_balanced_subsample_spreads_over_subjects() -> None:
    table = make_table(20, scans_per_subject=3)  # 10 subjects per class
    sub = balanced_subsample(table, 20, seed=1)
    assert len(set(sub.subjects)) == 20  # one scan per subject before any second


def test_balanced_subsample_deterministic_and_seeded() -> None:
    table = make_table(40)
    a = balanced_subsample(table, 10, seed=3).paths
    assert a == balanced_subsample(table, 10, seed=3).paths
    assert a != balanced_subsample(table, 10, seed=4).paths


def test_balanced_subsample_odd_n() -> None:
    sub = balanced_subsample(make_table(20, scans_per_subject=1), 5, seed=0)
    assert sub.label_counts() == {"AD": 3, "CN": 2}


def test_balanced_subsample_errors() -> None:
    table = make_table(20, scans_per_subject=1, weights=(0.8, 0.2))  # AD: 4 scans
    with pytest.raises(DataFormatError, match=r"class 'AD' has 4 scan\(s\); .* needs 6"):
        balanced_subsample(table, 12, seed=0)
    with pytest.raises(ConfigError, match=r"n: expected at most 20"):
        balanced_subsample(table, 21, seed=0)
    with pytest.raises(ConfigError, match=r"n: expected an integer >= 1, got 0"):
        balanced_subsample(table, 0, seed=0)


def test_grouped_kfold_limits_k_by_the_smallest_class_and_keeps_subjects_together() -> None:
    from transmri.data.split import grouped_kfold

    y = np.array([0] * 12 + [1] * 6)
    groups = np.array([f"s{i // 2}" for i in range(18)])  # two scans per subject
    cv = grouped_kfold(y, groups, max_folds=5, seed=1)
    assert cv.get_n_splits() == 3  # class 1 has 3 subjects
    for train, test in cv.split(np.zeros(len(y)), y, groups):
        assert not set(groups[train]) & set(groups[test])
        assert set(y[test]) == {0, 1}
    assert grouped_kfold(y, groups, max_folds=2).get_n_splits() == 2
