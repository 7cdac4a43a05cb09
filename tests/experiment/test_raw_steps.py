"""``data.raw`` in an experiment file: the raw-scan steps run once per scan, before the cache."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from transmri.errors import ConfigError
from transmri.experiment import Experiment, load_experiment
from transmri.raw import RawScanConfig


def _write(tiny_experiment: Path, raw: object) -> Path:
    """The tiny experiment with ``data.raw`` set and one pretraining epoch."""
    data = yaml.safe_load(tiny_experiment.read_text())
    data["name"] = "raw"
    data["data"]["raw"] = raw
    data["pretrain"]["epochs"] = 1
    tiny_experiment.write_text(yaml.safe_dump(data))
    return tiny_experiment


def test_raw_steps_feed_the_cache_and_are_not_redone(tiny_experiment: Path, tmp_path: Path) -> None:
    path = _write(tiny_experiment, {"skull_strip": "mask", "register": "none"})
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


def test_data_checks_come_before_the_raw_steps(tiny_experiment: Path, tmp_path: Path) -> None:
    path = _write(tiny_experiment, {"skull_strip": "none", "register": "none"})
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


def test_a_bad_raw_key_names_it(tiny_experiment: Path) -> None:
    path = _write(tiny_experiment, {"register": "flirt"})
    with pytest.raises(ConfigError, match=r"data\.raw\.register: expected one of"):
        load_experiment(path)
    path = _write(tiny_experiment, {"regster": "none"})
    with pytest.raises(ConfigError, match=r"unknown key 'data\.raw\.regster'"):
        load_experiment(path)
