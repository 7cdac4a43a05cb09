"""Every file in examples/ runs: synthetic ones end to end at tiny size, the others on
tiny fake trees in their exact layouts (data statistics), IXI on the real sample."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import IXI_ROOT, write_nifti
from tests.datasets.test_adni import HEADER, MPRAGE, archive_scan, collection_row
from tests.test_cli import transmri

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


def _archive(root: Path, study: str, groups: list[str], prefix: str, description: str) -> None:
    rows = []
    for i in range(12):
        subject, image_id = f"{prefix}_S_{i:04d}", f"I{prefix}{i:03d}"
        archive_scan(root, study, subject, image_id, description)
        rows.append(collection_row(image_id, subject, groups[i % 2], description))
    pd.DataFrame(rows, columns=HEADER).to_csv(root / f"{study}_collection.csv", index=False)


def _stats(example: str, tmp_path: Path, *overrides: str) -> pd.DataFrame:
    args = [a for s in overrides for a in ("--set", s)]
    done = transmri("stats", str(EXAMPLES / example), "--out", str(tmp_path / "run"), *args)
    assert done.returncode == 0, done.stderr[-3000:]
    return pd.read_csv(tmp_path / "run" / "data_stats.csv")


def test_adni_to_ppmi_on_fake_archive_trees(tmp_path: Path) -> None:
    _archive(tmp_path / "adni", "ADNI", ["AD", "CN"], "002", MPRAGE)
    _archive(tmp_path / "ppmi", "PPMI", ["PD", "Control"], "3001", "AX T2 FSE")
    stats = _stats(
        "adni_to_ppmi.yaml", tmp_path,
        f"data.source.path={tmp_path / 'adni'}", f"data.target.path={tmp_path / 'ppmi'}",
        "pretrain.val_size=0.25", "pretrain.test_size=0.25",  # 12 scans: 4 folds, not 10
    )  # fmt: skip
    source = stats[stats["cohort"] == "source"]
    target = stats[stats["cohort"] == "target"]
    assert set(source["label"]) == {"AD", "CN"} and source["scans"].sum() == 12
    assert set(target["label"]) == {"PD", "HC"} and target["scans"].sum() == 12


def test_bids_on_fake_datasets(tmp_path: Path) -> None:
    for name, labelled in (("bids_source", False), ("bids_target", True)):
        root = tmp_path / name
        root.mkdir()
        rows = ["participant_id\tdiagnosis\tage"]
        for i in range(12):
            sub = f"sub-{name[5]}{i:02d}"
            rows.append(f"{sub}\t{['Dementia', 'Control'][i % 2] if labelled else 'n/a'}\t70")
            volume = np.ones((6, 6, 6), dtype=np.float32)
            stem = f"{sub}_ses-01_T1w"
            write_nifti(root / sub / "ses-01" / "anat" / f"{stem}.nii.gz", volume)
            mask = root / "derivatives" / "masks" / sub / "ses-01" / "anat" / f"{stem}_mask.nii.gz"
            write_nifti(mask, volume.astype(np.uint8))
        (root / "participants.tsv").write_text("\n".join(rows) + "\n")
    stats = _stats(
        "bids.yaml", tmp_path,
        f"data.source.path={tmp_path / 'bids_source'}",
        f"data.target.path={tmp_path / 'bids_target'}",
        "pretrain.val_size=0.25", "pretrain.test_size=0.25",
    )  # fmt: skip
    assert set(stats[stats["cohort"] == "target"]["label"]) == {"AD", "CN"}
    assert set(stats[stats["cohort"] == "source"]["label"]) == {"(unlabelled)"}


@pytest.mark.ixi
def test_ixi_sex_on_the_real_sample(tmp_path: Path) -> None:
    if not (IXI_ROOT / "participants.csv").exists():
        pytest.skip(f"real IXI sample not found at {IXI_ROOT}")
    stats = _stats("ixi_sex.yaml", tmp_path, f"data.source.path={IXI_ROOT}",
                   f"data.target.path={IXI_ROOT}")  # fmt: skip
    target = stats[stats["cohort"] == "target"]
    source = stats[stats["cohort"] == "source"]
    assert set(target["label"]) == {"F", "M"}
    assert set(source["label"]) == {"young", "old"}
    # Only the target's test subjects are kept out of pretraining.
    test_subjects = target[target["split"] == "test"]["subjects"].sum()
    assert source["scans"].sum() <= 125 and source["scans"].sum() >= 125 - test_subjects
