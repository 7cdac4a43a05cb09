"""The Learner's training loop: history, checkpoints, freezing, rates, resume, bad input."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from transmri.data import DataBunch
from transmri.errors import (
    CheckpointError,
    ConfigError,
    DataFormatError,
    IntegrityError,
    OutputExistsError,
)
from transmri.models import ConvAutoEncoder, ConvEncoder, EncoderClassifier
from transmri.training import Callback, FitState, Learner
from transmri.training.checkpoint import load_checkpoint

MakeData = Callable[..., DataBunch]
SMALL = (4, 8, 8)  # tiny CAE channels: fast


def _ae(data: DataBunch, path: Path, **options: Any) -> Learner:
    torch.manual_seed(0)
    model = ConvAutoEncoder(channels=SMALL)
    return Learner(data, model, path, batch_size=4, progress=False, **options)


def _clf(data: DataBunch, path: Path, *, norm: str | None = None, **options: Any) -> Learner:
    torch.manual_seed(0)
    encoder = ConvEncoder(channels=SMALL, norm=norm)
    model = EncoderClassifier(encoder, data.num_classes)
    return Learner(
        data, model, path, model_type="classifier", batch_size=4, progress=False, **options
    )


def test_fit_writes_history_checkpoints_and_restores_best(
    make_data: MakeData, tmp_path: Path
) -> None:
    data = make_data()
    learner = _ae(data, tmp_path / "run")
    assert not (tmp_path / "run").exists()  # the constructor does no I/O
    learner.fit(3, 1e-3, show_every=2)
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert list(history["epoch"]) == [1, 2, 3]
    assert {"lr", "train_loss", "train_mse", "val_loss", "val_mse"} <= set(history.columns)
    assert history["val_loss"].notna().all()
    ckpts = tmp_path / "run" / "checkpoints"
    for name in ("best.pt", "last.pt", "best.pt.sha256", "last.pt.sha256"):
        assert (ckpts / name).is_file()
    best = load_checkpoint(ckpts / "best.pt")
    assert best["epoch"] == int(history["val_loss"].idxmin()) + 1
    for key, value in best["model"].items():
        assert torch.equal(learner.model.state_dict()[key].cpu(), value)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["kind"] == "learner" and run["config"]["learner"]["batch_size"] == 4
    assert (tmp_path / "run" / "data.json").is_file()
    assert (tmp_path / "run" / "figures" / "reconstruction_epoch002.png").is_file()


def test_validation_uses_val_split_never_test(make_data: MakeData, tmp_path: Path) -> None:
    data = make_data()
    seen: list[int] = []
    original = data.dataset

    def spy(split: str) -> Any:
        if split == "test":
            seen.append(1)
        return original(split)

    data.dataset = spy  # type: ignore[method-assign]
    _ae(data, tmp_path / "run").fit(1)
    assert seen == []


def test_freezing_really_freezes(make_data: MakeData, tmp_path: Path) -> None:
    data = make_data()
    learner = _clf(data, tmp_path / "run", norm="batch")
    learner.freeze_encoder()
    before = {k: v.clone() for k, v in learner.model.encoder.state_dict().items()}
    head_before = {k: v.clone() for k, v in learner.model.head.state_dict().items()}
    learner.fit(2, 1e-2)
    after = learner.model.encoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BN running stats
    assert any("running_mean" in k for k in before)
    assert not all(
        torch.equal(head_before[k], v) for k, v in learner.model.head.state_dict().items()
    )
    trained = {id(p) for g in learner.optimizer_.param_groups for p in g["params"]}
    assert not trained & {id(p) for p in learner.model.encoder.parameters()}
    assert all(not p.requires_grad for p in learner.model.encoder.parameters())
    learner.unfreeze_encoder()
    assert all(p.requires_grad for p in learner.model.encoder.parameters())


def test_discriminative_rates_in_optimizer(make_data: MakeData, tmp_path: Path) -> None:
    learner = _clf(make_data(), tmp_path / "run")
    groups = learner.param_groups(1e-2, 0.1)
    assert [g["lr"] for g in groups] == pytest.approx([1e-5, 1e-4, 1e-3, 1e-2])  # 3 blocks + head
    learner.fit(1, 1e-2, lr_mult=0.1)
    assert [g["lr"] for g in learner.optimizer_.param_groups] == pytest.approx(
        [1e-5, 1e-4, 1e-3, 1e-2]
    )
    learner.freeze_to(2)
    assert [g["lr"] for g in learner.param_groups(1e-2, 0.1)] == pytest.approx([1e-3, 1e-2])
    learner.freeze_to(4)
    with pytest.raises(ConfigError, match="every parameter is frozen"):
        learner.param_groups(1e-2)


class _Crash(Callback):
    def on_epoch_end(self, learner: Learner, state: FitState) -> None:
        if state.epoch == 2:
            raise KeyboardInterrupt("simulated crash after epoch 2")


@pytest.mark.parametrize("schedule", [None, "onecycle"])
def test_resume_equals_straight_run(
    make_data: MakeData, tmp_path: Path, schedule: str | None
) -> None:
    data = make_data()
    straight = _clf(data, tmp_path / "a")
    straight.fit(4, 3e-3, schedule=schedule)  # type: ignore[arg-type]
    crashed = _clf(data, tmp_path / "b", callbacks=[_Crash()])
    with pytest.raises(KeyboardInterrupt):
        crashed.fit(4, 3e-3, schedule=schedule)  # type: ignore[arg-type]
    assert len(pd.read_csv(tmp_path / "b" / "history.csv")) == 2
    torch.manual_seed(123)  # a fresh process would start from other weights and RNG
    resumed = _clf(data, tmp_path / "b")
    resumed.fit(4, 3e-3, schedule=schedule, resume=True)  # type: ignore[arg-type]
    for key, value in straight.model.state_dict().items():
        assert torch.allclose(resumed.model.state_dict()[key], value, atol=1e-6), key
    a = pd.DataFrame(straight.history_)
    b = pd.DataFrame(resumed.history_)
    pd.testing.assert_frame_equal(a, b, atol=1e-6)


def test_resume_refuses_other_options(make_data: MakeData, tmp_path: Path) -> None:
    data = make_data()
    learner = _clf(data, tmp_path / "run")
    learner.fit(1, 1e-3)
    with pytest.raises(ConfigError, match=r"resume needs the options of the interrupted fit; .*lr"):
        _clf(data, tmp_path / "run").fit(2, 1e-2, resume=True)


def test_corrupt_checkpoint_resume_names_file_and_keeps_it(
    make_data: MakeData, tmp_path: Path
) -> None:
    data = make_data()
    _clf(data, tmp_path / "run").fit(1, 1e-3)
    last = tmp_path / "run" / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[:-64])
    damaged = last.read_bytes()
    with pytest.raises(IntegrityError, match=r"last\.pt: sha256 mismatch"):
        _clf(data, tmp_path / "run").fit(2, 1e-3, resume=True)
    assert last.read_bytes() == damaged


def test_checkpoint_from_other_architecture(make_data: MakeData, tmp_path: Path) -> None:
    data = make_data()
    _clf(data, tmp_path / "a").fit(1, 1e-3)
    torch.manual_seed(0)
    other = Learner(
        data,
        EncoderClassifier(ConvEncoder(channels=(4, 4)), 2),
        tmp_path / "b",
        model_type="classifier",
        progress=False,
    )
    other._prepare_run()
    (tmp_path / "b" / "checkpoints").mkdir()
    for name in ("last.pt", "last.pt.sha256"):
        (tmp_path / "b" / "checkpoints" / name).write_bytes(
            (tmp_path / "a" / "checkpoints" / name).read_bytes()
        )
    with pytest.raises(
        CheckpointError, match=r"last\.pt: the checkpoint was made for another architecture"
    ):
        other.fit(2, 1e-3, resume=True)


def test_run_folder_refuses_another_run(make_data: MakeData, tmp_path: Path) -> None:
    data = make_data()
    _ae(data, tmp_path / "run").fit(1)
    _ae(data, tmp_path / "run").fit(1).evaluate("val")  # the same run may reuse its folder
    assert (tmp_path / "run" / "reconstruction_val.json").is_file()
    with pytest.raises(OutputExistsError, match=r"holds a different run .*model_type"):
        _clf(data, tmp_path / "run").fit(1)
    _clf(data, tmp_path / "run", overwrite=True).fit(1)
    assert not (tmp_path / "run" / "reconstruction_val.json").exists()  # the old run's results
    assert (
        json.loads((tmp_path / "run" / "run.json").read_text())["identity"]["model_type"]
        == "classifier"
    )
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match=r"found files \['notes.txt'\]"):
        _ae(data, tmp_path / "other").fit(1)
    for name in ("checkpoints", "figures"):  # named like artifacts, yet the user's
        (tmp_path / "other" / name).mkdir()
        (tmp_path / "other" / name / "mine.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match=r"no run\.json.*choose another folder$"):
        _ae(data, tmp_path / "other", overwrite=True).fit(1)
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"
    assert (tmp_path / "other" / "figures" / "mine.txt").read_text() == "mine"
    assert (tmp_path / "other" / "checkpoints" / "mine.txt").read_text() == "mine"


def test_user_loss_is_honoured(make_data: MakeData, tmp_path: Path) -> None:
    calls: list[int] = []

    def loss_fn(
        outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        calls.append(1)
        l1 = (outputs["reconstruction"] - batch["image"]).abs().mean()
        return {"loss": l1, "mae": l1}

    learner = _ae(make_data(), tmp_path / "run", loss_fn=loss_fn)
    learner.fit(1)
    assert learner.loss_fn is loss_fn and calls
    assert "train_mae" in learner.history_[0] and "train_mse" not in learner.history_[0]
    with pytest.raises(ConfigError, match="alpha: apply to the default objective"):
        learner.fit(1, alpha=0.5)


def test_unknown_keywords_raise(make_data: MakeData, tmp_path: Path) -> None:
    data = make_data()
    with pytest.raises(TypeError, match="bogus"):
        _ae(data, tmp_path / "run", bogus=1)
    with pytest.raises(TypeError, match="bogus"):
        _ae(data, tmp_path / "run").fit(1, bogus=1)  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match="alpha: applies to model_type='mixed' only"):
        _ae(data, tmp_path / "run").fit(1, alpha=0.5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epochs": 0}, "epochs: expected an integer >= 1"),
        ({"epochs": 1, "lr": -1.0}, "lr: expected"),
    ],
)
def test_bad_fit_ranges(
    make_data: MakeData, tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        _ae(make_data(), tmp_path / "run").fit(**kwargs)


def test_classifier_on_one_class_is_refused(make_data: MakeData, tmp_path: Path) -> None:
    data = make_data()
    table = data.table
    only_cn = table.subset([i for i, lab in enumerate(table.frame["label"]) if lab == "CN"])
    one = DataBunch.from_splits(
        train=only_cn.subset(range(4)),
        val=only_cn.subset(range(4, 6)),
        preprocessing=data.preprocessing,
        classes=["AD", "CN"],
    )
    with pytest.raises(
        DataFormatError, match="at least 2 classes in the training split, found only 'CN'"
    ):
        _clf(one, tmp_path / "run").fit(1)


def test_mixed_on_unlabelled_is_refused(make_data: MakeData, tmp_path: Path) -> None:
    data = make_data(labelled=False)
    torch.manual_seed(0)
    learner = Learner(
        data, ConvAutoEncoder(channels=SMALL), tmp_path / "run", model_type="mixed", progress=False
    )
    with pytest.raises(DataFormatError, match=r"needs labelled scans, but all .* are unlabelled"):
        learner.fit(1)


def test_early_stop_and_monitor(make_data: MakeData, tmp_path: Path) -> None:
    learner = _ae(make_data(), tmp_path / "run")
    learner.fit(5, 1e-3, early_stop=1, monitor="train_loss", mode="max")
    assert len(learner.history_) == 2  # never "improves" on epoch 1
    with pytest.raises(
        ConfigError, match=r"monitor: 'val_auc' is not measured here; available: \["
    ):
        _ae(make_data(folder="b"), tmp_path / "run2").fit(1, monitor="val_auc")


def test_events_fire_in_order(make_data: MakeData, tmp_path: Path) -> None:
    events: list[str] = []

    class Record(Callback):
        def __getattribute__(self, name: str) -> Any:
            if name.startswith("on_"):
                return lambda learner, state: events.append(name)
            return super().__getattribute__(name)

    _ae(make_data(), tmp_path / "run", callbacks=[Record()]).fit(1)
    compact = [e for i, e in enumerate(events) if i == 0 or e != events[i - 1]]
    assert compact == [
        "on_fit_start",
        "on_epoch_start",
        "on_batch_end",
        "on_validation_end",
        "on_epoch_end",
        "on_fit_end",
    ]


class _CrashAt(Callback):
    """Interrupt like Ctrl-C: after epoch ``epoch`` of the whole history, or at a stage's start."""

    def __init__(self, *, epoch: int | None = None, stage: str | None = None) -> None:
        self.epoch, self.stage = epoch, stage

    def on_fit_start(self, learner: Learner, state: FitState) -> None:
        if self.stage is not None and learner._stage == self.stage:
            raise KeyboardInterrupt(f"simulated crash at the start of {self.stage}")

    def on_epoch_end(self, learner: Learner, state: FitState) -> None:
        if self.epoch is not None and len(learner.history_) == self.epoch:
            raise KeyboardInterrupt(f"simulated crash after epoch {self.epoch}")


