"""DDP for real: 2 CPU processes (gloo) through Lightning Fabric match a 1-process run.

The math matches exactly when the global batch is the same: the 1-process
run uses ``batch_size=4``, each of the 2 processes ``batch_size=2``; both
shuffle with the same seeded :class:`DistributedSampler` permutation, so
global step ``k`` sees the same 4 scans, and DDP averages the two local
mean gradients into the 1-process mean gradient (an MSE objective, equal
local batch sizes). Validation shards are gathered, so ``val_loss`` is the
mean over the same scans.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

SCRIPT = textwrap.dedent(
    """
    import sys, warnings
    warnings.simplefilter("ignore")
    import torch
    torch.set_num_threads(1)
    from transmri.data import DataBunch, PreprocessConfig, ScanTable
    from transmri.models import ConvAutoEncoder
    from transmri.training import Learner

    csv, cache, run, devices, batch = sys.argv[1:6]
    table = ScanTable.from_csv(csv, mask_col="mask")
    data = DataBunch(table, PreprocessConfig(target_shape=(16, 16, 16)), cache_dir=cache,
                     val_size=0.25, test_size=0.25, seed=0)
    torch.manual_seed(0)
    model = ConvAutoEncoder(channels=(4, 8))
    options = {"strategy": "ddp", "accelerator": "cpu", "devices": 2} if devices == "2" else {}
    learner = Learner(data, model, run, batch_size=int(batch), progress=False, **options)
    learner.fit(2, 3e-3)
    learner.save("final")
    codes, _, _ = learner.encode_data("test")
    if learner.is_global_zero:
        torch.save(torch.from_numpy(codes), run + "/codes.pt")
    """
)


def _run(script: Path, csv: Path, cache: Path, run: Path, devices: int, batch: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    env.pop("MASTER_PORT", None)
    result = subprocess.run(
        [sys.executable, str(script), str(csv), str(cache), str(run), str(devices), str(batch)],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        cwd=script.parent,
    )
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
def test_two_process_ddp_matches_one_process(
    make_cohort: Callable[..., Path], tmp_path: Path
) -> None:
    csv = make_cohort(16)
    script = tmp_path / "train_ddp.py"
    script.write_text(SCRIPT)
    _run(script, csv, tmp_path / "cache", tmp_path / "one", devices=1, batch=4)
    _run(script, csv, tmp_path / "cache", tmp_path / "two", devices=2, batch=2)

    one = load_file(str(tmp_path / "one" / "models" / "final.safetensors"))
    two = load_file(str(tmp_path / "two" / "models" / "final.safetensors"))
    for key in one:
        torch.testing.assert_close(two[key], one[key], atol=1e-5, rtol=1e-4)
    h1 = pd.read_csv(tmp_path / "one" / "history.csv")
    h2 = pd.read_csv(tmp_path / "two" / "history.csv")
    pd.testing.assert_frame_equal(h1, h2, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(
        torch.load(tmp_path / "two" / "codes.pt"),
        torch.load(tmp_path / "one" / "codes.pt"),
        atol=1e-5,
        rtol=1e-4,
    )
    # rank 0 alone wrote the run folder: one history, no stray temporary files
    assert json.loads((tmp_path / "two" / "run.json").read_text())["config"]["world_size"] == 2
    assert len(h2) == 2
    assert not [p for p in (tmp_path / "two").rglob("*") if p.name.endswith(".tmp")]


FAILING = textwrap.dedent(
    """
    import sys, warnings
    warnings.simplefilter("ignore")
    import torch
    torch.set_num_threads(1)
    from transmri.data import DataBunch, PreprocessConfig, ScanTable
    from transmri.models import ConvAutoEncoder
    from transmri.training import Learner

    csv, cache, run = sys.argv[1:4]
    table = ScanTable.from_csv(csv, mask_col="mask")
    data = DataBunch(table, PreprocessConfig(target_shape=(16, 16, 16)), cache_dir=cache,
                     val_size=0.25, test_size=0.25, seed=0)
    model = ConvAutoEncoder(channels=(4, 8))
    learner = Learner(data, model, run, batch_size=2, progress=False, strategy="ddp",
                      accelerator="cpu", devices=2)
    try:
        learner.fit(1, 3e-3)
    except Exception as exc:
        import os
        print(f"rank {os.environ.get('LOCAL_RANK', '0')}: {type(exc).__name__}: {exc}", flush=True)
        raise
    """
)


@pytest.mark.slow
def test_a_run_folder_error_on_rank_0_stops_every_rank(
    make_cohort: Callable[..., Path], tmp_path: Path
) -> None:
    csv = make_cohort(16)
    script = tmp_path / "fail_ddp.py"
    script.write_text(FAILING)
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text('{"identity": {"other": "run"}}')  # not ours: rank 0 refuses
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    env.pop("MASTER_PORT", None)
    result = subprocess.run(
        [sys.executable, str(script), str(csv), str(tmp_path / "cache"), str(run)],
        capture_output=True,
        text=True,
        timeout=120,  # before the fix, rank 1 waited at the barrier until killed
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert "rank 0: OutputExistsError" in result.stdout, result.stdout + result.stderr[-2000:]
    assert "rank 1: OutputExistsError" in result.stdout
    assert "rank 0 could not prepare the run folder" in result.stdout
    assert json.loads((run / "run.json").read_text()) == {"identity": {"other": "run"}}
