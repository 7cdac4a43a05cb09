"""Jobs run both in the test process and in child processes (``python -c``).

Each job takes plain paths and returns (or prints) JSON-able results, so that
a child's output can be compared with an in-process run.
"""

from __future__ import annotations

import hashlib
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import torch

SHAPE = (16, 16, 16)


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 over every tensor's name and bytes, in name order."""
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def make_learner(
    csv: str | Path,
    cache: str | Path,
    run: str | Path,
    *,
    augment: str | None = "light",
    channels: tuple[int, ...] = (4, 8, 8),
    **options: Any,
) -> Any:
    """A classifier Learner on the cohort ``csv``: the same one in every process.

    ``augment="light"`` adds random flips and affines (their stream must be
    seeded too).
    """
    from transmri.data import DataBunch, PreprocessConfig, ScanTable
    from transmri.models import ConvEncoder, EncoderClassifier
    from transmri.training import Learner

    warnings.filterwarnings("ignore", message=".*deterministic implementation.*")
    table = ScanTable.from_csv(csv)
    data = DataBunch(
        table,
        PreprocessConfig(target_shape=SHAPE),
        cache_dir=cache,
        val_size=0.25,
        test_size=0.25,
        seed=7,
        augment=augment,
    )
    data.prepare(progress=False)
    torch.manual_seed(0)
    model = EncoderClassifier(ConvEncoder(channels=channels), data.num_classes, dropout=0.2)
    return Learner(
        data, model, run, model_type="classifier", batch_size=4, progress=False, **options
    )


def train(csv: str | Path, cache: str | Path, run: str | Path, epochs: int = 2) -> dict[str, Any]:
    """Fit ``epochs`` epochs; return the split, a digest of the weights, history and metrics."""
    learner = make_learner(csv, cache, run, seed=42)
    learner.fit(epochs, 3e-3)
    return {
        "split": {name: learner.data.subjects(name) for name in ("train", "val", "test")},
        "weights": weights_digest(learner.model.state_dict()),
        "history": learner.history_,
        "metrics": learner.evaluate("test"),
    }


def fit_with_checkpoints(
    csv: str | Path, cache: str | Path, run: str | Path, epochs: int, augment: str | None
) -> None:
    """What the kill test interrupts: a fit that checkpoints after every epoch."""
    learner = make_learner(csv, cache, run, seed=42, augment=augment)
    learner.fit(epochs, 3e-3)


def start_run_after(
    csv: str | Path, cache: str | Path, run: str | Path, width: int, go: str, ready: str
) -> None:
    """Wait for the file ``go``, then fit one epoch into ``run`` (encoder width ``width``)."""
    import time

    learner = make_learner(csv, cache, run, seed=42, augment=None, channels=(4, width, 8))
    Path(ready).touch()
    while not Path(go).exists():
        time.sleep(0.005)
    learner.fit(1, 3e-3)
    print("fitted")


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "race":
        start_run_after(args[0], args[1], args[2], width=int(args[3]), go=args[4], ready=args[5])
    elif command == "fit":
        augment = None if args[4] == "none" else args[4]
        fit_with_checkpoints(args[0], args[1], args[2], epochs=int(args[3]), augment=augment)
    else:
        print(json.dumps(train(sys.argv[1], sys.argv[2], sys.argv[3], epochs=int(sys.argv[4]))))