def _same_run(a: Learner, b: Learner) -> None:
    for key, value in a.model.state_dict().items():
        assert torch.equal(b.model.state_dict()[key], value), key
    pd.testing.assert_frame_equal(pd.DataFrame(a.history_), pd.DataFrame(b.history_))


@pytest.mark.parametrize(
    "crash",
    [
        {"stage": "unfrozen"},  # the frozen stage finished, the unfrozen one wrote nothing yet
        {"epoch": 3},  # inside the unfrozen stage
    ],
    ids=["between", "unfrozen"],
)
def test_fine_tune_resume_equals_straight_run(
    make_data: MakeData, tmp_path: Path, crash: dict[str, Any]
) -> None:
    data = make_data()
    straight = _clf(data, tmp_path / "a")
    straight.fine_tune(2, 2, 3e-3, lr_mult=0.5)
    crashed = _clf(data, tmp_path / "b", callbacks=[_CrashAt(**crash)])
    with pytest.raises(KeyboardInterrupt):
        crashed.fine_tune(2, 2, 3e-3, lr_mult=0.5)
    torch.manual_seed(123)  # a fresh process starts from other weights and RNG states
    resumed = _clf(data, tmp_path / "b")
    resumed.fine_tune(2, 2, 3e-3, lr_mult=0.5, resume=True)
    assert [row["epoch"] for row in resumed.history_] == [1, 2, 3, 4]
    _same_run(straight, resumed)
    assert all(p.requires_grad for p in resumed.model.parameters())


