"""TensorBoard logging: every history number per epoch, and nothing when it is not installed."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
import pytest
import torch

from transmri.data import DataBunch
from transmri.models import ConvEncoder, EncoderClassifier
from transmri.training import Callback, Learner, StopAfter
from transmri.training.tensorboard import (
    TensorBoardLogger,
    default_loggers,
    scalar_tag,
    tensorboard_available,
)

MakeData = Callable[..., DataBunch]


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {
        tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
    }


def _learner(data: DataBunch, path: Path, callbacks: Sequence[Callback]) -> Learner:
    torch.manual_seed(0)
    model = EncoderClassifier(ConvEncoder(channels=(4, 8)), data.num_classes)
    return Learner(
        data,
        model,
        path,
        model_type="classifier",
        batch_size=4,
        progress=False,
        callbacks=callbacks,
    )


def test_tags_group_train_and_val() -> None:
    assert scalar_tag("train_loss") == "loss/train"
    assert scalar_tag("val_auc") == "auc/val"
    assert scalar_tag("lr") == "lr"


def test_without_tensorboard_no_default_logger(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import now raises ImportError
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    assert not tensorboard_available()
    assert default_loggers() == []


def test_logger_without_tensorboard_says_what_to_install(
    make_data: MakeData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    learner = _learner(make_data(), tmp_path / "run", callbacks=[TensorBoardLogger()])
    with pytest.raises(ImportError, match=r"pip install tensorboard"):
        learner.fit(1)


def test_history_written_per_epoch(make_data: MakeData, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    assert [type(c) for c in default_loggers()] == [TensorBoardLogger]
    assert default_loggers([TensorBoardLogger()]) == []  # not twice
    learner = _learner(make_data(), tmp_path / "run", callbacks=default_loggers())
    learner.fit(2, 1e-3)
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    scalars = _scalars(tmp_path / "run" / "tensorboard")
    for column in history.columns.drop("epoch"):
        written = scalars[scalar_tag(column)]
        assert [step for step, _ in written] == list(history["epoch"])
        assert [v for _, v in written] == pytest.approx(list(history[column]), rel=1e-6)


def test_resumed_fit_continues_the_curves(make_data: MakeData, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    data = make_data()
    _learner(data, tmp_path / "run", callbacks=[TensorBoardLogger(), StopAfter(1)]).fit(3)
    resumed = _learner(data, tmp_path / "run", callbacks=[TensorBoardLogger()])
    resumed.fit(3, resume=True)
    steps = [step for step, _ in _scalars(tmp_path / "run" / "tensorboard")["loss/train"]]
    assert steps == [1, 2, 3]
