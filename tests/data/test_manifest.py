"""Tests of transmri.data.manifest: the JSON manifest of a DataBunch, format and checks.

End-to-end ``DataBunch.save`` / ``DataBunch.load`` (same splits, same items,
content checks such as leakage) are tested in ``test_databunch.py``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from transmri.data.augment import AugmentConfig
from transmri.data.databunch import DataBunch
from transmri.data.manifest import MANIFEST_FORMAT_VERSION, MANIFEST_KIND, DataBunchManifest
from transmri.data.preprocess import PreprocessConfig
from transmri.data.split import SplitIndices
from transmri.data.table import ScanTable
from transmri.errors import DataFormatError

CONFIG = PreprocessConfig(target_shape=(16, 16, 16))


@pytest.fixture
def manifest(make_cohort: Callable[..., Path], tmp_path: Path) -> DataBunchManifest:
    """12 scans with an extra nullable integer column, split 8 / 2 / 2."""
    table = ScanTable.from_csv(make_cohort(12), mask_col="mask")
    frame = table.frame.copy()
    frame["visit"] = pd.array([1, None] * 6, dtype="Int64")
    return DataBunchManifest(
        table=table.with_frame(frame),
        splits=SplitIndices(
            train=np.arange(8, dtype=np.int64),
            val=np.array([8, 9], dtype=np.int64),
            test=np.array([10, 11], dtype=np.int64),
        ),
        preprocessing=CONFIG,
        augment=AugmentConfig.preset("light"),
        seed=7,
        classes=["AD", "CN"],
        targets=["age", "sex"],
        target_classes={"sex": ["F", "M"]},
        normalization=(0.25, 1.5),
        cache_dir=str(tmp_path / "cache"),
        split_method={"method": "from_splits"},
    )


def test_to_dict_is_json_with_every_key(manifest: DataBunchManifest) -> None:
    data = manifest.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["format_version"] == MANIFEST_FORMAT_VERSION and data["kind"] == MANIFEST_KIND
    assert data["source"] == manifest.table.source
    assert data["splits"] == {"train": list(range(8)), "val": [8, 9], "test": [10, 11]}
    assert data["normalization"] == [0.25, 1.5]
    assert data["table"]["dtypes"]["visit"] == "Int64"
    assert data["table"]["columns"] == list(manifest.table.frame.columns)


def test_from_dict_round_trip_keeps_extra_columns(manifest: DataBunchManifest) -> None:
    back = DataBunchManifest.from_dict(json.loads(json.dumps(manifest.to_dict())))
    pd.testing.assert_frame_equal(back.table.frame, manifest.table.frame)
    assert back.table.source == manifest.table.source
    assert back.splits == manifest.splits
    assert back.preprocessing == manifest.preprocessing and back.augment == manifest.augment
    assert (back.seed, back.classes, back.targets) == (7, ["AD", "CN"], ["age", "sex"])
    assert back.target_classes == {"sex": ["F", "M"]}
    assert back.normalization == (0.25, 1.5)
    assert back.cache_dir == manifest.cache_dir and back.split_method == manifest.split_method
    assert back.to_dict() == manifest.to_dict()


def test_manifest_is_frozen(manifest: DataBunchManifest) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        manifest.seed = 3  # type: ignore[misc]


def test_old_manifest_without_split_method(manifest: DataBunchManifest) -> None:
    data = manifest.to_dict()
    del data["split_method"]
    assert DataBunchManifest.from_dict(data).split_method == {"method": "unknown"}


def test_save_load_same_bytes_as_databunch(
    make_cohort: Callable[..., Path], tmp_path: Path
) -> None:
    table = ScanTable.from_csv(make_cohort(24, scans_per_subject=2), mask_col="mask")
    data = DataBunch(table, CONFIG, seed=5, augment="light", targets=("age", "sex"))
    first = data.save(tmp_path / "a" / "data.json")
    second = DataBunchManifest.load(first).save(tmp_path / "b" / "data.json")
    assert second == tmp_path / "b" / "data.json"
    assert first.read_bytes() == second.read_bytes()
    assert json.loads(first.read_text()) == data.to_dict()
    assert not list(second.parent.glob(".*.tmp"))


def _with(manifest: DataBunchManifest, **changes: Any) -> dict[str, Any]:
    data = manifest.to_dict()
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: [m.to_dict()], r"where: expected a JSON object, got list"),
        (
            lambda m: {k: v for k, v in m.to_dict().items() if k not in ("seed", "table")},
            r"where: missing key\(s\) \['table', 'seed'\]",
        ),
        (
            lambda m: _with(m, format_version=2),
            r"where: format_version 2 not supported; expected 1",
        ),
        (
            lambda m: _with(m, normalization=[1.0]),
            r"where: malformed manifest \(IndexError: ",
        ),
        (
            lambda m: _with(m, table={"columns": ["path"]}),
            r"where: malformed manifest \(KeyError: 'data'\)",
        ),
        (
            lambda m: _with(m, table={"columns": ["path", "label"], "data": [["a.nii", "CN"]]}),
            r"manifest table lacks column 'subject'",
        ),
    ],
)
def test_from_dict_format_errors(
    manifest: DataBunchManifest, change: Callable[[DataBunchManifest], Any], message: str
) -> None:
    with pytest.raises(DataFormatError, match=message):
        DataBunchManifest.from_dict(change(manifest), where="where")


def test_load_errors(tmp_path: Path, manifest: DataBunchManifest) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope.json: DataBunch manifest not found"):
        DataBunchManifest.load(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"\xff\xfe{")
    with pytest.raises(DataFormatError, match=r"bad.json: not a JSON manifest"):
        DataBunchManifest.load(bad)
    data = manifest.to_dict()
    data["format_version"] = 99
    bad.write_text(json.dumps(data))
    with pytest.raises(DataFormatError, match=r"bad.json: format_version 99 not supported"):
        DataBunchManifest.load(bad)


def test_save_failure_names_file_and_leaves_nothing(
    tmp_path: Path, manifest: DataBunchManifest
) -> None:
    target = tmp_path / "out" / "data.json"
    target.mkdir(parents=True)  # a folder where the file should go: the rename fails
    with pytest.raises(
        IsADirectoryError, match=r"manifest: .*out/data.json: cannot write \(it is a folder"
    ):
        manifest.save(target)
    assert target.is_dir() and not list(target.iterdir())
    assert not list(tmp_path.rglob(".*.tmp"))


def test_save_under_a_file_names_the_file_in_the_way(
    tmp_path: Path, manifest: DataBunchManifest
) -> None:
    (tmp_path / "afile").write_text("not a folder")
    with pytest.raises(OSError, match=r"afile is a file, not a folder"):
        manifest.save(tmp_path / "afile" / "data.json")
    assert (tmp_path / "afile").read_text() == "not a folder"
