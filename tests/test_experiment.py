"""Tests of transmri.experiment: the experiment-file schema, overrides and the run folder."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from transmri.errors import ConfigError, OutputExistsError
from transmri.experiment import (
    ADAPTER_OPTIONS,
    Experiment,
    dump_experiment,
    experiment_from_dict,
    load_experiment,
)
from transmri.experiment.folder import check_run_folder, record_step

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def minimal() -> dict:
    return {
        "name": "x",
        "data": {
            "source": {"adapter": "synthetic", "options": {"n_subjects": 20}},
            "target": {"adapter": "synthetic", "options": {"condition": "second"}},
        },
    }


def write(tmp_path: Path, data: object, name: str = "experiment.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def test_defaults_and_synthetic_flag() -> None:
    config = experiment_from_dict(minimal())
    assert config.synthetic is True
    assert config.pretrain.objective == "mixed" and config.pretrain.alpha == 0.7
    assert config.finetune.total_epochs == 13
    assert config.data.preprocessing.target_shape == (108, 128, 108)


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        (
            "finetune",
            "lr",
            -1,
            r"experiment.yaml: finetune.lr: expected a finite number > 0, got -1",
        ),
        ("model", "hed", "gap", r"experiment.yaml: unknown key 'model.hed'; expected one of arch"),
        ("pretrain", "objective", "gan", r"pretrain.objective: expected one of 'mixed'"),
        ("pretrain", "alpha", 2, r"pretrain.alpha: expected a number in \[0, 1\], got 2"),
        ("evaluation", "n_train", [1], r"evaluation.n_train\[0\]: expected an integer >= 2"),
        ("finetune", "lr_mult", 3, r"finetune.lr_mult: expected a ratio in \(0, 1\]"),
    ],
)
def test_errors_name_the_key_path(
    tmp_path: Path, section: str, key: str, value: object, message: str
) -> None:
    data = minimal()
    data[section] = {key: value}
    with pytest.raises(ConfigError, match=message):
        load_experiment(write(tmp_path, data))


def test_nested_errors_name_the_key_path() -> None:
    data = minimal()
    data["data"]["source"]["options"]["n_subjects"] = 0
    with pytest.raises(ConfigError, match=r"^data.source.options.n_subjects: expected an integer"):
        experiment_from_dict(data)
    data = minimal()
    data["data"]["target"] = {"adapter": "adni"}
    with pytest.raises(ConfigError, match=r"^data.target.path: required for adapter 'adni'"):
        experiment_from_dict(data)
    data = minimal()
    data["data"]["target"]["options"] = {"colour": 1}
    with pytest.raises(ConfigError, match=r"unknown option 'colour' for adapter 'synthetic'"):
        experiment_from_dict(data)
    data = minimal()
    data["data"]["preprocessing"] = {"target_shape": [1, 2]}
    with pytest.raises(ConfigError, match=r"^data.preprocessing.target_shape: expected three"):
        experiment_from_dict(data)
    with pytest.raises(ConfigError, match=r"^missing key 'data'"):
        experiment_from_dict({"name": "x"})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: [unclosed\n", r"experiment.yaml: malformed YAML at line \d+"),
        ("", r"the experiment file is empty"),
        ("- a\n- b\n", r"expected a mapping of sections"),
    ],
)
def test_malformed_files(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_experiment(write(tmp_path, text))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="experiment file not found"):
        load_experiment(tmp_path / "nope.yaml")


def test_overrides_set_nested_keys_and_are_validated(tmp_path: Path) -> None:
    path = write(tmp_path, minimal())
    config = load_experiment(path, overrides=["pretrain.epochs=1", "model.head=flatten"])
    assert config.pretrain.epochs == 1 and config.model.head == "flatten"
    with pytest.raises(ConfigError, match=r"unknown key 'pretrain\.epoch'"):
        load_experiment(path, overrides=["pretrain.epoch=1"])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_experiment(path, overrides=["pretrain.epochs"])


def test_resolved_config_reloads_to_the_same_run(tmp_path: Path) -> None:
    config = load_experiment(write(tmp_path, minimal()))
    experiment = Experiment(config)
    resolved = write(tmp_path, dump_experiment(experiment.config), "resolved.yaml")
    again = Experiment(load_experiment(resolved))
    assert again.identity == experiment.identity
    assert again.run_dir == tmp_path / "runs" / "x"


def test_adapter_options_match_the_adapters() -> None:
    from transmri.data import ScanTable
    from transmri.datasets import (
        SyntheticCohortConfig,
        from_bids,
        get_adni,
        get_idss,
        get_ixi,
        get_ppmi,
    )

    functions = {
        "csv": ScanTable.from_csv,
        "bids": from_bids,
        "adni": get_adni,
        "ppmi": get_ppmi,
        "idss": get_idss,
        "ixi": get_ixi,
    }
    for name, function in functions.items():
        keywords = [
            p.name
            for p in inspect.signature(function).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        ]
        assert sorted(ADAPTER_OPTIONS[name]) == sorted(keywords), name
    synthetic = inspect.signature(SyntheticCohortConfig).parameters
    assert sorted(ADAPTER_OPTIONS["synthetic"]) == sorted(synthetic)


def test_missing_data_path_is_named(tmp_path: Path) -> None:
    data = minimal()
    data["data"]["target"] = {"adapter": "csv", "path": "nowhere/scans.csv"}
    experiment = Experiment(load_experiment(write(tmp_path, data)))
    with pytest.raises(FileNotFoundError, match=r"data.target.path: .*nowhere/scans.csv"):
        experiment.check()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["experiment.yaml"]


def test_run_folder_refuses_another_run(tmp_path: Path) -> None:
    config = load_experiment(write(tmp_path, minimal()))
    experiment = Experiment(config)
    experiment.open()
    record_step(experiment.run_dir, "prepare", {})  # a finished step makes it worth keeping
    check_run_folder(experiment.run_dir, experiment.identity, overwrite=False)  # same run: ok
    other = Experiment(load_experiment(tmp_path / "experiment.yaml", overrides=["seed=1"]))
    with pytest.raises(OutputExistsError, match="holds experiment 'x' with another config"):
        other.check()
    Experiment(other.config, overwrite=True).open()  # replaced
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "file.txt").write_text("x")
    stray = load_experiment(tmp_path / "experiment.yaml", overrides=[f"output={tmp_path / 'junk'}"])
    with pytest.raises(OutputExistsError, match="not empty and not a transmri run"):
        Experiment(stray).check()


def test_overwrite_never_deletes_a_users_folder(tmp_path: Path) -> None:
    # Issue 17, item 1: a user's project folder whose entries happen to be
    # named like run artifacts (data/, figures/) must survive --overwrite.
    project = tmp_path / "P"
    (project / "data" / "raw").mkdir(parents=True)
    (project / "data" / "raw" / "scan.nii.gz").write_bytes(b"mine")
    (project / "figures").mkdir()
    (project / "figures" / "poster.png").write_bytes(b"poster")
    write(tmp_path, minimal())
    config = load_experiment(tmp_path / "experiment.yaml", overrides=[f"output={project}"])
    for overwrite in (False, True):
        with pytest.raises(OutputExistsError, match="not a transmri run") as info:
            Experiment(config, overwrite=overwrite).open()
        assert "--overwrite" not in str(info.value)
    assert (project / "data" / "raw" / "scan.nii.gz").read_bytes() == b"mine"
    assert (project / "figures" / "poster.png").read_bytes() == b"poster"
    assert not (project / "run.json").exists()


def test_a_foreign_run_json_does_not_make_a_run(tmp_path: Path) -> None:
    project = tmp_path / "P"
    project.mkdir()
    (project / "run.json").write_text('{"mine": true}')
    (project / "report.html").write_text("my report")
    write(tmp_path, minimal())
    config = load_experiment(tmp_path / "experiment.yaml", overrides=[f"output={project}"])
    with pytest.raises(OutputExistsError, match="not a transmri run"):
        Experiment(config, overwrite=True).open()
    assert (project / "report.html").read_text() == "my report"


def test_overwrite_removes_stale_embeddings(tmp_path: Path) -> None:
    # Issue 17, item 2: an earlier run's embeddings_*.csv/.npy must not
    # survive --overwrite (the report would show them as the new run's).
    config = load_experiment(write(tmp_path, minimal()))
    Experiment(config).open()
    run_dir = config.run_dir
    stale = ["embeddings_test.csv", "embeddings_test.npy", "embeddings_pretrained-test.npy",
             "predictions_val.csv", "metrics_val.json"]  # fmt: skip
    for name in stale:
        (run_dir / name).write_text("old")
    (run_dir / "notes.txt").write_text("mine")  # not an artifact: kept
    other = load_experiment(tmp_path / "experiment.yaml", overrides=["seed=1"])
    Experiment(other, overwrite=True).open()
    assert [n for n in stale if (run_dir / n).exists()] == []
    assert (run_dir / "notes.txt").read_text() == "mine"


def test_a_run_that_finished_no_step_may_take_a_new_config(tmp_path: Path) -> None:
    # Issue 17, item 5: prepare fails on bad data, the user changes the config
    # as the error says, and the folder must not be refused as "another config".
    config = load_experiment(write(tmp_path, minimal()))
    Experiment(config).open()  # opened, then failed before any step finished
    fixed = load_experiment(tmp_path / "experiment.yaml", overrides=["seed=1"])
    Experiment(fixed).open()
    assert (
        Experiment(fixed).identity
        == json.loads((config.run_dir / "run.json").read_text())["identity"]
    )
    record_step(config.run_dir, "prepare", {})
    with pytest.raises(OutputExistsError, match="with another config"):
        Experiment(config).check()  # a finished step is kept unless --overwrite


def test_synthetic_cohorts_get_distinct_subject_ids(tmp_path: Path) -> None:
    from transmri.data import check_leakage
    from transmri.experiment.sources import load_cohort

    data = minimal()
    data["output"] = str(tmp_path / "run")
    data["data"]["source"]["options"] = {"n_subjects": 2, "voxel_size": 16}
    data["data"]["target"]["options"] = {"n_subjects": 2, "voxel_size": 16}
    config = experiment_from_dict(data)
    source, target = load_cohort(config, "source"), load_cohort(config, "target")
    assert source.subjects == ["source-sub-0001", "source-sub-0002"]
    assert target.subjects == ["target-sub-0001", "target-sub-0002"]
    assert Path(source.paths[0]).name == "source-sub-0001.nii.gz"
    check_leakage(source.subjects, target.subjects, names=("source", "target"))


def test_pretext_pretraining_from_the_experiment_file(tmp_path: Path) -> None:
    import json

    data = minimal()
    data["data"]["preprocessing"] = {"target_shape": [16, 16, 16]}
    data["pretrain"] = {"objective": "autoencoder", "pretext": "denoise", "epochs": 1,
                        "batch_size": 4}  # fmt: skip
    data["output"] = str(tmp_path / "run")
    experiment = Experiment(load_experiment(write(tmp_path, data)))
    card = experiment.pretrain()
    assert card.is_file()
    steps = json.loads((tmp_path / "run" / "run.json").read_text())["steps"]
    assert steps["pretrain"]["pretext"] == "denoise"
    history = pd.read_csv(tmp_path / "run" / "pretrain" / "history.csv")
    assert history["train_loss"].notna().all()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"pretrain": {"pretext": "blur"}}, r"pretrain.pretext: expected one of 'denoise'"),
        ({"model": {"head": "regional"}}, r"model.head: 'regional' is a fine-tuning head"),
    ],
)
def test_pretext_and_head_choices_are_checked(tmp_path: Path, changes: dict, message: str) -> None:
    data = minimal()
    data.update(changes)
    with pytest.raises(ConfigError, match=message):
        load_experiment(write(tmp_path, data))


def test_contrastive_pretraining_from_the_experiment_file(tmp_path: Path) -> None:
    import json

    from transmri.training import load_encoder

    data = minimal()
    data["data"]["preprocessing"] = {"target_shape": [16, 16, 16]}
    data["data"]["source"]["targets"] = ["age"]
    data["pretrain"] = {"objective": "contrastive", "contrastive_target": "age", "sigma": 5.0,
                        "epochs": 1, "batch_size": 4}  # fmt: skip
    data["output"] = str(tmp_path / "run")
    experiment = Experiment(load_experiment(write(tmp_path, data)))
    card = experiment.pretrain()
    encoder, _ = load_encoder(card)
    assert type(encoder).__name__ == "ConvEncoder"
    steps = json.loads((tmp_path / "run" / "run.json").read_text())["steps"]
    assert steps["pretrain"]["epochs"] == 1
    history = pd.read_csv(tmp_path / "run" / "pretrain" / "history.csv")
    assert np.isfinite(history["train_loss"]).all()


@pytest.mark.parametrize(
    ("pretrain", "message"),
    [
        ({"objective": "contrastive", "pretext": "denoise"}, r"pretrain.pretext: the contrastive"),
        ({"contrastive_target": "age"}, r"contrastive_target: only for objective 'contrastive'"),
        (
            {"objective": "contrastive", "contrastive_target": "age"},
            r"pretrain.contrastive_target: 'age' must be one of data.source.targets \[\]",
        ),
    ],
)
def test_contrastive_options_are_checked(tmp_path: Path, pretrain: dict, message: str) -> None:
    data = minimal()
    data["pretrain"] = pretrain
    with pytest.raises(ConfigError, match=message):
        load_experiment(write(tmp_path, data))
