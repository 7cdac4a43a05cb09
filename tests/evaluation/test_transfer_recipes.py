"""The fine-tuning recipes registered as transfer-benchmark methods."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.evaluation.test_transfer import PRE, _cohort, _pretrain
from transmri.errors import ConfigError
from transmri.evaluation.transfer import transfer_curve
from transmri.evaluation.transfer_methods import available_methods, method_needs_encoder
from transmri.evaluation.transfer_plan import TransferConfig, held_out_subjects
from transmri.evaluation.transfer_recipes import RECIPE_METHODS, recipe_for


def test_recipes_are_registered_and_need_an_encoder() -> None:
    for name in RECIPE_METHODS:
        assert name in available_methods() and method_needs_encoder(name)
    config = TransferConfig(methods=("scratch",), epochs_unfrozen=7, lr=1e-3)
    default = recipe_for("default", config)
    assert default.probe == "logreg" and default.l2sp_alpha > 0 and default.lr_decay < 1
    assert default.augment == "light" and default.monitor == "val_auc" and default.epochs == 7
    assert recipe_for("lpft", config).lr == pytest.approx(1e-4)
    with pytest.raises(ConfigError, match="recipe method"):
        recipe_for("mixup", config)


def test_recipe_methods_run_in_the_benchmark(tmp_path: Path) -> None:
    table = _cohort(tmp_path / "scans", n=32)
    config = TransferConfig(
        n_train=(12,),
        repeats=1,
        test_size=10,
        methods=RECIPE_METHODS,
        epochs_frozen=1,
        epochs_unfrozen=2,
        batch_size=4,
        early_stop=None,
    )
    source = table.subset(
        [i for i, s in enumerate(table.subjects) if s not in set(held_out_subjects(table, config))]
    )
    encoder = _pretrain(source, tmp_path / "pretrain")
    result = transfer_curve(
        table, preprocessing=PRE, encoder=encoder, out_dir=tmp_path / "bench", config=config
    )
    frame = result.frame
    assert sorted(frame["method"]) == sorted(RECIPE_METHODS)
    assert np.isfinite(frame["auc"].astype(float)).all()
    assert frame["notes"].str.contains("recipe").all()
