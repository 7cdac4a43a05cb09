"""Tests of transmri.experiment.sources: cohorts read as the experiment file says."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from transmri.errors import ConfigError, DataFormatError
from transmri.experiment import experiment_from_dict
from transmri.experiment.sources import load_cohort


def _config(csv: Path, **target: object) -> object:
    data = {
        "name": "x",
        "data": {
            "source": {"adapter": "synthetic"},
            "target": {"adapter": "csv", "path": str(csv), **target},
        },
    }
    return experiment_from_dict(data, base_dir=csv.parent)


def _relabel(csv: Path, labels: dict[int, str]) -> Path:
    frame = pd.read_csv(csv)
    frame["label"] = ["F" if i % 2 else "M" for i in range(len(frame))]
    for i, label in labels.items():
        frame.loc[i, "label"] = label
    frame.to_csv(csv, index=False)
    return csv


def test_csv_adapter_uses_a_mask_column_by_default(make_cohort: Callable[..., Path]) -> None:
    csv = make_cohort(6)
    table = load_cohort(_config(csv), "target")  # type: ignore[arg-type]
    assert table.masks == [str((csv.parent / m).absolute()) for m in pd.read_csv(csv)["mask"]]
    unmasked = load_cohort(_config(csv, options={"mask_col": None}), "target")  # type: ignore[arg-type]
    assert unmasked.masks == [None] * 6


@pytest.mark.parametrize(
    ("other", "message"),
    [
        ("X", r"1 of 24 row\(s\) have a label outside data.target.labels \['F', 'M'\]: "
              r"'X' \(1 row\(s\): 4\); .* data.target.drop_other_labels: true"),
        ("f", r"label 'f' differs from 'F' only in case or spaces: 'f' \(1 row\(s\): 4\)"),
    ],
)  # fmt: skip
def test_a_label_outside_labels_is_an_error_naming_the_row(
    make_cohort: Callable[..., Path], other: str, message: str
) -> None:
    csv = _relabel(make_cohort(24), {3: other})
    with pytest.raises(DataFormatError, match=message):
        load_cohort(_config(csv, labels=["F", "M"]), "target")  # type: ignore[arg-type]


def test_drop_other_labels_drops_and_reports(make_cohort: Callable[..., Path]) -> None:
    csv = _relabel(make_cohort(24), {3: "MCI", 5: "MCI"})
    config = _config(csv, labels=["F", "M"], drop_other_labels=True)
    with pytest.warns(UserWarning, match=r"dropped 2 of 24 scans .* 'MCI' \(2 row\(s\): 4, 6\)"):
        table = load_cohort(config, "target")  # type: ignore[arg-type]
    assert len(table) == 22 and table.labels == ["F", "M"]
    assert table.skipped["reason"].tolist() == ["data.target.drop_other_labels: label 'MCI'"] * 2
    # a typo in case is refused even when dropping
    _relabel(csv, {3: "m"})
    with pytest.raises(DataFormatError, match=r"'m' differs from 'M' only in case"):
        load_cohort(config, "target")  # type: ignore[arg-type]


def test_drop_other_labels_needs_labels_and_keeps_identities(
    make_cohort: Callable[..., Path],
) -> None:
    csv = make_cohort(4)
    with pytest.raises(ConfigError, match=r"data.target.drop_other_labels: needs labels"):
        _config(csv, drop_other_labels=True)
    assert "drop_other_labels" not in _config(csv).to_dict()["data"]["target"]  # type: ignore[attr-defined]


def test_filter_records_what_it_dropped(make_cohort: Callable[..., Path]) -> None:
    csv = make_cohort(6)
    table = load_cohort(_config(csv, filter={"sex": ["M"]}), "target")  # type: ignore[arg-type]
    assert len(table) == 3
    assert table.skipped["reason"].tolist() == ["data.target.filter: sex 'F' not kept"] * 3


def test_exclude_drops_single_images_and_records_them(make_cohort: Callable[..., Path]) -> None:
    csv = make_cohort(6)
    config = _config(csv, exclude={"path": ["scans/scan001.nii.gz"], "age": ["55.0"]})
    with pytest.raises(DataFormatError, match=r"data.target.exclude: column 'site' not in"):
        load_cohort(_config(csv, exclude={"site": ["HH"]}), "target")  # type: ignore[arg-type]
    frame = pd.read_csv(csv)
    frame["image_id"] = [f"I{i}" for i in range(6)]
    frame.to_csv(csv, index=False)
    table = load_cohort(_config(csv, exclude={"image_id": ["I1", "I5"]}), "target")  # type: ignore[arg-type]
    assert table.frame["image_id"].tolist() == ["I0", "I2", "I3", "I4"]
    assert table.skipped["reason"].tolist() == [
        "data.target.exclude: image_id 'I1' excluded",
        "data.target.exclude: image_id 'I5' excluded",
    ]
    assert "exclude" not in _config(csv).to_dict()["data"]["target"]  # type: ignore[attr-defined]
    assert config.data.target.exclude == {"path": ("scans/scan001.nii.gz",), "age": ("55.0",)}  # type: ignore[attr-defined]