def test_fine_tune_resume_refuses_a_checkpoint_of_another_stage(
    make_data: MakeData, tmp_path: Path
) -> None:
    data = make_data()
    _clf(data, tmp_path / "run").fit(1, 1e-3)  # a plain fit: no stage
    with pytest.raises(CheckpointError, match=r"last\.pt: written by fit stage '\(none"):
        _clf(data, tmp_path / "run").fine_tune(1, 1, resume=True)
    with pytest.raises(FileNotFoundError, match=r"last\.pt: checkpoint not found"):
        _clf(data, tmp_path / "new").fine_tune(1, 1, resume=True)


def test_resume_of_a_finished_or_early_stopped_fit_trains_nothing(
    make_data: MakeData, tmp_path: Path
) -> None:
    data = make_data()
    # lr=0: the monitored loss never improves after epoch 1, so epoch 3 stops it.
    done = _clf(data, tmp_path / "run").fit(6, 1e-9, early_stop=2)
    assert len(done.history_) == 3
    last = tmp_path / "run" / "checkpoints" / "last.pt"
    before = last.read_bytes()
    again = _clf(data, tmp_path / "run").fit(6, 1e-9, early_stop=2, resume=True)
    assert last.read_bytes() == before  # no epoch was trained, nothing rewritten
    _same_run(done, again)


def test_last_checkpoint_carries_the_best_weights(make_data: MakeData, tmp_path: Path) -> None:
    data = make_data()
    learner = _clf(data, tmp_path / "run")
    learner.fit(3, 3e-3)
    last = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    best = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")
    for key, value in best["model"].items():
        assert torch.equal(last["best_model"][key], value), key
        assert torch.equal(learner.model.state_dict()[key], value), key
    # best.pt damaged or replaced by another stage since: the resume still ends on the best
    (tmp_path / "run" / "checkpoints" / "best.pt").unlink()
    again = _clf(data, tmp_path / "run").fit(3, 3e-3, resume=True)
    _same_run(learner, again)
