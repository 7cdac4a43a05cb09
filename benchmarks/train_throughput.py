"""Training throughput of the paper's CAE: samples/s, data-wait share, GFLOP/s vs a plain conv3d.

Builds a synthetic cohort of NIfTI files at the paper's size (108x128x108),
caches it through a DataBunch, and times training steps (forward, backward,
Adam step) of :class:`~transmri.models.ConvAutoEncoder` fed by
``DataBunch.dataloader``. For every step it separates the time spent waiting
for the next batch from the compute time. The achieved GFLOP/s (conv FLOPs
counted by ``torch.utils.flop_counter.FlopCounterMode``) is compared with the
rate of one plain ``conv3d`` forward measured in the same run.

Options measured: float32 (baseline), channels-last-3d, bf16 autocast and,
with ``--compile``, ``torch.compile``. Prints a Markdown table.

Example:
    OMP_NUM_THREADS=2 python benchmarks/train_throughput.py --batch 4 --steps 3
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from transmri.data import DataBunch, PreprocessConfig, ScanTable
from transmri.models import ConvAutoEncoder

__all__ = ["main"]


def make_cohort(root: Path, n: int, shape: tuple[int, int, int]) -> ScanTable:
    """Write ``n`` smooth synthetic brains (uncompressed NIfTI) and their table."""
    rng = np.random.default_rng(0)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij"))
    brain = (grid**2).sum(0) < 0.8
    rows = []
    for i in range(n):
        vol = (brain * (0.6 + 0.1 * rng.standard_normal(shape)) * 200).astype(np.float32)
        path = root / f"scan{i:03d}.nii"
        nib.save(nib.Nifti1Image(vol, np.eye(4)), path)
        rows.append({"path": str(path), "subject": f"sub-{i:03d}", "label": "CN"})
    csv = root / "scans.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    return ScanTable.from_csv(csv, label_col=None)


def step_flops(model: torch.nn.Module, x: torch.Tensor) -> float:
    """FLOPs of one forward + backward pass on ``x``."""
    counter = FlopCounterMode(display=False)
    with counter:
        out = model(x)["reconstruction"]
        F.mse_loss(out, x).backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def conv3d_rate(shape: tuple[int, int, int], batch: int, repeats: int = 3) -> float:
    """GFLOP/s of a plain conv3d forward (8 -> 16 channels, k3, half resolution)."""
    x = torch.rand(batch, 8, *(s // 2 for s in shape))
    w = torch.rand(16, 8, 3, 3, 3)
    counter = FlopCounterMode(display=False)
    with counter:
        F.conv3d(x, w, padding=1)
    flops = float(counter.get_total_flops())
    F.conv3d(x, w, padding=1)
    start = time.perf_counter()
    for _ in range(repeats):
        F.conv3d(x, w, padding=1)
    return flops * repeats / (time.perf_counter() - start) / 1e9


def timed_steps(
    loader: Any,
    model: torch.nn.Module,
    steps: int,
    *,
    prepare: Callable[[torch.Tensor], torch.Tensor],
    autocast: Callable[[], contextlib.AbstractContextManager[Any]],
) -> tuple[float, float, int]:
    """Run 1 warm-up + ``steps`` training steps; return (wait s, compute s, samples)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def batches() -> Iterator[dict[str, torch.Tensor]]:
        while True:
            yield from loader

    stream = batches()
    wait = compute = 0.0
    samples = 0
    for i in range(steps + 1):
        t0 = time.perf_counter()
        batch = next(stream)
        t1 = time.perf_counter()
        x = prepare(batch["image"])
        with autocast():
            out = model(x)["reconstruction"]
            loss = F.mse_loss(out.float(), x.float())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        t2 = time.perf_counter()
        if i > 0:  # the first step warms caches (and compiles)
            wait += t1 - t0
            compute += t2 - t1
            samples += x.shape[0]
    return wait, compute, samples


def main() -> None:
    """Parse options, run every configuration, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=(108, 128, 108))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--scans", type=int, default=0, help="default: 2 batches")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--compile", action="store_true", help="also try torch.compile")
    args = parser.parse_args()
    shape = tuple(args.shape)
    n = args.scans or 2 * args.batch

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        table = make_cohort(root, n, shape)  # type: ignore[arg-type]
        data = DataBunch(
            table,
            PreprocessConfig(target_shape=shape),
            cache_dir=root / "cache",
            val_size=0.0,
            test_size=0.0,
            seed=0,
        )
        data.prepare(progress=False)
        print(f"cohort of {n} scans written and cached in {time.perf_counter() - t:.1f} s")
        loader = data.dataloader("train", args.batch, num_workers=args.workers, drop_last=True)
        torch.manual_seed(0)
        probe = ConvAutoEncoder()
        flops_per_sample = step_flops(probe, torch.rand(1, 1, *shape))
        conv_rate = conv3d_rate(shape, args.batch)  # type: ignore[arg-type]

        configs: list[tuple[str, Any, Any, Any]] = [
            ("float32 (baseline)", lambda m: m, lambda x: x, contextlib.nullcontext),
            (
                "channels-last-3d",
                lambda m: m.to(memory_format=torch.channels_last_3d),
                lambda x: x.contiguous(memory_format=torch.channels_last_3d),
                contextlib.nullcontext,
            ),
            (
                "bf16 autocast",
                lambda m: m,
                lambda x: x,
                lambda: torch.autocast("cpu", dtype=torch.bfloat16),
            ),
        ]
        # the baseline again: the spread between its two runs is the machine's noise
        configs.append(
            ("float32 (baseline, again)", lambda m: m, lambda x: x, contextlib.nullcontext)
        )
        if args.compile:
            configs.append(("torch.compile", torch.compile, lambda x: x, contextlib.nullcontext))
        rows = []
        for name, wrap, prepare, autocast in configs:
            torch.manual_seed(0)
            model = wrap(ConvAutoEncoder())
            start = time.perf_counter()
            try:
                wait, compute, samples = timed_steps(
                    loader, model, args.steps, prepare=prepare, autocast=autocast
                )
            except Exception as exc:  # report an option that fails instead of stopping
                rows.append(f"| {name} | failed: {type(exc).__name__} | | | |")
                continue
            total = wait + compute
            rows.append(
                f"| {name} | {samples / total:.2f} | {100 * wait / total:.1f} % | "
                f"{flops_per_sample * samples / compute / 1e9:.1f} | "
                f"{time.perf_counter() - start:.0f} s |"
            )
    print(
        f"\nmachine: {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} torch threads, torch {torch.__version__}"
    )
    print(
        f"CAE at {shape}, batch {args.batch}, {args.steps} timed steps after 1 warm-up, "
        f"{args.workers} loader worker(s)"
    )
    print(f"model FLOPs (forward + backward): {flops_per_sample / 1e9:.2f} GFLOP per sample")
    print(f"plain conv3d forward (8->16, k3, half resolution): {conv_rate:.1f} GFLOP/s\n")
    print("| option | samples/s | data wait | achieved GFLOP/s | wall |")
    print("|---|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
