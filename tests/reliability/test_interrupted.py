"""Interrupted work: a process SIGKILLed while it fills the cache or trains.

What must hold afterwards: no corrupt or half-written entry is ever served, a
rerun completes the work, and (training) resuming from the last checkpoint
reaches the same weights as a run that was never interrupted.
"""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tests.reliability import _jobs
from tests.reliability._helpers import kill_when, start, temp_files, tiny_cohort
from transmri.data.cache import STALE_TEMP_SECONDS, VolumeCache
from transmri.data.preprocess import PreprocessConfig, preprocess_scan
from transmri.data.table import ScanTable
from transmri.errors import IntegrityError
from transmri.training import checkpoint as checkpoint_module
from transmri.training.checkpoint import load_checkpoint, save_checkpoint

pytestmark = pytest.mark.slow

CONFIG = PreprocessConfig(target_shape=(8, 8, 8))

FILL = textwrap.dedent(
    """
    import sys
    from transmri.data.cache import VolumeCache
    from transmri.data.preprocess import PreprocessConfig
    from transmri.data.table import ScanTable
    table = ScanTable.from_csv(sys.argv[1], label_col=None)
    cache = VolumeCache(sys.argv[2], PreprocessConfig(target_shape=(8, 8, 8)))
    print(cache.fill(table, progress=False))
    """
)


def _sidecars(root: Path) -> list[Path]:
    return list(root.glob("??/*.json")) if root.is_dir() else []


def test_cache_fill_killed_then_rerun(tmp_path: Path) -> None:
    n = 400
    csv = tiny_cohort(tmp_path / "cohort", n)
    root = tmp_path / "cache"
    proc = start(FILL, csv, root)
    # Kill mid-fill: some entries done, most not.
    kill_when(proc, lambda: len(_sidecars(root)) >= 25)
    done_before = len(_sidecars(root))
    assert 25 <= done_before < n

    cache = VolumeCache(root, CONFIG)
    # Whatever the kill left (an .npy without sidecar, a temp file) is never an entry,
    # and every entry with a sidecar is complete: its sha256 matches.
    assert cache.verify(rebuild=False) == []
    listed = cache.keys()
    for npy in root.glob("??/*.npy"):
        if not npy.with_suffix(".json").exists():
            assert npy.stem not in listed

    table = ScanTable.from_csv(csv, label_col=None)
    built = cache.fill(table, progress=False)
    assert len(cache.keys()) == n
    # the rerun builds only what was missing (+1: an entry whose sidecar the kill cut off)
    assert n - done_before <= built <= n - done_before + 1
    assert cache.verify(rebuild=False) == []
    # no orphan .npy remains: each has its sidecar
    assert sorted(p.stem for p in root.glob("??/*.npy")) == cache.keys()
    for path in table.paths[:: n // 20]:
        np.testing.assert_allclose(
            cache.get(path).astype(np.float32), preprocess_scan(path, None, CONFIG), atol=2e-3
        )


def test_verify_sweeps_temp_files_of_killed_writers(tmp_path: Path) -> None:
    csv = tiny_cohort(tmp_path / "cohort", 2)
    table = ScanTable.from_csv(csv, label_col=None)
    cache = VolumeCache(tmp_path / "cache", CONFIG)
    cache.fill(table, progress=False)
    folder = cache.entry_path(cache.key(table.paths[0])).parent
    # What a writer killed between mkstemp and rename leaves: a hidden temp file.
    stale = folder / ".abc.npy.x1y2.tmp"
    fresh = folder / ".def.npy.z3w4.tmp"
    stale.write_bytes(b"\x93NUMPY half")
    fresh.write_bytes(b"\x93NUMPY half")
    old = time.time() - STALE_TEMP_SECONDS - 60
    os.utime(stale, (old, old))
    assert cache.verify() == []
    assert not stale.exists()  # a killed writer's leftover is removed
    assert fresh.exists()  # a young one may belong to a writer still at work
    assert temp_files(tmp_path / "cache") == [fresh]


# ---------------------------------------------------------------- training
JOB = (
    "import sys, runpy; sys.argv = ['_jobs', *sys.argv[1:]]; "
    "runpy.run_module('tests.reliability._jobs', run_name='__main__')"
)
EPOCHS = 4


def _weights_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)


@pytest.mark.parametrize(
    "augment",
    # With "light", each epoch's flips and affines are reseeded from (seed, epoch):
    # a resumed run draws what the uninterrupted one drew.
    [None, "light"],
)
def test_training_killed_then_resumed_matches_uninterrupted(
    tmp_path: Path, augment: str | None
) -> None:
    csv = tiny_cohort(tmp_path / "cohort", 16, shape=_jobs.SHAPE)
    cache = tmp_path / "cache"
    run_dir = tmp_path / "killed"
    last = run_dir / "checkpoints" / "last.pt"
    proc = start(JOB, "fit", csv, cache, run_dir, str(EPOCHS), augment or "none")
    kill_when(proc, last.exists, timeout=240)  # SIGKILL as soon as epoch 1 is checkpointed
    epochs_done = load_checkpoint(last)["epoch"]  # verifies: the kill left a valid checkpoint
    assert 1 <= epochs_done < EPOCHS

    straight = _jobs.make_learner(csv, cache, tmp_path / "straight", seed=42, augment=augment)
    straight.fit(EPOCHS, 3e-3)

    torch.manual_seed(1234)  # a fresh process starts from other RNG states
    resumed = _jobs.make_learner(csv, cache, run_dir, seed=42, augment=augment)
    resumed.fit(EPOCHS, 3e-3, resume=True)
    assert [row["epoch"] for row in resumed.history_] == list(range(1, EPOCHS + 1))
    _weights_equal(resumed.model.state_dict(), straight.model.state_dict())
    for mine, theirs in zip(resumed.history_, straight.history_, strict=True):
        assert mine["val_loss"] == pytest.approx(theirs["val_loss"], rel=1e-5)


