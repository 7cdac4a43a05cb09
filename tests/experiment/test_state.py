"""Tests of transmri.experiment.state: what is checked before the first heavy step."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from transmri.errors import ConfigError, DataFormatError, DataLeakageError
from transmri.experiment import Experiment, experiment_from_dict


def _cohort(make_cohort: Callable[..., Path], folder: str, n: int, prefix: str, seed: int) -> Path:
    csv = make_cohort(n, (16, 16, 16), folder=folder, seed=seed)
    frame = pd.read_csv(csv)
    frame["subject"] = prefix + frame["subject"]
    frame.to_csv(csv, index=False)
    return csv


def _experiment(source: Path, target: Path, **sections: dict) -> Experiment:
    data: dict = {
        "name": "x",
        "data": {
            "source": {"adapter": "csv", "path": str(source)},
            "target": {"adapter": "csv", "path": str(target)},
        },
        "evaluation": {"methods": ["ridge"]},
    }
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value}
    config = experiment_from_dict(data, base_dir=target.parent.parent)
    return Experiment(config)


@pytest.fixture
def cohorts(make_cohort: Callable[..., Path]) -> tuple[Path, Path]:
    return (
        _cohort(make_cohort, "source", 8, "src-", 1),
        _cohort(make_cohort, "target", 16, "tgt-", 2),
    )


def test_a_clean_experiment_passes_and_writes_skipped_csv(cohorts: tuple[Path, Path]) -> None:
    experiment = _experiment(*cohorts)
    experiment.check_data()
    skipped = pd.read_csv(experiment.run_dir / "skipped.csv")
    assert list(skipped.columns) == ["cohort", "item", "reason"] and len(skipped) == 0
    assert not (experiment.run_dir / "cache").exists()  # nothing was preprocessed


def test_skipped_rows_are_written_to_the_run_folder(cohorts: tuple[Path, Path]) -> None:
    ages = [f"{50 + i}.0" for i in range(12)]
    target = {"adapter": "csv", "path": str(cohorts[1]), "filter": {"age": ages}}
    experiment = _experiment(*cohorts, data={"target": target})
    experiment.check_data()
    skipped = pd.read_csv(experiment.run_dir / "skipped.csv")
    assert len(skipped) == 4 and set(skipped["cohort"]) == {"target"}
    assert skipped["reason"].iloc[0] == "data.target.filter: age '62.0' not kept"


def test_n_train_beyond_the_data_is_refused_before_pretraining(
    cohorts: tuple[Path, Path],
) -> None:
    experiment = _experiment(*cohorts, evaluation={"n_train": [100]})
    with pytest.raises(ConfigError, match=r"n_train: 100 scans asked for, but .* has 12 scans"):
        experiment.pretrain()
    assert not (experiment.run_dir / "pretrain").exists()


def test_a_class_too_small_without_labels_is_refused_naming_the_classes(
    cohorts: tuple[Path, Path],
) -> None:
    frame = pd.read_csv(cohorts[1])
    frame.loc[3, "label"] = "X"  # a typo, and no labels: in the experiment
    frame.to_csv(cohorts[1], index=False)
    with pytest.raises(DataFormatError, match=r"'X'.*classes \{'AD': 7, 'CN': 8, 'X': 1\}"):
        _experiment(*cohorts).prepare()


def test_exclude_target_none_on_the_same_cohort_is_refused(cohorts: tuple[Path, Path]) -> None:
    experiment = _experiment(cohorts[1], cohorts[1], data={"exclude_target": "none"})
    with pytest.raises(DataLeakageError, match=r"set data.exclude_target: test"):
        experiment.prepare()
    assert not (experiment.run_dir / "cache").exists()


def test_a_subject_with_two_labels_is_refused_before_the_cache_is_filled(
    make_cohort: Callable[..., Path], cohorts: tuple[Path, Path]
) -> None:
    target = _cohort(make_cohort, "visits", 16, "tgt-", 3)
    frame = pd.read_csv(target)
    frame.loc[1, "subject"] = frame.loc[0, "subject"]  # two scans, CN and AD
    frame.to_csv(target, index=False)
    experiment = _experiment(cohorts[0], target)
    with pytest.raises(DataFormatError, match=r"subject 'tgt-sub-000' has scans labelled 'CN'"):
        experiment.prepare()
    assert not (experiment.run_dir / "cache").exists()


def test_a_source_scan_copied_into_the_target_test_set_is_refused(
    cohorts: tuple[Path, Path],
) -> None:
    source, target = cohorts
    experiment = _experiment(source, target)
    test = experiment.target_data().split_table("test")
    frame = pd.read_csv(source)
    victim = Path(test.paths[0])
    copy = source.parent / "scans" / "renamed.nii.gz"
    shutil.copyfile(victim, copy)
    frame.loc[len(frame)] = {**frame.iloc[0].to_dict(), "path": "scans/renamed.nii.gz",
                             "subject": "someone-else"}  # fmt: skip
    frame.to_csv(source, index=False)
    with pytest.raises(
        DataLeakageError,
        match=r"data.source \(pretraining\) and the target test split hold byte-identical "
        r"scans: subject 'someone-else' .*renamed.nii.gz\) and subject '" + test.subjects[0],
    ):
        _experiment(source, target).prepare()


def test_mixed_masking_is_a_warning_naming_counts(cohorts: tuple[Path, Path]) -> None:
    frame = pd.read_csv(cohorts[0])
    frame["mask"] = ""
    frame.to_csv(cohorts[0], index=False)
    with pytest.warns(UserWarning, match=r"mixed masking: .*data.source: 0 of 8, data.target: "
                                         r"16 of 16 scans masked"):  # fmt: skip
        _experiment(*cohorts).check_data()


def test_embeddings_name_the_scan_of_every_row(
    tmp_path: Path, make_cohort: Callable[..., Path]
) -> None:
    from transmri.data import PreprocessConfig
    from transmri.models import ConvAutoEncoder
    from transmri.training import save_encoder

    target = _cohort(make_cohort, "visits", 16, "tgt-", 4)
    frame = pd.read_csv(target)
    frame["subject"] = "tgt-" + (frame.index // 2).astype(str)  # two visits per subject
    frame["label"] = [("CN", "AD")[(i // 2) % 2] for i in range(16)]
    frame["image_id"] = [f"I{100 + i}" for i in range(16)]
    frame.to_csv(target, index=False)
    preprocessing = PreprocessConfig(target_shape=(16, 16, 16))
    encoder = ConvAutoEncoder().encoder
    save_encoder(
        encoder,
        tmp_path / "enc",
        architecture=encoder.config,
        input_shape=(16,) * 3,
        preprocessing=preprocessing.to_dict(),
        source="test",
        training_subjects=(),
    )
    data = {
        "name": "x",
        "data": {"target": {"adapter": "csv", "path": str(target)},
                 "preprocessing": {"target_shape": [16, 16, 16]}},
        "pretrain": {"encoder": str(tmp_path / "enc")},
        "evaluation": {"methods": []},
    }  # fmt: skip
    experiment = Experiment(experiment_from_dict(data, base_dir=tmp_path))
    csv = experiment.embed(model="pretrain")[0]
    codes = pd.read_csv(csv)
    assert list(codes.columns[:4]) == ["subject", "path", "image_id", "label"]
    test = experiment.target_data().split_table("test")
    assert codes["path"].tolist() == test.paths
    assert codes["image_id"].tolist() == test.frame["image_id"].tolist()
    assert codes["subject"].duplicated().any()  # visits of one subject, told apart by path
