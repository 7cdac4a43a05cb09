"""Run-folder identity: a copied or moved run is the same run; extending a comparison is allowed."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from transmri.errors import OutputExistsError
from transmri.experiment import Experiment, experiment_from_dict, load_experiment
from transmri.experiment.folder import path_fingerprint


def _tiny(**evaluation: Any) -> dict[str, Any]:
    return {
        "name": "tiny",
        "data": {
            "source": {"adapter": "csv", "path": "source/scans.csv"},
            "target": {"adapter": "csv", "path": "target/scans.csv"},
            "preprocessing": {"target_shape": [16, 16, 16]},
        },
        "model": {"arch": "cae", "channels": [4, 8]},
        "pretrain": {"objective": "autoencoder", "epochs": 1, "batch_size": 4},
        "finetune": {"epochs_frozen": 1, "epochs_unfrozen": 0, "batch_size": 4},
        "evaluation": {"methods": ["ridge"], "n_train": [4], "embeddings": False,
                       "report": False, "n_boot": 10, **evaluation},
    }  # fmt: skip


@pytest.fixture
def project(make_cohort: Callable[..., Path], tmp_path: Path) -> Path:
    """A project folder: experiment.yaml, its two tiny cohorts, and (later) runs/tiny."""
    make_cohort(12, (16, 16, 16), seed=1, folder="proj/source")
    target = make_cohort(12, (16, 16, 16), seed=2, folder="proj/target")
    frame = pd.read_csv(target)
    frame["subject"] = frame["subject"].str.replace("sub-", "tgt-")
    frame.to_csv(target, index=False)
    (tmp_path / "proj" / "experiment.yaml").write_text(yaml.safe_dump(_tiny()))
    return tmp_path / "proj"


def _experiment(path: Path, notes: list[str], *overrides: str) -> Experiment:
    return Experiment(load_experiment(path, overrides=list(overrides)), note=notes.append)


def test_copied_and_moved_runs_keep_their_identity_and_may_be_extended(
    project: Path, tmp_path: Path
) -> None:
    notes: list[str] = []
    _experiment(project / "experiment.yaml", notes).run(("prepare", "pretrain", "compare"))
    assert notes == []
    # The whole project (config, data and run folder) copied with cp -r, then moved.
    subprocess.run(["cp", "-r", str(project), str(tmp_path / "copy")], check=True)
    (tmp_path / "copy").rename(tmp_path / "moved")
    moved = _experiment(tmp_path / "moved" / "experiment.yaml", notes)
    assert moved.run_dir == tmp_path / "moved" / "runs" / "tiny"
    moved.run(("pretrain", "compare"))
    assert notes[0].startswith("pretrain: already done")
    assert notes[1] == "compare: all 1 rows already measured; nothing new to run"
    # The run folder alone moved away from its data: still the same run.
    shutil.move(tmp_path / "moved" / "runs" / "tiny", tmp_path / "elsewhere")
    alone = _experiment(project / "experiment.yaml", notes, f"output={tmp_path / 'elsewhere'}")
    alone.check()
    assert alone.identity == moved.identity

    # Extending the comparison (more repeats and N values) computes only the new rows.
    config = project / "experiment.yaml"
    comparison = project / "runs" / "tiny" / "comparison.csv"
    first = pd.read_csv(comparison)
    more = ("evaluation.repeats=2", "evaluation.n_train=[4, 6]")
    _experiment(config, notes, *more).compare()
    assert notes[-1] == "compare: 3 new rows; 1 kept from before"
    rows = pd.read_csv(comparison)
    assert sorted(zip(rows["n_train"], rows["repeat"])) == [(4, 0), (4, 1), (6, 0), (6, 1)]
    kept = rows[(rows["n_train"] == 4) & (rows["repeat"] == 0)].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, first)  # measured once, not again
    # A change that invalidates the rows (another test set) is still refused.
    with pytest.raises(OutputExistsError, match=r"holds experiment 'tiny' with another config"):
        _experiment(config, notes, *more, "evaluation.test_size=0.4").check()


def test_identity_has_no_run_folder_path_and_fingerprints_the_data(tmp_path: Path) -> None:
    def synthetic(out: Path) -> Experiment:
        data = {"name": "s", "output": str(out), "data": {
            "source": {"adapter": "synthetic"}, "target": {"adapter": "synthetic"}}}  # fmt: skip
        return Experiment(experiment_from_dict(data, base_dir=tmp_path))

    # Synthetic cohorts live in the run folder: its location is not part of the identity.
    assert synthetic(tmp_path / "a").identity == synthetic(tmp_path / "b" / "c").identity
    table = tmp_path / "t.csv"
    table.write_text("path,label\n")
    before = path_fingerprint(table)
    assert before.startswith("file:") and path_fingerprint(tmp_path / "nope") == "missing:nope"
    table.write_text("path,label\nx.nii,AD\n")
    assert path_fingerprint(table) != before  # other contents: another run
    folder = path_fingerprint(tmp_path, skip=(tmp_path / "a",))
    (tmp_path / "a").mkdir(exist_ok=True)
    (tmp_path / "a" / "run.json").write_text("{}")
    assert path_fingerprint(tmp_path, skip=(tmp_path / "a",)) == folder  # the run folder skipped


def test_a_folder_of_an_older_version_is_still_the_same_run(project: Path) -> None:
    experiment = _experiment(project / "experiment.yaml", [])
    run_dir = experiment.run_dir
    run_dir.mkdir(parents=True)
    old = {"kind": "experiment", "name": "tiny", "steps": {"prepare": {}},
           "identity": experiment._legacy_identity}  # fmt: skip
    (run_dir / "run.json").write_text(json.dumps(old))
    (run_dir / "metrics_test.json").write_text("{}")
    experiment.open()  # accepted, nothing removed, recorded under the new identity
    run = json.loads((run_dir / "run.json").read_text())
    assert run["identity"] == experiment.identity != experiment._legacy_identity
    assert run["steps"] == {"prepare": {}} and (run_dir / "metrics_test.json").is_file()
