"""Tests of transmri.datasets.synthetic (the SYNTHETIC cohort generator)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from transmri.data import ScanTable
from transmri.datasets import (
    SyntheticCohortConfig,
    _anatomy,
    load_synthetic_cohort,
    make_synthetic_cohort,
    region_mask,
)
from transmri.errors import ConfigError, OutputExistsError


def volumes(csv: Path) -> list[np.ndarray]:
    frame = pd.read_csv(csv)
    return [np.asarray(nib.load(csv.parent / p).dataobj) for p in frame["path"]]


def test_files_load_as_nifti_and_as_a_scan_table(tmp_path: Path) -> None:
    config = SyntheticCohortConfig(n_subjects=4, seed=1)
    csv = make_synthetic_cohort(tmp_path / "c", config)
    assert csv == tmp_path / "c" / "participants.csv"
    table = ScanTable.from_csv(csv, mask_col="mask")
    assert len(table) == 4 and table.frame["subject"].nunique() == 4
    assert table.frame["synthetic"].tolist() == ["True"] * 4
    assert set(table.frame.columns) >= {"age", "sex", "site", "severity", "condition"}
    image = nib.load(table.paths[0])
    assert image.shape == (50, 59, 48)
    assert image.get_data_dtype() == np.float32
    np.testing.assert_allclose(np.diag(image.affine), [4, 4, 4, 1])
    mask = np.asarray(nib.load(table.masks[0]).dataobj)  # type: ignore[arg-type]
    assert mask.dtype == np.uint8 and 20_000 < mask.sum() < 40_000
    data = np.asarray(image.dataobj)
    assert data[mask > 0].mean() > 3 * data[mask == 0].mean()  # a brain, not noise
    union = np.asarray(nib.load(tmp_path / "c" / "brain_mask.nii.gz").dataobj)
    assert (union >= mask).all()
    assert "SYNTHETIC" in (tmp_path / "c" / "README.txt").read_text()
    manifest = json.loads((tmp_path / "c" / "cohort.json").read_text())
    assert manifest["synthetic"] is True and manifest["config"] == config.to_dict()
    assert len(load_synthetic_cohort(tmp_path / "c")) == 4


def test_same_seed_same_data_other_seed_other_data(tmp_path: Path) -> None:
    config = SyntheticCohortConfig(n_subjects=3, seed=7)
    first = make_synthetic_cohort(tmp_path / "a", config)
    second = make_synthetic_cohort(tmp_path / "b", config)
    other = make_synthetic_cohort(tmp_path / "c", SyntheticCohortConfig(n_subjects=3, seed=8))
    for x, y in zip(volumes(first), volumes(second)):
        np.testing.assert_array_equal(x, y)
    assert pd.read_csv(first).equals(pd.read_csv(second))
    assert not np.array_equal(volumes(first)[0], volumes(other)[0])


def test_labels_balanced_and_disease_fraction(tmp_path: Path) -> None:
    half = make_synthetic_cohort(tmp_path / "h", SyntheticCohortConfig(n_subjects=10))
    assert pd.read_csv(half)["label"].value_counts().to_dict() == {"AD": 5, "CN": 5}
    few = SyntheticCohortConfig(n_subjects=10, disease_fraction=0.3, condition="none")
    labels = pd.read_csv(make_synthetic_cohort(tmp_path / "n", few))["label"]
    assert labels.tolist() == ["CN"] * 10  # "none": no disease at all


def test_alzheimer_effect_lowers_medial_temporal_intensity(tmp_path: Path) -> None:
    csv = make_synthetic_cohort(tmp_path / "ad", SyntheticCohortConfig(n_subjects=16, seed=2))
    frame = pd.read_csv(csv)
    image = nib.load(csv.parent / frame["path"][0])
    region = region_mask("alzheimer", image.affine, image.shape)
    ventricles = region_mask("alzheimer", image.affine, image.shape, kind="ventricle")
    assert region.sum() > 50
    ratio, vent = [], []
    for scan, mask in zip(frame["path"], frame["mask"]):
        data = np.asarray(nib.load(csv.parent / scan).dataobj)
        brain = np.asarray(nib.load(csv.parent / mask).dataobj) > 0
        reference = np.median(data[brain])  # removes the random global scale
        ratio.append(data[region].mean() / reference)
        vent.append(data[ventricles].mean() / reference)
    ad = (frame["label"] == "AD").to_numpy()
    ratio_a, vent_a = np.array(ratio), np.array(vent)
    # Grey matter -> CSF: darker medial temporal lobes and ventricle region in T1.
    assert ratio_a[ad].mean() < ratio_a[~ad].mean() - 0.03
    assert vent_a[ad].mean() < vent_a[~ad].mean()
    assert (frame.loc[ad, "severity"] > 0).all() and (frame.loc[~ad, "severity"] == 0).all()
    assert frame.loc[ad, "age"].mean() > frame.loc[~ad, "age"].mean()


def test_second_condition_has_its_own_labels_and_regions(tmp_path: Path) -> None:
    config = SyntheticCohortConfig(
        n_subjects=8,
        condition="second",
        effect_size=0.6,
        bias_field=0.0,
        intensity_scale=(1.0, 1.0),
        seed=4,
    )
    csv = make_synthetic_cohort(tmp_path / "s", config)
    frame = pd.read_csv(csv)
    assert sorted(frame["label"].unique()) == ["HC", "PD-like"]
    image = nib.load(csv.parent / frame["path"][0])
    region = region_mask("second", image.affine, image.shape)
    means = [np.asarray(nib.load(csv.parent / p).dataobj)[region].mean() for p in frame["path"]]
    sick = (frame["label"] == "PD-like").to_numpy()
    assert np.mean(np.array(means)[sick]) < np.mean(np.array(means)[~sick])


def test_t2_contrast_makes_csf_brighter_than_white_matter(tmp_path: Path) -> None:
    still = {"deformation": 0.0, "head_scale": (1.0, 1.0), "bias_field": 0.0, "n_subjects": 1}
    template = _anatomy.load_template(4.0, "alzheimer")
    tissue = _anatomy._sample(template, template.world)
    csf, wm = tissue["csf"] > 0.8, tissue["wm"] > 0.8
    for contrast in ("T1", "T2"):
        csv = make_synthetic_cohort(
            tmp_path / contrast, SyntheticCohortConfig(contrast=contrast, **still)
        )
        data = volumes(csv)[0]
        ratio = data[csf].mean() / data[wm].mean()
        assert (ratio < 0.5) if contrast == "T1" else (ratio > 1.5)


def test_existing_cohort_reused_or_refused(tmp_path: Path) -> None:
    config = SyntheticCohortConfig(n_subjects=2)
    csv = make_synthetic_cohort(tmp_path / "c", config)
    scan = csv.parent / "scans" / "sub-0001.nii.gz"
    stamp = scan.stat().st_mtime_ns
    assert make_synthetic_cohort(tmp_path / "c", config) == csv
    assert scan.stat().st_mtime_ns == stamp  # reused, not rewritten
    other = SyntheticCohortConfig(n_subjects=3)
    with pytest.raises(OutputExistsError, match=r"another config.*overwrite=True"):
        make_synthetic_cohort(tmp_path / "c", other)
    make_synthetic_cohort(tmp_path / "c", other, overwrite=True)
    assert len(load_synthetic_cohort(tmp_path / "c")) == 3


def test_subject_prefix_names_subjects_and_files(tmp_path: Path) -> None:
    first = load_synthetic_cohort(
        make_synthetic_cohort(tmp_path / "a", SyntheticCohortConfig(n_subjects=2)).parent
    )
    second_csv = make_synthetic_cohort(
        tmp_path / "b", SyntheticCohortConfig(n_subjects=2, subject_prefix="siteB_")
    )
    second = load_synthetic_cohort(second_csv.parent)
    assert first.subjects == ["sub-0001", "sub-0002"]
    assert second.subjects == ["siteB_0001", "siteB_0002"]
    assert not set(first.subjects) & set(second.subjects)  # no false leakage across cohorts
    assert (tmp_path / "b" / "scans" / "siteB_0001.nii.gz").exists()
    assert (tmp_path / "b" / "masks" / "siteB_0002_mask.nii.gz").exists()


def test_cohort_made_before_subject_prefix_existed_is_reused(tmp_path: Path) -> None:
    config = SyntheticCohortConfig(n_subjects=2)
    csv = make_synthetic_cohort(tmp_path / "c", config)
    manifest_path = tmp_path / "c" / "cohort.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["config"]["subject_prefix"]  # as written by an older transmri
    manifest_path.write_text(json.dumps(manifest))
    stamp = (tmp_path / "c" / "scans" / "sub-0001.nii.gz").stat().st_mtime_ns
    assert make_synthetic_cohort(tmp_path / "c", config) == csv
    assert (tmp_path / "c" / "scans" / "sub-0001.nii.gz").stat().st_mtime_ns == stamp
    with pytest.raises(OutputExistsError, match="another config"):
        make_synthetic_cohort(
            tmp_path / "c", SyntheticCohortConfig(n_subjects=2, subject_prefix="x-")
        )


def test_config_round_trip_and_validation() -> None:
    config = SyntheticCohortConfig(n_subjects=5, age_range=(60, 80))
    assert config.age_range == (60.0, 80.0)
    assert SyntheticCohortConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    bad = [
        ({"n_subjects": 0}, r"n_subjects: expected an integer >= 1, got 0"),
        ({"disease_fraction": 1.5}, r"disease_fraction: expected a number in \[0, 1\]"),
        ({"condition": "stroke"}, r"condition: expected one of 'alzheimer', 'second', 'none'"),
        ({"contrast": "PD"}, r"contrast: expected one of 'T1', 'T2', got 'PD'"),
        ({"voxel_size": 0.5}, r"voxel_size: expected a size in \[1, 16\] mm, got 0.5"),
        ({"noise_std": -1.0}, r"noise_std: expected a finite number >= 0"),
        ({"head_scale": (1.1, 0.9)}, r"head_scale: expected \(low, high\) with 0 < low <= high"),
        ({"site": ""}, r"site: expected a non-empty name"),
        ({"effect_size": 2.0}, r"effect_size: expected a number in \[0, 1\]"),
        ({"subject_prefix": ""}, r"subject_prefix: expected 1-64 filename-safe characters"),
        ({"subject_prefix": "a/b-"}, r"subject_prefix: expected .*got 'a/b-'"),
        ({"subject_prefix": ".hidden"}, r"subject_prefix: expected .*got '.hidden'"),
    ]
    for kwargs, message in bad:
        with pytest.raises(ConfigError, match=message):
            SyntheticCohortConfig(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['subjects'\]"):
        SyntheticCohortConfig.from_dict({"subjects": 3})
    with pytest.raises(ConfigError, match="condition: expected one of"):
        region_mask("stroke", np.eye(4), (4, 4, 4))


def test_template_comes_from_the_wheel_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the synthetic generator tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    _anatomy.load_template.cache_clear()
    template = _anatomy.load_template(8.0, "none")
    assert template.out_shape == (25, 30, 24)
    assert template.channel("gm").max() > 0.5


def test_load_without_cohort_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="run make_synthetic_cohort first"):
        load_synthetic_cohort(tmp_path)


def test_default_alzheimer_effect_is_learnable_from_few_scans(tmp_path: Path) -> None:
    # A guard against a cohort that silently becomes unlearnable: with the default
    # effect size, a logistic regression on the voxels of the atrophy regions
    # separates AD from CN in 40 scans at 8 mm (AUC ~0.95 with the calibrated
    # default; 0.5-0.74 with the old effect size 0.4; chance is 0.5).
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    csv = make_synthetic_cohort(
        tmp_path / "c", SyntheticCohortConfig(n_subjects=40, voxel_size=8.0, seed=3)
    )
    frame = pd.read_csv(csv)
    first = nib.load(csv.parent / frame["path"][0])
    regions = region_mask("alzheimer", first.affine, first.shape) | region_mask(
        "alzheimer", first.affine, first.shape, kind="ventricle"
    )
    rows = []
    for scan, mask in zip(frame["path"], frame["mask"]):
        data = np.asarray(nib.load(csv.parent / scan).dataobj)
        brain = np.asarray(nib.load(csv.parent / mask).dataobj) > 0
        rows.append(data[regions] / np.median(data[brain]))  # removes the global scale
    y = (frame["label"] == "AD").to_numpy().astype(int)
    auc = cross_val_score(
        make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000)),
        np.stack(rows),
        y,
        cv=StratifiedKFold(5, shuffle=True, random_state=0),
        scoring="roc_auc",
    )
    assert auc.mean() >= 0.8, f"5-fold AUC {auc.mean():.3f} (folds {np.round(auc, 2)})"
