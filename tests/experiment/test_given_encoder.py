"""Experiments that start from an existing encoder (``pretrain: {encoder: ...}``).

The end-to-end test runs ``transmri run`` in a subprocess on a tiny synthetic
target (40^3 volumes: the deepbet encoder needs >= 33 voxels a side).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from transmri.errors import ConfigError
from transmri.experiment import Experiment, experiment_from_dict, load_experiment


def deepbet_installed() -> bool:
    from importlib import metadata

    try:
        metadata.distribution("deepbet")
    except metadata.PackageNotFoundError:
        return False
    return True


needs_deepbet = pytest.mark.skipif(
    not deepbet_installed(), reason='deepbet not installed (pip install "transmri[deepbet]")'
)


def tiny(encoder: str, out: Path, methods: list[str]) -> dict:
    return {
        "name": "given",
        "seed": 0,
        "output": str(out),
        "data": {
            "target": {
                "adapter": "synthetic",
                "options": {"n_subjects": 12, "condition": "second", "voxel_size": 6.0},
            },
            "preprocessing": {"target_shape": [40, 40, 40], "scaling": "minmax"},
        },
        "pretrain": {"encoder": encoder},
        "finetune": {"epochs_frozen": 1, "epochs_unfrozen": 0, "batch_size": 4},
        "evaluation": {"val_size": 0.2, "test_size": 0.3, "methods": methods, "n_boot": 10},
    }


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("TRANSMRI_CACHE", str(folder))
    return folder


def test_unknown_zoo_name_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"pretrain.encoder: 'debet' is neither a zoo encoder "
                       r"\(known: deepbet, deepbet-bbox, medicalnet-resnet10, "):  # fmt: skip
        load_experiment(write(tmp_path, tiny("debet", tmp_path / "run", ["ridge"])))


def test_folder_without_weights_names_the_missing_file(tmp_path: Path) -> None:
    folder = tmp_path / "enc"
    folder.mkdir()
    (folder / "encoder.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"pretrain.encoder: .*enc is not an encoder folder: "
                       r"encoder.safetensors is missing"):  # fmt: skip
        load_experiment(write(tmp_path, tiny("enc", tmp_path / "run", ["ridge"])))
    (folder / "encoder.json").unlink()
    (folder / "encoder.safetensors").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"encoder.json is missing"):
        load_experiment(write(tmp_path, tiny("enc", tmp_path / "run", ["ridge"])))


def test_other_pretrain_keys_are_refused_by_name(tmp_path: Path) -> None:
    data = tiny("deepbet", tmp_path / "run", ["ridge"])
    data["pretrain"].update(epochs=3, objective="autoencoder")
    message = (
        r"experiment.yaml: pretrain.encoder: starts from an existing encoder.*"
        r"remove pretrain.epochs, pretrain.objective"
    )
    with pytest.raises(ConfigError, match=message):
        load_experiment(write(tmp_path, data))


def test_source_is_required_only_without_an_encoder() -> None:
    data = tiny("deepbet", Path("run"), ["ridge"])
    del data["pretrain"]
    with pytest.raises(ConfigError, match=r"missing key 'data.source'"):
        experiment_from_dict(data)


def test_missing_zoo_package_names_the_extra(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from importlib import metadata

    def missing(name: str) -> None:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "distribution", missing)
    with pytest.raises(ImportError, match=r'pip install "transmri\[deepbet\]"'):
        load_experiment(write(tmp_path, tiny("deepbet", tmp_path / "run", ["ridge"])))


def test_given_encoder_folder_is_used_without_pretraining(tmp_path: Path) -> None:
    from transmri.models.deepbet import deepbet_encoder
    from transmri.training import save_encoder

    encoder = deepbet_encoder()
    save_encoder(encoder, tmp_path / "enc", architecture=encoder.config, input_shape=(40,) * 3,
                 preprocessing={}, source="test", training_subjects=(),
                 provenance={"zoo_name": "test-encoder"})  # fmt: skip
    data = tiny("enc", tmp_path / "run", ["ridge"])
    experiment = Experiment(load_experiment(write(tmp_path, data)))
    card = experiment.pretrain()
    assert card == (tmp_path / "enc" / "encoder.json").absolute()
    step = json.loads((tmp_path / "run" / "run.json").read_text())["steps"]["pretrain"]
    assert step["skipped"] is True and step["provenance"] == {"zoo_name": "test-encoder"}
    assert not (tmp_path / "run" / "pretrain").exists()


@needs_deepbet
def test_run_from_deepbet_through_the_cli(tmp_path: Path) -> None:
    methods = [
        "finetune",
        "scratch",
        "linear_probe",
        "regional_probe",
        "regional_random",
        "lpft",
        "default",
        "ridge",
    ]
    path = write(tmp_path, tiny("deepbet", tmp_path / "run", methods))
    env = {**os.environ, "TRANSMRI_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "transmri", "run", str(path)],
        capture_output=True, text=True, env=env, timeout=900, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "run"
    assert (run / "report.html").is_file()
    step = json.loads((run / "run.json").read_text())["steps"]["pretrain"]
    assert step["skipped"] is True
    assert step["provenance"]["zoo_name"] == "deepbet-model"
    assert step["provenance"]["licence"] == "MIT"
    assert (tmp_path / "cache" / "encoders").is_dir()  # converted on first use
    import pandas as pd

    frame = pd.read_csv(run / "comparison.csv")
    assert set(frame["method"]) == set(methods)


def test_resolved_file_of_a_given_encoder_reloads(tmp_path: Path) -> None:
    from transmri.experiment import dump_experiment
    from transmri.models.deepbet import deepbet_encoder
    from transmri.training import save_encoder

    encoder = deepbet_encoder()
    save_encoder(encoder, tmp_path / "enc", architecture=encoder.config, input_shape=(40,) * 3,
                 preprocessing={}, source="test", training_subjects=())  # fmt: skip
    experiment = Experiment(load_experiment(write(tmp_path, tiny("enc", tmp_path / "r", []))))
    text = dump_experiment(experiment.config)
    assert "source:" not in text.split("target:")[0]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "resolved.yaml").write_text(text)
    again = Experiment(load_experiment(elsewhere / "resolved.yaml"))
    assert again.identity == experiment.identity
    assert again.encoder_card == (tmp_path / "enc" / "encoder.json").absolute()
