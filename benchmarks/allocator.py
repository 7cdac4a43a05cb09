"""Allocator churn: glibc's default thresholds vs :func:`transmri._allocator.keep_freed_memory`.

Each configuration runs in a fresh process (the setting is process-wide and
must come before the first large allocation), alternating default / raised for
``--rounds`` pairs, so both see the same machine load. Every child times

(a) a minimal PyTorch loop on an in-memory batch (forward, MSE, backward, Adam),
(b) ``Learner.fit`` of the same CAE on a cached synthetic cohort (through
    ``DataBunch.dataloader``, history, checkpoints),

and reports the minor page faults per step and the peak RSS. The ratio columns
compare the medians of the two settings measured in the same run.

Usage:
    OMP_NUM_THREADS=2 python benchmarks/allocator.py [--shape 64 64 48] [--batch 8]
        [--steps 6] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["main"]


def _minflt() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def child(setting: str, shape: tuple[int, int, int], batch: int, steps: int) -> dict[str, Any]:
    """Measure one setting in this (fresh) process; return the numbers."""
    applied = False
    if setting == "raised":
        from transmri._allocator import keep_freed_memory

        applied = keep_freed_memory()
    import torch
    import torch.nn.functional as F

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from train_throughput import make_cohort

    from transmri.data import DataBunch, PreprocessConfig
    from transmri.models import ConvAutoEncoder
    from transmri.training import Learner

    torch.manual_seed(0)
    model = ConvAutoEncoder()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(batch, 1, *shape)

    def step() -> None:
        loss = F.mse_loss(model(x)["reconstruction"], x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()  # warm-up
    f0, t0 = _minflt(), time.perf_counter()
    for _ in range(steps):
        step()
    loop_s = (time.perf_counter() - t0) / steps
    loop_faults = (_minflt() - f0) / steps

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        table = make_cohort(root, batch * steps, shape)
        data = DataBunch(
            table,
            PreprocessConfig(target_shape=shape),
            cache_dir=root / "cache",
            val_size=0.0,
            test_size=0.0,
            seed=0,
        )
        data.prepare(progress=False)
        torch.manual_seed(0)
        options = {"batch_size": batch, "progress": False}
        Learner(data, ConvAutoEncoder(), root / "warm-up", **options).fit(
            1, 1e-3, monitor="train_loss"
        )
        learner = Learner(data, ConvAutoEncoder(), root / "run", **options)
        f0, t0 = _minflt(), time.perf_counter()
        learner.fit(1, 1e-3, monitor="train_loss")
        fit_s = (time.perf_counter() - t0) / steps
        fit_faults = (_minflt() - f0) / steps
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "setting": setting,
        "applied": applied,
        "loop_s": loop_s,
        "loop_faults": loop_faults,
        "fit_s": fit_s,
        "fit_faults": fit_faults,
        "rss_mib": rss_mib,
    }


def main() -> None:
    """Run the alternating fresh-process pairs and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=(64, 64, 48))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", choices=["default", "raised"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    shape = (args.shape[0], args.shape[1], args.shape[2])
    if args.child:
        print(json.dumps(child(args.child, shape, args.batch, args.steps)))
        return

    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env["TRANSMRI_MALLOC"] = "off-by-benchmark"  # neither 'default' nor unset matters here
    results: dict[str, list[dict[str, Any]]] = {"default": [], "raised": []}
    for _ in range(args.rounds):
        for setting in ("default", "raised"):
            cmd = [sys.executable, __file__, "--child", setting, "--shape", *map(str, shape)]
            cmd += ["--batch", str(args.batch), "--steps", str(args.steps)]
            out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
            results[setting].append(json.loads(out.stdout.strip().splitlines()[-1]))

    def med(setting: str, key: str) -> float:
        return statistics.median(r[key] for r in results[setting])

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; CAE at {shape}, "
        f"batch {args.batch}, {args.steps} timed steps, {args.rounds} fresh-process pairs "
        f"(medians); raised applied: {all(r['applied'] for r in results['raised'])}\n"
    )
    print("| measure | glibc default | raised thresholds | default / raised |")
    print("|---|---|---|---|")
    for key, label, fmt in [
        ("loop_s", "minimal loop, s per step", "{:.3f}"),
        ("loop_faults", "minimal loop, minor faults per step", "{:,.0f}"),
        ("fit_s", "Learner.fit, s per step", "{:.3f}"),
        ("fit_faults", "Learner.fit, minor faults per step", "{:,.0f}"),
        ("rss_mib", "peak RSS, MiB", "{:.0f}"),
    ]:
        a, b = med("default", key), med("raised", key)
        ratio = f"{a / b:.2f}" if b else "n/a"
        print(f"| {label} | {fmt.format(a)} | {fmt.format(b)} | {ratio} |")


if __name__ == "__main__":
    main()
