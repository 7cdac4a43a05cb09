"""The fine-tuning recipes registered as transfer-benchmark methods."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.transfer.test_curve import PRE, _cohort, _pretrain
from transmri.data import DataBunch
from transmri.errors import ConfigError
from transmri.transfer import (
    TransferConfig,
    available_methods,
    held_out_subjects,
    method_needs_encoder,
    transfer_curve,
)
from transmri.transfer.methods.cnn import RECIPE_METHODS, recipe_for


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
    assert frame["notes"].str.contains("kept (?:probe|finetuned)").all()


def test_regional_probes_run_and_differ_only_in_the_weights(tmp_path: Path) -> None:
    from transmri.training import load_encoder
    from transmri.transfer.methods.linear import PROBE_METHODS, regional_codes

    table = _cohort(tmp_path / "scans", n=32)
    config = TransferConfig(
        n_train=(12,), repeats=1, test_size=10, methods=PROBE_METHODS, batch_size=4, cv_folds=3
    )
    source = table.subset(
        [i for i, s in enumerate(table.subjects) if s not in set(held_out_subjects(table, config))]
    )
    encoder = _pretrain(source, tmp_path / "pretrain")
    result = transfer_curve(
        table, preprocessing=PRE, encoder=encoder, out_dir=tmp_path / "bench", config=config
    )
    frame = result.frame.set_index("method")
    assert set(frame.index) == set(PROBE_METHODS)
    assert np.isfinite(frame["auc"].astype(float)).all()
    # channels (4, 8, 8, 4) pooled to 2 x 2 x 2 boxes: 24 * 8 features each
    assert frame["notes"].str.contains("192 regional features").all()
    # the pretrained and the random encoder give different codes of the same size
    module, _ = load_encoder(encoder)
    fresh, _ = load_encoder(encoder)
    for p in fresh.parameters():
        p.data.normal_()
    bunch = DataBunch(table, PRE, test_size=0.3, val_size=0.2, seed=0)
    a = regional_codes(module, bunch, "test", grid=2)
    b = regional_codes(fresh, bunch, "test", grid=2)
    assert a.shape == b.shape == (len(bunch.split_table("test")), 192)
    assert not np.allclose(a, b)
    assert np.isfinite(a).all()
    assert TransferConfig(probe_grid=3).probe_grid == 3
    with pytest.raises(ConfigError, match="probe_levels"):
        TransferConfig(probe_levels="middle")


def test_voxels_are_centred_not_scaled_so_a_rare_edge_voxel_cannot_swamp_them() -> None:
    """A voxel non-zero in one training scan only must not decide the test predictions."""
    from types import SimpleNamespace

    from sklearn.linear_model import RidgeClassifier

    from transmri.transfer.methods.linear import _fit_linear

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 20)
    signal = y[:, None] * 0.3 + rng.normal(0, 0.1, size=(40, 50))
    edge = np.zeros((40, 1))
    edge[0] = 1e-3  # the brain's edge reaches this voxel in one scan only
    x = np.concatenate([signal, edge], axis=1)
    context = SimpleNamespace(classes=("a", "b"), config=SimpleNamespace(cv_folds=3), seed=0)
    test_y = np.repeat([0, 1], 10)
    test = np.concatenate([test_y[:, None] * 0.3 + rng.normal(0, 0.1, (20, 50)),
                           rng.uniform(0, 0.5, (20, 1))], axis=1)  # fmt: skip
    grid = {"alpha": [1e-2, 1.0, 1e2]}
    aucs = {}
    for scale in (True, False):
        search, _, _ = _fit_linear(RidgeClassifier(), grid, x, y, np.arange(40).astype(str),
                                   context, scale=scale)  # type: ignore[arg-type]  # fmt: skip
        decision = search.decision_function(test)
        aucs[scale] = float(np.mean(decision[test_y == 1][:, None] > decision[test_y == 0]))
    assert aucs[False] > 0.95 > aucs[True], aucs