class _InterruptError(Exception):
    pass


@pytest.mark.parametrize("step", ["before the checkpoint", "before the final checksum"])
def test_checkpoint_save_interrupted_leaves_a_loadable_one(
    tmp_path: Path, step: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"epoch": 1, "w": torch.ones(3)})
    writes = {"bytes": 0, "text": 0}
    real_bytes, real_text = (
        checkpoint_module.atomic_write_bytes,
        checkpoint_module.atomic_write_text,
    )

    def bytes_then_stop(target: Path, data: bytes) -> Path:
        writes["bytes"] += 1
        if step == "before the checkpoint":
            raise _InterruptError
        return real_bytes(target, data)

    def text_then_stop(target: Path, text: str) -> Path:
        writes["text"] += 1
        if step == "before the final checksum" and writes["text"] == 2:
            raise _InterruptError
        return real_text(target, text)

    monkeypatch.setattr(checkpoint_module, "atomic_write_bytes", bytes_then_stop)
    monkeypatch.setattr(checkpoint_module, "atomic_write_text", text_then_stop)
    with pytest.raises(_InterruptError):
        save_checkpoint(path, {"epoch": 2, "w": torch.zeros(3)})
    monkeypatch.undo()
    expected = 1 if step == "before the checkpoint" else 2
    assert load_checkpoint(path)["epoch"] == expected
    # the next save leaves exactly one accepted digest again
    save_checkpoint(path, {"epoch": 3, "w": torch.zeros(3)})
    assert len(path.with_name("last.pt.sha256").read_text().split()) == 1
    # a damaged file is still refused (old digests are never blessed)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(IntegrityError, match="sha256 mismatch"):
        load_checkpoint(path)


# ------------------------------------------------------------- the command line
CLI = "import sys; from transmri.cli import main; sys.exit(main(sys.argv[1:]))"
CLI_EPOCHS = {"pretrain": 3, "frozen": 1, "unfrozen": 4}  # room for the kill to land


def _tiny_experiment(root: Path) -> Path:
    """An experiment of two tiny cohorts (16^3 blobs): a whole run takes seconds."""
    source = tiny_cohort(root / "source", 12, shape=_jobs.SHAPE, seed=1)
    target = tiny_cohort(root / "target", 12, shape=_jobs.SHAPE, seed=2)
    frame = pd.read_csv(target)
    frame["subject"] = frame["subject"].str.replace("sub-", "tgt-")  # other people
    frame.to_csv(target, index=False)
    text = f"""
        name: tiny
        seed: 0
        data:
          source: {{adapter: csv, path: {source.relative_to(root)}}}
          target: {{adapter: csv, path: {target.relative_to(root)}}}
          preprocessing: {{target_shape: [16, 16, 16]}}
        model: {{arch: cae, channels: [4, 8]}}
        pretrain: {{objective: autoencoder, epochs: {CLI_EPOCHS["pretrain"]}, batch_size: 4}}
        finetune:
          epochs_frozen: {CLI_EPOCHS["frozen"]}
          epochs_unfrozen: {CLI_EPOCHS["unfrozen"]}
          batch_size: 4
          lr: 0.003
        evaluation: {{methods: [], embeddings: false, report: false, n_boot: 10}}
    """
    path = root / "experiment.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def _rows(csv: Path) -> int:
    try:
        return max(0, len(csv.read_text().splitlines()) - 1)
    except OSError:
        return 0


def _stage(last: Path) -> str | None:
    """The fit stage that wrote ``last`` (``None`` while there is none, or mid-replace)."""
    if not last.is_file():
        return None
    try:
        return str(load_checkpoint(last).get("stage"))
    except (OSError, IntegrityError):
        return None


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return dict(load_file(path))


def test_cli_run_killed_then_rerun_matches_uninterrupted(tmp_path: Path) -> None:
    from transmri.experiment import Experiment, load_experiment

    experiment = _tiny_experiment(tmp_path)
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    # The uninterrupted run, in this process (one thread, like the children).
    config = load_experiment(experiment, overrides=[f"output={straight}"])
    Experiment(config).run()

    # `transmri run` SIGKILLed in fine-tuning's second stage, once the frozen
    # stage and one unfrozen epoch are checkpointed (pretraining finished) ...
    proc = start(CLI, "run", experiment, "--out", killed)
    last = killed / "finetune" / "checkpoints" / "last.pt"
    kill_when(proc, lambda: _stage(last) == "unfrozen", timeout=300)
    done = load_checkpoint(last)
    assert done["stage"] == "unfrozen" and 1 <= done["epoch"] < CLI_EPOCHS["unfrozen"]
    assert not (killed / "metrics_test.json").exists()
    # ... then the same command again: pretraining is not repeated, fine-tuning resumes.
    proc = start(CLI, "run", experiment, "--out", killed)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert "transmri: pretrain: already done" in err
    rows, epochs = (
        CLI_EPOCHS["frozen"] + done["epoch"],
        CLI_EPOCHS["frozen"] + CLI_EPOCHS["unfrozen"],
    )
    assert f"transmri: finetune: resuming from {last} ({rows} of {epochs} epochs done)" in err

    for name in ("pretrain/encoder.safetensors", "finetune/models/model.safetensors"):
        a, b = _tensors(straight / name), _tensors(killed / name)
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), f"{name}: {key}"
    for name in ("pretrain/history.csv", "history.csv", "predictions_test.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(straight / name), pd.read_csv(killed / name))
