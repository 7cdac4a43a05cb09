"""Tests of transmri.data.databunch.DataBunch on a tiny NIfTI cohort."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from tests.conftest import write_nifti
from transmri.data.augment import AugmentConfig
from transmri.data.databunch import DataBunch
from transmri.data.preprocess import PreprocessConfig, preprocess_scan
from transmri.data.table import ScanTable
from transmri.errors import ConfigError, DataFormatError, DataLeakageError

CONFIG = PreprocessConfig(target_shape=(16, 16, 16))


@pytest.fixture
def table(make_cohort: Callable[..., Path]) -> ScanTable:
    """24 scans of 12 subjects (2 scans each), 6 CN and 6 AD subjects."""
    return ScanTable.from_csv(make_cohort(24, (20, 24, 20), scans_per_subject=2), mask_col="mask")


def label_of_path(table: ScanTable) -> dict[str, str]:
    return dict(zip(table.paths, table.frame["label"].astype(str)))


# ------------------------------------------------------------- construction
def test_constructor_splits_without_reading_volumes(table: ScanTable) -> None:
    for p in table.paths:
        Path(p).unlink()  # any volume read would now fail
    data = DataBunch(table, CONFIG, val_size=0.2, test_size=0.2, seed=0)
    sizes = [len(data.splits[n]) for n in ("train", "val", "test")]
    assert sum(sizes) == 24 and all(sizes)
    tr, va, te = (set(data.subjects(n)) for n in ("train", "val", "test"))
    assert not (tr & va) and not (tr & te) and not (va & te)
    assert data.classes == ["AD", "CN"] and data.num_classes == 2
    assert data.input_shape == (16, 16, 16)


def test_twelve_scans_at_default_fractions_split(make_cohort: Callable[..., Path]) -> None:
    # Used to fail inside scikit-learn: "n_splits=10 cannot be greater than ...".
    tiny = ScanTable.from_csv(make_cohort(12, folder="tiny"), mask_col="mask")
    data = DataBunch(tiny, CONFIG, val_size=0.1, test_size=0.1, seed=42)
    assert [len(data.splits[n]) for n in ("train", "val", "test")] == [8, 2, 2]
    for name in ("train", "val", "test"):
        assert sorted(data.split_table(name).labels) == ["AD", "CN"]  # type: ignore[arg-type]


def test_split_tables_and_datasets_agree(table: ScanTable) -> None:
    data = DataBunch(table, CONFIG, seed=1)
    for name in ("train", "val", "test"):
        part = data.split_table(name)  # type: ignore[arg-type]
        ds = data.dataset(name)  # type: ignore[arg-type]
        assert part.paths == [table.paths[i] for i in data.splits[name]]
        assert ds.table.paths == part.paths
        truth = [data.classes.index(lab) for lab in part.frame["label"]]
        assert ds.labels.tolist() == truth
    assert data.train_ds is data.dataset("train")


def test_same_seed_same_split_other_seed_differs(table: ScanTable) -> None:
    a = DataBunch(table, CONFIG, seed=3)
    assert DataBunch(table, CONFIG, seed=3).splits == a.splits
    assert DataBunch(table, CONFIG, seed=4).splits != a.splits


def test_unknown_label_names_row(table: ScanTable) -> None:
    with pytest.raises(DataFormatError, match=r"row 3, column 'label': unknown label 'AD'"):
        DataBunch(table, CONFIG, classes=["CN", "MCI"])


def test_unlabelled_row_in_labelled_task(table: ScanTable) -> None:
    frame = table.frame.copy()
    frame.loc[5, "label"] = pd.NA
    with pytest.raises(
        DataFormatError, match=r"row 6, column 'label': missing label.*labelled task"
    ):
        DataBunch(table.with_frame(frame), CONFIG)


def test_class_with_too_few_subjects(table: ScanTable) -> None:
    keep = [
        i
        for i, (s, lab) in enumerate(zip(table.subjects, table.frame["label"]))
        if lab == "CN" or s in ("sub-001", "sub-003")
    ]
    with pytest.raises(
        DataFormatError,
        match=r"class 'AD' has 2 subject\(s\); a train/val/test split needs at least 3",
    ):
        DataBunch(table.subset(keep), CONFIG)


def test_unlabelled_task(table: ScanTable) -> None:
    frame = table.frame.copy()
    frame["label"] = pd.array([pd.NA] * len(frame), dtype="string")
    data = DataBunch(table.with_frame(frame), CONFIG)
    assert data.classes == [] and data.num_classes == 0
    assert set(data.train_ds.labels.tolist()) == {-1}
    with pytest.raises(DataFormatError, match="class weights need labels"):
        data.class_weights()
    with pytest.raises(ConfigError, match="balance: needs a labelled table"):
        DataBunch(table.with_frame(frame), CONFIG, balance=True)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"val_size": 1.2}, ConfigError, r"val_size: expected a number in \[0, 1\]"),
        ({"seed": -3}, ConfigError, r"seed: expected an integer >= 0, got -3"),
        ({"augment": "heavy"}, ConfigError, r"augmentation preset: expected one of"),
        ({"augment": 3}, ConfigError, r"augment: expected None, an AugmentConfig"),
        ({"targets": ("site",)}, DataFormatError, r"target column 'site' not found"),
        ({"targets": "age"}, ConfigError, r"targets: expected a sequence of column names"),
        ({"num_training_samples": 0}, ConfigError, r"num_training_samples: expected an integer"),
        ({"num_training_samples": 999}, ConfigError, r"num_training_samples: expected at most"),
        ({"balance": "yes"}, ConfigError, r"balance: expected True or False"),
        ({"cache_dir": 3}, ConfigError, r"cache_dir: expected a folder path"),
        ({"classes": "AD"}, ConfigError, r"classes: expected a sequence of label names"),
    ],
)
def test_bad_options(
    table: ScanTable, kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        DataBunch(table, CONFIG, **kwargs)  # type: ignore[arg-type]


def test_bad_table_and_config(table: ScanTable) -> None:
    with pytest.raises(TypeError, match="table: expected a ScanTable, got DataFrame"):
        DataBunch(table.frame, CONFIG)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="preprocessing: expected a PreprocessConfig"):
        DataBunch(table, {"target_shape": [16, 16, 16]})  # type: ignore[arg-type]


# -------------------------------------------------------------- subsampling
def test_num_training_samples_keeps_labels_in_step(table: ScanTable) -> None:
    full = DataBunch(table, CONFIG, seed=0)
    data = DataBunch(table, CONFIG, seed=0, num_training_samples=8)
    assert len(data.train_ds) == 8
    assert set(data.splits.train) <= set(full.splits.train)
    assert data.splits.val.tolist() == full.splits.val.tolist()
    truth = label_of_path(table)
    ds = data.train_ds
    for i in range(len(ds)):
        path = ds.table.paths[i]
        assert data.classes[int(ds.labels[i])] == truth[path]
    batch = next(iter(data.dataloader("train", 8, shuffle=True)))
    for idx, label in zip(batch["index"].tolist(), batch["label"].tolist()):
        assert data.classes[label] == truth[ds.table.paths[idx]]


def test_balance_equalises_training_labels(table: ScanTable) -> None:
    keep = [
        i
        for i, s in enumerate(table.subjects)
        if table.frame["label"][i] == "CN" or int(s[-3:]) < 9
    ]  # AD: 4 subj, CN: 6
    data = DataBunch(
        table.subset(keep), CONFIG, seed=0, val_size=0.15, test_size=0.15, balance=True
    )
    counts = data.split_table("train").label_counts()
    assert counts["AD"] == counts["CN"]
    truth = label_of_path(table)
    ds = data.train_ds
    assert [data.classes[i] for i in ds.labels] == [truth[p] for p in ds.table.paths]
    sub = DataBunch(table, CONFIG, seed=0, balance=True, num_training_samples=6)
    assert sub.split_table("train").label_counts() == {"AD": 3, "CN": 3}


# ----------------------------------------------------------------- loaders
def test_loaders_shapes_and_dtypes(table: ScanTable) -> None:
    data = DataBunch(table, CONFIG, seed=0, targets=("age", "sex"))
    data.build_dataloaders(bs=4)
    assert data.train_dl is not None and data.val_dl is not None and data.test_dl is not None
    batch = next(iter(data.train_dl))
    assert batch["image"].shape == (4, 1, 16, 16, 16)
    assert batch["image"].dtype == torch.float32
    assert batch["label"].dtype == torch.int64 and batch["label"].shape == (4,)
    assert batch["age"].dtype == torch.float32 and batch["sex"].dtype == torch.float32
    assert set(batch["sex"].tolist()) <= {0.0, 1.0}
    assert data.target_classes == {"sex": ["F", "M"]}


def test_val_and_test_loaders_keep_table_order(table: ScanTable) -> None:
    data = DataBunch(table, CONFIG, seed=0, val_size=0.2, test_size=0.2)
    data.build_dataloaders(bs=2)
    for name, loader in (("val", data.val_dl), ("test", data.test_dl)):
        assert loader is not None
        indices = torch.cat([b["index"] for b in loader]).tolist()
        assert indices == list(range(len(data.splits[name])))
        labels = torch.cat([b["label"] for b in loader]).tolist()
        assert labels == data.dataset(name).labels.tolist()  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"shuffle: the test loader is never shuffled"):
        data.dataloader("test", shuffle=True)


def test_train_loader_shuffles_reproducibly(table: ScanTable) -> None:
    data = DataBunch(table, CONFIG, seed=0, val_size=0.1, test_size=0.1)
    order = [torch.cat([b["index"] for b in data.dataloader("train", 4)]).tolist() for _ in "ab"]
    assert order[0] == order[1]
    assert order[0] != sorted(order[0])
    other = torch.cat([b["index"] for b in data.dataloader("train", 4, seed=9)]).tolist()
    assert other != order[0] and sorted(other) == sorted(order[0])


def test_dataloader_errors(table: ScanTable) -> None:
    with pytest.warns(UserWarning, match="val_size=0"):
        data = DataBunch(table, CONFIG, val_size=0, test_size=0.2)
    data.build_dataloaders(bs=4)
    assert data.val_dl is None
    with pytest.raises(ConfigError, match="the val split is empty"):
        data.dataloader("val")
    with pytest.raises(ConfigError, match=r"split: expected one of \['train', 'val', 'test'\]"):
        data.dataloader("valid")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="batch_size: expected an integer >= 1"):
        data.dataloader("train", 0)
    sampler = torch.utils.data.SequentialSampler(range(3))
    with pytest.raises(ConfigError, match=r"shuffle=False .* with a sampler"):
        data.dataloader("train", shuffle=True, sampler=sampler)
    loader = data.dataloader("train", 2, sampler=torch.utils.data.SequentialSampler(data.train_ds))
    assert torch.cat([b["index"] for b in loader]).tolist() == list(range(len(data.train_ds)))


def test_augmentation_only_on_train(table: ScanTable) -> None:
    data = DataBunch(table, CONFIG, seed=0, augment="standard")
    assert data.train_ds.transform is not None
    assert data.val_ds.transform is None and data.test_ds.transform is None
    test_item = data.test_ds[0]
    raw = preprocess_scan(data.test_ds.table.paths[0], data.test_ds.table.masks[0], CONFIG)
    np.testing.assert_array_equal(test_item["image"][0].numpy(), raw)
    raw_train = preprocess_scan(data.train_ds.table.paths[0], data.train_ds.table.masks[0], CONFIG)
    changed = [
        not np.array_equal(data.train_ds[0]["image"][0].numpy(), raw_train) for _ in range(4)
    ]
    assert any(changed)
    assert DataBunch(table, CONFIG, augment="none").train_ds.transform is None
    assert data.augment == AugmentConfig.preset("standard")


def test_augmented_loader_in_worker(table: ScanTable) -> None:
    data = DataBunch(table, CONFIG, seed=0, augment="light")
    batch = next(iter(data.dataloader("train", 4, num_workers=1)))
    assert batch["image"].shape == (4, 1, 16, 16, 16)


# ------------------------------------------------------------ statistics
def test_class_weights_are_inverse_frequency(table: ScanTable) -> None:
    ad = [i for i, lab in enumerate(table.frame["label"]) if lab == "AD"]
    cn = [i for i, lab in enumerate(table.frame["label"]) if lab == "CN"]
    # train: 2 AD scans (1 subject), 6 CN scans (3 subjects)
    data = DataBunch.from_splits(
        train=table.subset(ad[:2] + cn[:6]),
        val=table.subset(ad[2:4] + cn[6:8]),
        preprocessing=CONFIG,
    )
    weights = data.class_weights()
    assert weights.dtype == torch.float32
    assert torch.allclose(weights.mean(), torch.tensor(1.0))
    assert data.classes == ["AD", "CN"]
    assert torch.allclose(weights, torch.tensor([1.5, 0.5]))  # 1/2 : 1/6, mean 1
    assert weights[0] > weights[1]  # the rare class weighs more


def test_normalize_uses_training_brain_voxels_only(table: ScanTable) -> None:
    config = PreprocessConfig(target_shape=(16, 16, 16), scaling="none")
    data = DataBunch(table, config, seed=0, val_size=0.2, test_size=0.2)
    for name in ("val", "test"):
        for path in data.split_table(name).paths:  # type: ignore[arg-type]
            img = nib.load(path)
            write_nifti(Path(path), np.asarray(img.dataobj) * 50.0, affine=img.affine)
    train_values = np.concatenate(
        [v[v != 0] for v in (data.train_ds.volume(i) for i in range(len(data.train_ds)))]
    ).astype(np.float64)
    assert not data.is_normalized
    mean, std = data.normalize()
    assert data.is_normalized
    assert mean == pytest.approx(train_values.mean(), rel=1e-6)
    assert std == pytest.approx(train_values.std(), rel=1e-5)
    item = data.val_ds[0]
    raw = data.val_ds.volume(0)
    np.testing.assert_allclose(item["image"][0].numpy(), (raw - mean) / std, rtol=1e-5, atol=1e-5)
    assert data.train_ds.normalization == data.test_ds.normalization == (mean, std)


def test_print_stats(table: ScanTable, capsys: pytest.CaptureFixture[str]) -> None:
    data = DataBunch(table, CONFIG, seed=0)
    text = data.print_stats()
    assert capsys.readouterr().out.strip() == text.strip()
    stats = data.stats()
    assert stats["images"].sum() == 24
    assert stats.loc["train", "AD"] + stats.loc["train", "CN"] == len(data.splits.train)
    assert stats.loc["test", "subjects"] == len(data.subjects("test"))
    assert "images" in text and "subjects" in text and "AD" in text


def test_show_sample_saves_png(table: ScanTable, tmp_path: Path) -> None:
    data = DataBunch(table, CONFIG, seed=0)
    out = tmp_path / "sample.png"
    fig = data.show_sample("val", 0, path=out)
    assert len(fig.axes) == 3
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "val[0]: subject" in fig.get_suptitle()


def test_input_shape_from_first_volume(table: ScanTable) -> None:
    data = DataBunch(table, PreprocessConfig(target_shape=None))
    assert data.input_shape == (20, 24, 20)


# ------------------------------------------------------------------ cache
def test_prepare_fills_cache_and_datasets_read_it(table: ScanTable, tmp_path: Path) -> None:
    data = DataBunch(table, CONFIG, seed=0, cache_dir=tmp_path / "cache")
    assert data.prepare(n_jobs=1, progress=False) == 24
    assert data.prepare(progress=False) == 0
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 24
    batch = next(iter(data.dataloader("val", 2)))
    assert batch["image"].shape[1:] == (1, 16, 16, 16)
    # values come from the float16 cache, not from a fresh float32 preprocessing
    ds = data.val_ds
    fresh = preprocess_scan(ds.table.paths[0], ds.table.masks[0], CONFIG)
    np.testing.assert_array_equal(batch["image"][0, 0].numpy(), fresh.astype(np.float16))
    assert not np.array_equal(batch["image"][0, 0].numpy(), fresh)
    assert DataBunch(table, CONFIG).prepare() == 0  # no cache: nothing to do


# ---------------------------------------------------------- persistence
def test_save_load_round_trip(table: ScanTable, tmp_path: Path) -> None:
    data = DataBunch(
        table,
        PreprocessConfig(target_shape=(16, 16, 16), scaling="none"),
        seed=5,
        augment="light",
        targets=("age", "sex"),
        cache_dir=tmp_path / "cache",
        num_training_samples=10,
    )
    data.normalize()
    path = data.save(tmp_path / "run" / "data.json")
    manifest = json.loads(path.read_text())
    assert manifest["kind"] == "transmri.DataBunch" and manifest["seed"] == 5
    assert not list(path.parent.glob(".*.tmp"))
    loaded = DataBunch.load(path)
    assert loaded.splits == data.splits
    pd.testing.assert_frame_equal(loaded.table.frame, data.table.frame)
    assert loaded.classes == data.classes and loaded.targets == data.targets
    assert loaded.target_classes == data.target_classes
    assert loaded.normalization == data.normalization and loaded.is_normalized
    assert loaded.preprocessing == data.preprocessing and loaded.augment == data.augment
    assert loaded.cache_dir == data.cache_dir and loaded.seed == 5
    assert loaded.split_method == data.split_method
    assert data.split_method["num_training_samples"] == 10
    a, b = data.test_ds[1], loaded.test_ds[1]
    assert torch.equal(a["image"], b["image"]) and int(a["label"]) == int(b["label"])
    assert float(a["age"]) == float(b["age"])


def test_load_errors(tmp_path: Path, table: ScanTable) -> None:
    with pytest.raises(FileNotFoundError, match="DataBunch manifest not found"):
        DataBunch.load(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataFormatError, match=r"bad.json: not a JSON manifest"):
        DataBunch.load(bad)
    manifest = DataBunch(table, CONFIG).to_dict()
    del manifest["splits"]
    bad.write_text(json.dumps(manifest))
    with pytest.raises(DataFormatError, match=r"bad.json: missing key\(s\) \['splits'\]"):
        DataBunch.load(bad)
    manifest = DataBunch(table, CONFIG).to_dict()
    manifest["format_version"] = 99
    bad.write_text(json.dumps(manifest))
    with pytest.raises(DataFormatError, match="format_version 99 not supported; expected 1"):
        DataBunch.load(bad)
    manifest = DataBunch(table, CONFIG).to_dict()
    manifest["splits"]["test"] = [999]
    bad.write_text(json.dumps(manifest))
    with pytest.raises(DataFormatError, match=r"splits.test: position 999 is beyond"):
        DataBunch.load(bad)
    manifest = DataBunch(table, CONFIG).to_dict()
    manifest["splits"] = {"train": [0, 2], "val": [], "test": [1]}  # sub-000 twice
    bad.write_text(json.dumps(manifest))
    with pytest.raises(DataLeakageError, match=r"train and test share 1 subject\(s\): 'sub-000'"):
        DataBunch.load(bad)


# ------------------------------------------------------- from_splits / kfold
def test_from_splits_checks_leakage(table: ScanTable) -> None:
    with pytest.raises(DataLeakageError, match=r"train and test share 1 subject\(s\): 'sub-000'"):
        DataBunch.from_splits(train=table.subset(range(0, 12)), test=table.subset([1, 12, 13]))


def test_from_splits_keeps_given_splits(table: ScanTable) -> None:
    train, val, test = (
        table.subset(range(0, 16)),
        table.subset(range(16, 20)),
        table.subset(range(20, 24)),
    )
    data = DataBunch.from_splits(train=train, val=val, test=test, preprocessing=CONFIG)
    assert data.split_table("train").paths == train.paths
    assert data.split_table("val").paths == val.paths
    assert data.split_table("test").paths == test.paths
    only = DataBunch.from_splits(train=train, preprocessing=CONFIG)
    assert len(only.splits.val) == 0 and len(only.splits.test) == 0


def test_kfold_yields_disjoint_test_folds(table: ScanTable) -> None:
    folds = list(DataBunch.kfold(table, CONFIG, k=3, repeats=2, seed=0))
    assert len(folds) == 6
    for r in range(2):
        tests = [set(f.split_table("test").paths) for f in folds[3 * r : 3 * r + 3]]
        assert set().union(*tests) == set(table.paths)
        assert sum(len(t) for t in tests) == 24
    for number, f in enumerate(folds):
        assert not set(f.subjects("train")) & set(f.subjects("test"))
        assert len(f.splits.val) == 0
        assert (f.split_method["repeat"], f.split_method["fold"]) == divmod(number, 3)


def test_kfold_with_validation(table: ScanTable) -> None:
    folds = list(DataBunch.kfold(table, CONFIG, k=3, val_size=0.2, seed=1))
    for f in folds:
        parts = [set(f.subjects(n)) for n in ("train", "val", "test")]  # type: ignore[arg-type]
        assert all(parts) and not (parts[0] & parts[1]) and not (parts[0] & parts[2])


# ------------------------------------------------------------ data integrity
def test_a_subject_with_two_labels_is_refused_naming_it(table: ScanTable) -> None:
    frame = table.frame.copy()
    frame.loc[1, "label"] = "AD" if frame.loc[0, "label"] == "CN" else "CN"  # sub-000's 2nd scan
    two = table.with_frame(frame)
    message = r"row 2, column 'label': subject 'sub-000' has scans labelled 'CN' \(row 1\) and 'AD'"
    with pytest.raises(DataFormatError, match=message):
        DataBunch(two, CONFIG)
    with pytest.raises(DataFormatError, match=message):
        DataBunch.from_splits(train=two, classes=["AD", "CN"])


def test_prepare_refuses_byte_identical_scans_across_splits(
    table: ScanTable, tmp_path: Path
) -> None:
    data = DataBunch(table, CONFIG, seed=0)
    train, test = data.split_table("train"), data.split_table("test")
    frame = table.frame.copy()
    position = table.paths.index(test.paths[0])
    frame.loc[position, "path"] = str(tmp_path / "copy.nii.gz")
    Path(frame.loc[position, "path"]).write_bytes(Path(train.paths[0]).read_bytes())
    copied = DataBunch(table.with_frame(frame), CONFIG, seed=0, cache_dir=tmp_path / "cache")
    with pytest.raises(
        DataLeakageError,
        match=rf"train and test hold byte-identical scans: subject '{train.subjects[0]}' "
        rf".* and subject '{test.subjects[0]}' \(.*copy.nii.gz\)",
    ):
        copied.prepare(progress=False)
    assert not (tmp_path / "cache").exists()
