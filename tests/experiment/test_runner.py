"""Re-running an experiment's steps: finished ones are skipped, ``restart`` starts over."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from transmri.experiment import Experiment, load_experiment


def _experiment(path: Path, out: Path, notes: list[str], **options: Any) -> Experiment:
    config = load_experiment(path, overrides=[f"output={out}"])
    return Experiment(config, note=notes.append, **options)


def test_finished_steps_are_skipped_and_restart_starts_over(
    tiny_experiment: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    notes: list[str] = []
    _experiment(tiny_experiment, out, notes).run(("prepare", "pretrain", "finetune"))
    assert notes == []
    weights = (out / "pretrain" / "encoder.safetensors").read_bytes()
    model = out / "finetune" / "models" / "model.safetensors"
    stamp = model.stat().st_mtime_ns
    (out / "notes.txt").write_text("mine")  # a user's own file in the run folder

    _experiment(tiny_experiment, out, notes).run(("pretrain", "finetune"))
    assert [n.split(" (")[0] for n in notes] == ["pretrain: already done", "finetune: already done"]
    assert model.stat().st_mtime_ns == stamp  # nothing was trained or written again

    notes.clear()
    restarted = _experiment(tiny_experiment, out, notes, restart=True)
    restarted.pretrain()
    assert notes == [
        "pretrain: --restart: starting over (forgot pretrain, finetune, evaluate, embed, "
        "compare, report)"
    ]
    assert (out / "pretrain" / "encoder.safetensors").read_bytes() == weights  # same seed
    assert not (out / "finetune").exists()  # made from the old encoder: removed too
    steps = json.loads((out / "run.json").read_text())["steps"]
    assert set(steps) == {"prepare", "pretrain"}
    assert (out / "notes.txt").read_text() == "mine"


def test_a_fit_finished_but_not_recorded_resumes_to_the_same_encoder(
    tiny_experiment: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    notes: list[str] = []
    _experiment(tiny_experiment, out, notes).run(("prepare", "pretrain"))
    weights = (out / "pretrain" / "encoder.safetensors").read_bytes()
    # What a kill after the last epoch's checkpoint leaves: no encoder, no record.
    run = json.loads((out / "run.json").read_text())
    del run["steps"]["pretrain"]
    (out / "run.json").write_text(json.dumps(run))
    for name in ("encoder.safetensors", "encoder.json"):
        (out / "pretrain" / name).unlink()
    _experiment(tiny_experiment, out, notes).pretrain()
    last = out / "pretrain" / "checkpoints" / "last.pt"
    assert notes == [
        f"pretrain: resuming from {last} (2 of 2 epochs done); pass --restart "
        "(restart=True) to start over"
    ]
    assert (out / "pretrain" / "encoder.safetensors").read_bytes() == weights
