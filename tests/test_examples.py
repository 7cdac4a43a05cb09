"""Every file in examples/ runs end to end (``transmri run``) at tiny size: the synthetic
ones as they are, the others on tiny fake trees in their exact layouts (ADNI/PPMI image
archives, BIDS) or on the real IXI sample, shrunk with ``--set`` overrides."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import IXI_ROOT, blob_volume, write_nifti
from tests.datasets.test_adni import HEADER, MPRAGE, archive_scan, collection_row
from tests.test_cli import transmri
from transmri.transfer.plan import subjects_hash

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_every_example_is_tested() -> None:
    names = {p.name for p in EXAMPLES.iterdir() if p.suffix in (".yaml", ".py")}
    assert names == {"adni_to_ppmi.yaml", "ixi_sex.yaml", "bids.yaml", "synthetic.yaml",
                     "python_api.py"}  # fmt: skip


def test_python_api_example(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "python_api.py"), str(tmp_path / "out"), "--tiny"],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = tmp_path / "out" / "finetune" / "report.html"
    assert report.is_file() and "Synthetic data." in report.read_text()
    assert (tmp_path / "out" / "pretrain" / "encoder.safetensors").is_file()


#: Fake trees: 8 subjects per class, one scan each, small enough to train in seconds.
PER_CLASS = 8
SHAPE = (20, 24, 20)

#: Shrinks any example to seconds: 16^3 voxels, one epoch per stage, one repeat.
TINY = [
    "data.preprocessing.target_shape=[16, 16, 16]",
    "pretrain.epochs=1",
    "pretrain.batch_size=4",
    "pretrain.val_size=0.25",  # 16 source scans: 2 per class in val and in test
    "pretrain.test_size=0.25",
    "finetune.epochs_frozen=1",
    "finetune.epochs_unfrozen=1",
    "finetune.batch_size=4",
    "evaluation.repeats=1",
    "evaluation.n_boot=50",
]
METHODS = {"finetune", "scratch", "linear_probe", "regional_probe", "regional_random", "ridge"}


def _archive(root: Path, study: str, groups: list[str], prefix: str, description: str) -> None:
    """An image-archive download (ADNI/ or PPMI/ + its collection CSV), 8 subjects per group."""
    rng = np.random.default_rng(len(prefix))
    rows = []
    for i in range(2 * PER_CLASS):
        subject, image_id = f"{prefix}_S_{i:04d}", f"I{prefix}{i:03d}"
        path = archive_scan(root, study, subject, image_id, description)
        write_nifti(path, blob_volume(SHAPE, label=i % 2, rng=rng))  # a learnable volume
        rows.append(collection_row(image_id, subject, groups[i % 2], description))
    pd.DataFrame(rows, columns=HEADER).to_csv(root / f"{study}_collection.csv", index=False)


def _bids(root: Path, letter: str, *, labelled: bool) -> None:
    """A BIDS dataset with sessions and (derivative) brain masks, 8 subjects per class."""
    rng = np.random.default_rng(ord(letter))
    rows = ["participant_id\tdiagnosis\tage"]
    for i in range(2 * PER_CLASS):
        sub = f"sub-{letter}{i:02d}"
        rows.append(f"{sub}\t{['Dementia', 'Control'][i % 2] if labelled else 'n/a'}\t70")
        volume = blob_volume(SHAPE, label=i % 2, rng=rng)
        stem = f"{sub}_ses-01_T1w"
        write_nifti(root / sub / "ses-01" / "anat" / f"{stem}.nii.gz", volume)
        mask = root / "derivatives" / "masks" / sub / "ses-01" / "anat" / f"{stem}_mask.nii.gz"
        write_nifti(mask, (volume > 0).astype(np.uint8))
    (root / "participants.tsv").write_text("\n".join(rows) + "\n")


def _run(example: str, out: Path, *overrides: str) -> pd.DataFrame:
    """``transmri run`` the example into ``out``; check what every run must hold.

    Exit code 0; a report with its summary and comparison sections; one
    ``comparison.csv`` row per method, all on one test set: the target test
    subjects of ``predictions_test.csv``, none of which is in the source cohort
    (so none was seen in pretraining). Returns the run's data statistics.
    """
    args = [a for s in overrides for a in ("--set", s)]
    done = transmri("run", str(EXAMPLES / example), "--out", str(out), *args)
    assert done.returncode == 0, done.stderr[-3000:]
    report = out / "report.html"
    assert f"Report: {report}" in done.stdout
    page = report.read_text()
    assert '<section id="summary">' in page and '<section id="comparison">' in page
    assert "No comparison.csv" not in page

    comparison = pd.read_csv(out / "comparison.csv", dtype={"test_subjects_hash": str})
    assert set(comparison["method"]) == METHODS
    assert comparison["test_subjects_hash"].nunique() == 1
    test_subjects = set(pd.read_csv(out / "predictions_test.csv", dtype=str)["subject"])
    assert comparison["test_subjects_hash"].iloc[0] == subjects_hash(sorted(test_subjects))

    card = json.loads((out / "pretrain" / "encoder.json").read_text())
    pretrained = set(card["training_subjects"])
    assert pretrained and not pretrained & test_subjects
    assert not set(pd.read_csv(out / "source.csv", dtype=str)["subject"]) & test_subjects
    return pd.read_csv(out / "data_stats.csv")


def test_adni_to_ppmi_on_fake_archive_trees(tmp_path: Path) -> None:
    _archive(tmp_path / "adni", "ADNI", ["AD", "CN"], "002", MPRAGE)
    _archive(tmp_path / "ppmi", "PPMI", ["PD", "Control"], "3001", "AX T2 FSE")
    stats = _run(
        "adni_to_ppmi.yaml", tmp_path / "run", *TINY,
        f"data.source.path={tmp_path / 'adni'}", f"data.target.path={tmp_path / 'ppmi'}",
        "evaluation.n_train=[8]",  # the paper's [20, 40, 80] need a bigger cohort
    )  # fmt: skip
    source = stats[stats["cohort"] == "source"]
    target = stats[stats["cohort"] == "target"]
    assert set(source["label"]) == {"AD", "CN"} and source["scans"].sum() == 2 * PER_CLASS
    assert set(target["label"]) == {"PD", "HC"} and target["scans"].sum() == 2 * PER_CLASS


def test_bids_on_fake_datasets(tmp_path: Path) -> None:
    _bids(tmp_path / "bids_source", "s", labelled=False)
    _bids(tmp_path / "bids_target", "t", labelled=True)
    stats = _run(
        "bids.yaml", tmp_path / "run", *TINY,
        f"data.source.path={tmp_path / 'bids_source'}",
        f"data.target.path={tmp_path / 'bids_target'}",
        "evaluation.n_train=[8]",
    )  # fmt: skip
    assert set(stats[stats["cohort"] == "target"]["label"]) == {"AD", "CN"}
    assert set(stats[stats["cohort"] == "source"]["label"]) == {"(unlabelled)"}


@pytest.mark.ixi
def test_ixi_sex_on_the_real_sample(tmp_path: Path) -> None:
    """Data statistics of the whole sample: the example's exact cohorts."""
    if not (IXI_ROOT / "participants.csv").exists():
        pytest.skip(f"real IXI sample not found at {IXI_ROOT}")
    done = transmri("stats", str(EXAMPLES / "ixi_sex.yaml"), "--out", str(tmp_path / "run"),
                    "--set", f"data.source.path={IXI_ROOT}",
                    "--set", f"data.target.path={IXI_ROOT}")  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    stats = pd.read_csv(tmp_path / "run" / "data_stats.csv")
    target = stats[stats["cohort"] == "target"]
    source = stats[stats["cohort"] == "source"]
    assert set(target["label"]) == {"F", "M"}
    assert set(source["label"]) == {"young", "old"}
    # Only the target's test subjects are kept out of pretraining.
    test_subjects = target[target["split"] == "test"]["subjects"].sum()
    assert source["scans"].sum() <= 125 and source["scans"].sum() >= 125 - test_subjects


@pytest.mark.ixi
def test_ixi_sex_runs_on_the_real_sample(tmp_path: Path) -> None:
    """The whole run on a draw of the real scans at low resolution."""
    if not (IXI_ROOT / "participants.csv").exists():
        pytest.skip(f"real IXI sample not found at {IXI_ROOT}")
    stats = _run(
        "ixi_sex.yaml", tmp_path / "run", *TINY,
        "data.preprocessing.target_shape=[24, 28, 24]",  # after TINY's: the last one wins
        f"data.source.path={IXI_ROOT}", "data.source.max_scans=16",
        f"data.target.path={IXI_ROOT}", "data.target.max_scans=16",
        "evaluation.n_train=[8]",
    )  # fmt: skip
    target = stats[stats["cohort"] == "target"]
    assert set(target["label"]) == {"F", "M"} and target["scans"].sum() == 16
    assert set(stats[stats["cohort"] == "source"]["label"]) == {"young", "old"}
