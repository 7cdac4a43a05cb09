"""Load: the data path over 2,000 cached volumes for several epochs keeps memory flat."""

from __future__ import annotations

import time
from pathlib import Path

import psutil
import pytest
import torch
from torch.utils.data import DataLoader

from tests.reliability._helpers import tiny_cohort
from transmri.data import DataBunch, PreprocessConfig, ScanTable

N_SCANS = 1000
SHAPE = (16, 16, 16)
EPOCHS = 6
# One epoch reads ~800 training volumes of 16 KB (float32): 13 MB. A leak of
# even a quarter of what an epoch reads (a kept tensor, an unclosed memory map,
# a growing per-item cache) would add > 3.2 MB per epoch, > 16 MB over the five
# epochs after the first. Allocator noise (arenas, freed-but-kept pages) is a
# few MB. So: growth after the first epoch must stay under 16 MB.
MAX_GROWTH_MB = 16.0


def _rss_mb(proc: psutil.Process) -> float:
    """Resident memory of this process and all its children (the loader workers), in MB."""
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / 2**20


@pytest.mark.slow
def test_data_path_soak_memory_flat(tmp_path: Path) -> None:
    t0 = time.monotonic()
    csv = tiny_cohort(tmp_path / "cohort", N_SCANS, shape=SHAPE)
    table = ScanTable.from_csv(csv)
    data = DataBunch(
        table, PreprocessConfig(target_shape=SHAPE), cache_dir=tmp_path / "cache", seed=0
    )
    assert data.prepare(n_jobs=2, progress=False) == N_SCANS
    assert data.prepare(n_jobs=2, progress=False) == 0  # all cached now
    ds = data.train_ds
    generator = torch.Generator().manual_seed(0)
    # Persistent workers: a leak in the dataset or cache code inside a worker
    # accumulates across epochs instead of vanishing with a fresh worker.
    loader = DataLoader(
        ds,
        batch_size=32,
        shuffle=True,
        num_workers=2,
        persistent_workers=True,
        generator=generator,
    )
    me = psutil.Process()
    peaks: list[float] = []
    seen = 0
    for _ in range(EPOCHS):
        peak = 0.0
        for step, batch in enumerate(loader):
            assert batch["image"].shape[1:] == (1, *SHAPE)
            assert torch.isfinite(batch["image"]).all()
            seen += len(batch["image"])
            if step % 10 == 0:
                peak = max(peak, _rss_mb(me))
        peaks.append(max(peak, _rss_mb(me)))
    del loader
    assert seen == EPOCHS * len(ds)
    growth = max(peaks[1:]) - peaks[0]
    print(
        f"soak: {N_SCANS} scans, {EPOCHS} epochs, RSS peaks (MB) {[round(p) for p in peaks]}, "
        f"growth {growth:.1f} MB, {time.monotonic() - t0:.0f} s"
    )
    assert growth < MAX_GROWTH_MB, peaks
