"""``data.raw`` in an experiment file: the raw-scan steps run once per scan, before the cache."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import yaml

from transmri.errors import ConfigError
from transmri.experiment import Experiment, load_experiment
from transmri.raw import RawScanConfig


@pytest.fixture(autouse=True)
def _quiet_nondeterministic_ops() -> None:
    warnings.filterwarnings("ignore", message=".*deterministic implementation.*")


def _write(tmp_path: Path, make_cohort: Callable[..., Path], raw: object) -> Path:
    make_cohort(12, (16, 16, 16), seed=1, folder="source")
    target = make_cohort(12, (16, 16, 16), seed=2, folder="target")
    frame = pd.read_csv(target)
    frame["subject"] = frame["subject"].str.replace("sub-", "tgt-")
    frame.to_csv(target, index=False)
    data = {
        "name": "raw",
        "data": {
            "source": {"adapter": "csv", "path": "source/scans.csv"},
            "target": {"adapter": "csv", "path": "target/scans.csv"},
            "preprocessing": {"target_shape": [16, 16, 16]},
            "raw": raw,
        },
        "model": {"arch": "cae", "channels": [4, 8]},
        "pretrain": {"objective": "autoencoder", "epochs": 1, "batch_size": 4},
        "finetune": {"epochs_frozen": 1, "epochs_unfrozen": 1, "batch_size": 4},
        "evaluation": {"methods": [], "embeddings": False, "report": False, "n_boot": 10},
    }
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_raw_steps_feed_the_cache_and_are_not_redone(
    make_cohort: Callable[..., Path], tmp_path: Path
) -> None:
    path = _write(tmp_path, make_cohort, {"skull_strip": "mask", "register": "none"})
    config = load_experiment(path, overrides=[f"output={tmp_path / 'run'}"])
    assert config.data.raw == RawScanConfig(skull_strip="mask", register="none")
    assert config.to_dict()["data"]["raw"]["register"] == "none"
    Experiment(config).run(("prepare",))
    target = pd.read_csv(tmp_path / "run" / "target.csv")
    raw = tmp_path / "run" / "cache" / "raw"
    assert all(p.startswith(str(raw / "target")) for p in target["path"])
    assert target["source_path"].str.endswith(".nii.gz").all()
    assert target["brain_volume_cc"].gt(0).all()
    assert (raw / "source" / "scans.csv").is_file()
    image = Path(target.loc[0, "path"])
    stamp = image.stat().st_mtime_ns
    # a later step in a fresh process reads the outputs; nothing is redone
    again = Experiment(load_experiment(path, overrides=[f"output={tmp_path / 'run'}"]))
    again.run(("pretrain", "finetune"))
    assert image.stat().st_mtime_ns == stamp
    assert (tmp_path / "run" / "finetune").is_dir()


def test_data_checks_come_before_the_raw_steps(
    make_cohort: Callable[..., Path], tmp_path: Path
) -> None:
    path = _write(tmp_path, make_cohort, {"skull_strip": "none", "register": "none"})
    config = load_experiment(
        path,
        overrides=[
            f"output={tmp_path / 'run'}",
            "evaluation.n_train=[100]",
            "evaluation.methods=[ridge]",
        ],
    )
    with pytest.raises(ConfigError, match="n_train"):
        Experiment(config).run(("prepare",))
    assert not (tmp_path / "run" / "cache" / "raw").exists()


def test_a_bad_raw_key_names_it(make_cohort: Callable[..., Path], tmp_path: Path) -> None:
    path = _write(tmp_path, make_cohort, {"register": "flirt"})
    with pytest.raises(ConfigError, match=r"data\.raw\.register: expected one of"):
        load_experiment(path)
    path = _write(tmp_path, make_cohort, {"regster": "none"})
    with pytest.raises(ConfigError, match=r"unknown key 'data\.raw\.regster'"):
        load_experiment(path)
