"""Benchmark of the data path: decoding + preprocessing vs reading the cache.

Prints a table of per-volume times for

(a) decoding a NIfTI and preprocessing it (``preprocess_scan``),
(b) reading the :class:`~transmri.data.cache.VolumeCache` (``np.load`` with
    mmap, then a float32 tensor), warm page cache,
(c) MONAI ``PersistentDataset`` on the same pipeline (second pass),

and the peak RSS of a fresh process iterating 1 vs N copies of the cached
dataset (memory-mapped), next to an in-RAM list of the same volumes.

Uses the real IXI scans from ``../shared/data/ixi`` (first ``--n`` scans with
their brain masks) and falls back to synthetic NIfTI files if absent.

Usage:
    OMP_NUM_THREADS=1 python benchmarks/data_path.py [--n 40] [--shape 64 64 48] [--copies 8]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch

from transmri.data.cache import VolumeCache
from transmri.data.preprocess import PreprocessConfig, preprocess_scan

__all__ = ["main"]

IXI_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "ixi"


def _scans(n: int, workdir: Path) -> tuple[list[tuple[str, str | None]], str]:
    """``n`` (scan, mask) pairs: IXI if present, else synthetic 120x120x90 files."""
    t1 = IXI_ROOT / "t1"
    if t1.is_dir():
        pairs: list[tuple[str, str | None]] = []
        for scan in sorted(t1.glob("*_T1.nii.gz")):
            mask = IXI_ROOT / "brainmask" / scan.name.replace("_T1", "_brainmask")
            if mask.exists():
                pairs.append((str(scan), str(mask)))
            if len(pairs) == n:
                break
        return pairs, f"IXI T1 ({len(pairs)} scans, 120x120x90 uint8 .nii.gz + brain mask)"
    rng = np.random.default_rng(0)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, s) for s in (120, 120, 90)], indexing="ij"))
    head = (grid**2).sum(0) < 0.9
    brain = (grid**2).sum(0) < 0.6
    pairs = []
    for i in range(n):
        vol = (head * (80 + 40 * rng.random(head.shape))).astype(np.float32)
        scan = workdir / f"synthetic_{i:03d}.nii.gz"
        mask = workdir / f"synthetic_{i:03d}_mask.nii.gz"
        nib.save(nib.Nifti1Image(vol, np.diag([2.0, 2.0, 2.0, 1.0])), scan)
        nib.save(nib.Nifti1Image(brain.astype(np.uint8), np.diag([2.0, 2.0, 2.0, 1.0])), mask)
        pairs.append((str(scan), str(mask)))
    return pairs, f"synthetic ({n} scans, 120x120x90 float32 .nii.gz + mask; IXI not found)"


def _per_volume(fn: Callable[[], object], count: int) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) / count


def _time_preprocess(pairs: Sequence[tuple[str, str | None]], config: PreprocessConfig) -> float:
    return _per_volume(lambda: [preprocess_scan(s, m, config) for s, m in pairs], len(pairs))


def _read_cached(cache: VolumeCache, pairs: Sequence[tuple[str, str | None]]) -> None:
    for scan, mask in pairs:
        cache.get_tensor(scan, mask)


def _read_mmap_numpy(cache: VolumeCache, pairs: Sequence[tuple[str, str | None]]) -> None:
    for scan, mask in pairs:
        torch.from_numpy(np.asarray(cache.get(scan, mask), dtype=np.float32)).unsqueeze(0)


def _time_persistent(
    pairs: Sequence[tuple[str, str | None]], config: PreprocessConfig, cache_dir: Path
) -> tuple[float, float]:
    from monai.data import PersistentDataset
    from monai.transforms import Transform

    class Preprocess(Transform):  # the same pipeline, as a MONAI transform
        def __call__(self, item: dict[str, Any]) -> dict[str, Any]:
            volume = preprocess_scan(item["image"], item["mask"], config)
            return {"image": torch.from_numpy(volume).unsqueeze(0)}

    data = [{"image": s, "mask": m} for s, m in pairs]
    ds = PersistentDataset(data, transform=Preprocess(), cache_dir=cache_dir)
    first = _per_volume(lambda: [ds[i] for i in range(len(ds))], len(ds))
    second = _per_volume(lambda: [ds[i] for i in range(len(ds))], len(ds))
    return first, second


_RSS_WORKER = """
import json, sys, numpy as np, psutil, torch
from transmri.data.cache import VolumeCache
from transmri.data.preprocess import PreprocessConfig
spec = json.load(open(sys.argv[1]))
copies, mode = int(sys.argv[2]), sys.argv[3]
proc = psutil.Process()
cache = VolumeCache(spec["root"], PreprocessConfig.from_dict(spec["config"]))
pairs = [tuple(p) for p in spec["pairs"]]
for scan, mask in pairs:
    cache.key(scan, mask)  # hash the files once (memoised), as a dataset's first epoch would
