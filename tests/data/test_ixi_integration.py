"""End to end on real MRI: the IXI sample through ScanTable, cache, split and loaders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from transmri.data.databunch import DataBunch
from transmri.data.preprocess import PreprocessConfig
from transmri.data.table import ScanTable

pytestmark = pytest.mark.ixi

N_SUBJECTS = 30


def ixi_table(root: Path, n: int) -> ScanTable:
    """The first ``n`` participants whose scan exists, labelled by sex."""
    participants = pd.read_csv(root / "participants.csv", dtype=str)
    participants["path"] = [f"t1/{m}_T1.nii.gz" for m in participants["MRID"]]
    participants["mask"] = [f"brainmask/{m}_brainmask.nii.gz" for m in participants["MRID"]]
    present = participants[[(root / p).exists() for p in participants["path"]]]
    # Take n with both sexes in equal numbers, so that every split can hold both.
    per_sex = [g.head(n // 2) for _, g in present.groupby("Sex", sort=True)]
    chosen = pd.concat(per_sex).sort_index()
    frame = chosen.rename(columns={"MRID": "subject", "Sex": "label", "Age": "age"})
    return ScanTable.from_frame(
        frame, mask_col="mask", root=root, source=str(root / "participants.csv")
    )


def test_ixi_databunch_end_to_end(ixi_root: Path, tmp_path: Path) -> None:
    table = ixi_table(ixi_root, N_SUBJECTS)
    assert len(table) == N_SUBJECTS and table.label_counts() == {"F": 15, "M": 15}
    data = DataBunch(
        table,
        PreprocessConfig(target_shape=(64, 64, 48)),
        cache_dir=tmp_path / "cache",
        val_size=0.2,
        test_size=0.2,
        seed=0,
        targets=("age",),
    )
    subjects = {n: set(data.subjects(n)) for n in ("train", "val", "test")}  # type: ignore[arg-type]
    assert not subjects["train"] & subjects["val"]
    assert not subjects["train"] & subjects["test"]
    assert not subjects["val"] & subjects["test"]
    assert sum(len(s) for s in subjects.values()) == N_SUBJECTS

    for name in ("train", "val", "test"):
        counts = data.split_table(name).label_counts()  # type: ignore[arg-type]
        fraction_f = counts.get("F", 0) / sum(counts.values())
        assert abs(fraction_f - 0.5) <= 0.2, (name, counts)

    assert data.prepare(progress=False) == N_SUBJECTS
    data.build_dataloaders(bs=4)
    assert data.train_dl is not None
    batch = next(iter(data.train_dl))
    image = batch["image"]
    assert image.shape == (4, 1, 64, 64, 48) and image.dtype == torch.float32
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
    brain_fraction = (image > 0).float().mean(dim=(1, 2, 3, 4))
    assert bool((brain_fraction > 0.05).all()), brain_fraction  # skull-stripped brain, not empty
    assert bool((brain_fraction < 0.6).all()), brain_fraction  # and the background is zero
    ages = batch["age"].numpy()
    assert np.all((ages >= 18) & (ages <= 90))
    sexes = [data.classes[i] for i in batch["label"].tolist()]
    truth = dict(zip(table.paths, table.frame["label"]))
    paths = [data.train_ds.table.paths[i] for i in batch["index"].tolist()]
    assert sexes == [truth[p] for p in paths]
