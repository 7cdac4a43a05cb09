"""Tests of transmri.data.dataset.MRIDataset on tiny NIfTI cohorts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from transmri.data.dataset import MRIDataset, infer_target_classes
from transmri.data.preprocess import PreprocessConfig, preprocess_scan
from transmri.data.table import ScanTable
from transmri.errors import ConfigError, DataFormatError

CONFIG = PreprocessConfig(target_shape=(16, 16, 16))


@pytest.fixture
def table(make_cohort: Callable[..., Path]) -> ScanTable:
    return ScanTable.from_csv(make_cohort(6, (20, 24, 20)), mask_col="mask")


class RecordingCache:
    """Stands in for VolumeCache: records which files were asked for."""

    def __init__(self, config: PreprocessConfig) -> None:
        self.config = config
        self.calls: list[tuple[str, str | None]] = []

    def get(self, path: str, mask: str | None) -> np.ndarray:
        self.calls.append((path, mask))
        return np.full((16, 16, 16), 0.5, dtype=np.float16)

    def get_tensor(self, path: str, mask: str | None) -> torch.Tensor:
        return torch.from_numpy(self.get(path, mask).astype(np.float32))[None]


def test_item_shapes_dtypes_and_labels(table: ScanTable) -> None:
    ds = MRIDataset(table, CONFIG)
    assert len(ds) == 6 and ds.classes == ["AD", "CN"]
    item = ds[1]
    assert item["image"].shape == (1, 16, 16, 16)
    assert item["image"].dtype == torch.float32
    assert item["label"].dtype == torch.int64 and item["label"].ndim == 0
    assert item["index"] == 1
    expected = preprocess_scan(table.paths[1], table.masks[1], CONFIG)
    np.testing.assert_array_equal(item["image"][0].numpy(), expected)
    # cohort labels alternate CN, AD, ...; sorted classes put AD first
    assert ds.labels.tolist() == [1, 0, 1, 0, 1, 0]
    assert ds.subjects == table.subjects
    assert ds.table is table
    assert ds[-1]["index"] == 5


def test_classes_fix_the_label_order(table: ScanTable) -> None:
    ds = MRIDataset(table, CONFIG, classes=["CN", "AD"])
    assert ds.labels.tolist() == [0, 1, 0, 1, 0, 1]
    assert int(ds[0]["label"]) == 0 and ds.num_classes == 2


def test_label_outside_classes_names_the_row(table: ScanTable) -> None:
    with pytest.raises(
        DataFormatError, match=r"scans.csv, row 2, column 'label': unknown label 'AD'; expected"
    ):
        MRIDataset(table, CONFIG, classes=["CN"])


def test_unlabelled_rows_get_minus_one(table: ScanTable) -> None:
    frame = table.frame.copy()
    frame.loc[2, "label"] = pd.NA
    ds = MRIDataset(table.with_frame(frame), CONFIG)
    assert ds.labels[2] == -1
    assert int(ds[2]["label"]) == -1


def test_numeric_and_categorical_targets(table: ScanTable) -> None:
    frame = table.frame.copy()
    frame["age"] = frame["age"].astype(object)
    frame.loc[3, "age"] = ""
    frame.loc[4, "sex"] = None
    ds = MRIDataset(table.with_frame(frame), CONFIG, targets=("age", "sex"))
    assert ds.target_classes == {"sex": ["F", "M"]}
    item = ds[0]
    assert item["age"].dtype == torch.float32 and float(item["age"]) == 50.0
    assert float(item["sex"]) == 1.0  # cohort sex alternates M, F; sorted: F=0, M=1
    assert ds.target_values("sex")[:4].tolist() == [1.0, 0.0, 1.0, 0.0]
    assert np.isnan(float(ds[3]["age"]))
    assert np.isnan(ds.target_values("sex")[4])


def test_categorical_target_indices_follow_sorted_values(table: ScanTable) -> None:
    ds = MRIDataset(table, CONFIG, targets=("sex",))
    sexes = table.frame["sex"].tolist()
    expected = [["F", "M"].index(s) for s in sexes]
    assert ds.target_values("sex").tolist() == expected
    assert [float(ds[i]["sex"]) for i in range(len(ds))] == expected


def test_target_classes_shared_across_splits(table: ScanTable) -> None:
    cats = infer_target_classes(table, ["age", "sex"])
    assert cats == {"sex": ["F", "M"]}
    only_m = table.subset([i for i, s in enumerate(table.frame["sex"]) if s == "M"])
    ds = MRIDataset(only_m, CONFIG, targets=("sex",), target_classes=cats)
    assert set(ds.target_values("sex").tolist()) == {1.0}


def test_unknown_categorical_value_names_row(table: ScanTable) -> None:
    with pytest.raises(
        DataFormatError, match=r"row 2, column 'sex': unknown value 'F'; expected one of \['M'\]"
    ):
        MRIDataset(table, CONFIG, targets=("sex",), target_classes={"sex": ["M"]})


def test_missing_and_reserved_target_columns(table: ScanTable) -> None:
    with pytest.raises(DataFormatError, match=r"target column 'site' not found; extra columns"):
        MRIDataset(table, CONFIG, targets=("site",))
    with pytest.raises(ConfigError, match=r"targets: 'label' is reserved"):
        MRIDataset(table, CONFIG, targets=("label",))
    with pytest.raises(ConfigError, match=r"targets: expected a sequence of column names"):
        MRIDataset(table, CONFIG, targets="age")


def test_reads_through_cache(table: ScanTable) -> None:
    cache = RecordingCache(CONFIG)
    ds = MRIDataset(table, CONFIG, cache=cache)  # type: ignore[arg-type]
    item = ds[2]
    assert cache.calls == [(table.paths[2], table.masks[2])]
    assert item["image"].dtype == torch.float32
    assert torch.all(item["image"] == 0.5)


def test_cache_with_other_config_is_refused(table: ScanTable) -> None:
    cache = RecordingCache(PreprocessConfig(target_shape=(8, 8, 8)))
    with pytest.raises(ConfigError, match="cache: built for another preprocessing config"):
        MRIDataset(table, CONFIG, cache=cache)  # type: ignore[arg-type]


def test_normalization_then_transform(table: ScanTable) -> None:
    seen: list[torch.Tensor] = []

    def transform(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.clone())
        return x * 2

    cache = RecordingCache(CONFIG)
    ds = MRIDataset(
        table,
        CONFIG,
        cache=cache,  # type: ignore[arg-type]
        normalization=(0.25, 0.5),
        transform=transform,
    )
    item = ds[0]
    assert torch.allclose(seen[0], torch.full((1, 16, 16, 16), 0.5))  # (0.5 - 0.25) / 0.5
    assert torch.allclose(item["image"], torch.full((1, 16, 16, 16), 1.0))


def test_transform_output_checked(table: ScanTable) -> None:
    ds = MRIDataset(table, CONFIG, transform=lambda x: x[0])
    with pytest.raises(DataFormatError, match=r"transform returned shape \(16, 16, 16\)"):
        ds[0]
    ds = MRIDataset(table, CONFIG, transform=lambda x: "oops")
    with pytest.raises(DataFormatError, match="transform returned str; expected a tensor"):
        ds[0]


@pytest.mark.parametrize("value", [(0.0, 0.0), (1.0,), (float("nan"), 1.0), "z"])
def test_bad_normalization(table: ScanTable, value: object) -> None:
    with pytest.raises(ConfigError, match=r"normalization: expected \(mean, std\)"):
        MRIDataset(table, CONFIG, normalization=value)  # type: ignore[arg-type]


def test_bad_arguments(table: ScanTable) -> None:
    with pytest.raises(TypeError, match="table: expected a ScanTable, got DataFrame"):
        MRIDataset(table.frame, CONFIG)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="preprocessing: expected a PreprocessConfig"):
        MRIDataset(table, {"target_shape": None})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"classes: expected distinct names"):
        MRIDataset(table, CONFIG, classes=["AD", "AD", "CN"])
    with pytest.raises(ConfigError, match="transform: expected a callable"):
        MRIDataset(table, CONFIG, transform=3)  # type: ignore[arg-type]
    ds = MRIDataset(table, CONFIG)
    with pytest.raises(IndexError, match="index 6 out of range for a dataset of 6 scans"):
        ds[6]
    with pytest.raises(KeyError, match="unknown target 'age'"):
        ds.target_values("age")


def test_missing_file_surfaces_with_path(table: ScanTable) -> None:
    Path(table.paths[0]).unlink()
    ds = MRIDataset(table, CONFIG)
    with pytest.raises(FileNotFoundError, match=r"scan000.nii.gz"):
        ds[0]


def test_works_in_worker_process(table: ScanTable) -> None:
    ds = MRIDataset(table, CONFIG, targets=("age",))
    loader = DataLoader(ds, batch_size=3, num_workers=1, shuffle=False)
    batches = list(loader)
    assert [b["image"].shape for b in batches] == [(3, 1, 16, 16, 16)] * 2
    assert torch.cat([b["index"] for b in batches]).tolist() == list(range(6))
    assert torch.cat([b["label"] for b in batches]).tolist() == ds.labels.tolist()