base = proc.memory_info().rss
peak = base
if mode == "mmap":
    datasets = [[(s, m) for s, m in pairs] for _ in range(copies)]
    get = lambda item: cache.get(*item)
else:  # every copy holds its volumes in RAM, as an in-memory cache would
    datasets = [[np.array(cache.get(s, m)) for s, m in pairs] for _ in range(copies)]
    get = lambda item: item
for _ in range(2):  # two epochs
    for ds in datasets:
        for item in ds:
            x = torch.from_numpy(np.array(get(item), dtype=np.float32)).unsqueeze(0)
            peak = max(peak, proc.memory_info().rss)
print(json.dumps({"base_mb": base / 2**20, "peak_mb": peak / 2**20}))
"""


def _peak_rss(spec_file: Path, copies: int, mode: str) -> dict[str, float]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", _RSS_WORKER, str(spec_file), str(copies), mode],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its table; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40, help="number of scans")
    parser.add_argument("--shape", type=int, nargs=3, default=(64, 64, 48), help="target shape")
    parser.add_argument("--copies", type=int, default=8, help="copies of the dataset for RSS")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    config = PreprocessConfig(target_shape=tuple(args.shape))

    with tempfile.TemporaryDirectory(prefix="transmri-bench-") as tmp:
        work = Path(tmp)
        pairs, what = _scans(args.n, work)
        n = len(pairs)
        print(f"data: {what}; target shape {tuple(args.shape)}; float16 cache")
        print(f"torch threads: {torch.get_num_threads()}, cpu count: {os.cpu_count()}")

        preprocess_scan(*pairs[0], config)  # warm imports and MONAI lazy init
        t_pre = _time_preprocess(pairs, config)

        cache = VolumeCache(work / "cache", config)
        t_fill = _per_volume(lambda: cache.fill(_table(pairs), progress=False), n)
        _read_cached(cache, pairs)  # warm page cache and hash memo
        t_cache = min(_per_volume(lambda: _read_cached(cache, pairs), n) for _ in range(3))
        t_mmap = min(_per_volume(lambda: _read_mmap_numpy(cache, pairs), n) for _ in range(3))

        t_pd_first, t_pd = _time_persistent(pairs, config, work / "persistent")
        t_pd = min(t_pd, _time_persistent(pairs, config, work / "persistent")[1])

        rows = [
            ("(a) decode + preprocess NIfTI", t_pre, 1.0),
            ("    cache fill (one-time, serial)", t_fill, t_pre / t_fill),
            ("(b) VolumeCache.get_tensor (float32 tensor)", t_cache, t_pre / t_cache),
            ("    VolumeCache.get (mmap) + numpy float32", t_mmap, t_pre / t_mmap),
            ("    MONAI PersistentDataset, first pass", t_pd_first, t_pre / t_pd_first),
            ("(c) MONAI PersistentDataset, second pass", t_pd, t_pre / t_pd),
        ]
        print()
        print(f"{'step':48s} {'ms/volume':>10s} {'speed-up vs (a)':>16s}")
        for name, seconds, ratio in rows:
            print(f"{name:48s} {seconds * 1e3:10.3f} {ratio:15.1f}x")
        print(f"(c)/(b): VolumeCache is {t_pd / t_cache:.1f}x faster than PersistentDataset")

        spec = work / "spec.json"
        spec.write_text(
            json.dumps(
                {
                    "root": str(cache.root),
                    "config": config.to_dict(),
                    "pairs": [list(p) for p in pairs],
                }
            )
        )
        print()
        print(
            f"{'peak RSS, 2 epochs over k copies':40s} {'k=1 MB':>8s} {f'k={args.copies} MB':>8s}"
            f" {'growth MB':>10s}"
        )
        for mode, label in (("mmap", "VolumeCache (mmap)"), ("ram", "in-RAM list of the volumes")):
            one = _peak_rss(spec, 1, mode)
            many = _peak_rss(spec, args.copies, mode)
            print(
                f"{label:40s} {one['peak_mb']:8.1f} {many['peak_mb']:8.1f}"
                f" {many['peak_mb'] - one['peak_mb']:10.1f}"
            )
        size_mb = n * int(np.prod(args.shape)) * 2 / 2**20
        print(f"(cached data: {n} volumes, {size_mb:.1f} MB as float16)")
    return 0


def _table(pairs: Sequence[tuple[str, str | None]]) -> Any:
    import pandas as pd

    from transmri.data.table import ScanTable

    frame = pd.DataFrame(
        {
            "path": [s for s, _ in pairs],
            "subject": [f"s{i}" for i in range(len(pairs))],
            "mask": [m for _, m in pairs],
        }
    )
    return ScanTable.from_frame(frame, label_col=None, mask_col="mask", source="benchmark")


if __name__ == "__main__":
    raise SystemExit(main())
