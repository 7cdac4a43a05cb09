"""Tests of transmri.transfer: curve.py, and the config, plan and registry it runs on."""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import blob_volume, write_nifti
from transmri.data import DataBunch, PreprocessConfig, ScanTable
from transmri.errors import ConfigError, DataFormatError, DataLeakageError, OutputExistsError
from transmri.evaluation import build_report
from transmri.transfer import (
    COMPARISON_COLUMNS,
    MethodContext,
    MethodResult,
    TransferConfig,
    available_methods,
    held_out_subjects,
    plan_splits,
    register_method,
    registry,
    transfer_curve,
)

PRE = PreprocessConfig(target_shape=(16, 16, 16))
TINY = {
    "n_train": (8, 16),
    "repeats": 2,
    "test_size": 12,
    "epochs": 2,
    "epochs_frozen": 1,
    "epochs_unfrozen": 1,
    "batch_size": 4,
    "early_stop": None,
    "cv_folds": 3,
}


def _cohort(root: Path, n: int = 40) -> ScanTable:
    """Like the ``make_cohort`` fixture (one scan per subject, 'AD' has a dark blob)."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        label = i % 2
        scan = write_nifti(
            root / f"scan{i:03d}.nii.gz", blob_volume((20, 24, 20), label=label, rng=rng)
        )
        rows.append({"path": str(scan), "subject": f"sub-{i:03d}", "label": ["CN", "AD"][label]})
    return ScanTable.from_frame(pd.DataFrame(rows))


def _pretrain(table: ScanTable, folder: Path) -> Path:
    """A tiny autoencoder trained 1 epoch on ``table``; returns its encoder card."""
    from transmri.training import create_autoencoder

    with warnings.catch_warnings():  # no test split: this is pretraining
        warnings.simplefilter("ignore", UserWarning)
        data = DataBunch(table.with_frame(table.frame.assign(label=pd.NA)), PRE, test_size=0.0)
    learner = create_autoencoder(
        data, folder, channels=(4, 8, 8, 4), batch_size=8, progress=False, seed=0
    )
    learner.fit(1, 1e-3)
    return learner.save_encoder()


@dataclass
class Bench:
    table: ScanTable
    config: TransferConfig
    encoder: Path
    out: Path
    frame: pd.DataFrame
    cache: Path


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Bench:
    """One small benchmark with every built-in method, shared by several tests."""
    root = tmp_path_factory.mktemp("transfer")
    table = _cohort(root / "cohort")
    config = TransferConfig(**TINY)
    held_out = set(held_out_subjects(table, config))
    source = table.subset(np.flatnonzero([s not in held_out for s in table.subjects]))
    encoder = _pretrain(source, root / "pretrain")
    result = transfer_curve(
        table, preprocessing=PRE, encoder=encoder, out_dir=root / "out", config=config,
        cache_dir=root / "cache",
    )  # fmt: skip
    return Bench(table, config, encoder, root / "out", result.frame, root / "cache")


# ------------------------------------------------------------------ the run
def test_every_method_gives_one_row_per_size_and_repeat(bench: Bench) -> None:
    frame = bench.frame
    assert list(frame.columns) == list(COMPARISON_COLUMNS)
    assert len(frame) == len(bench.config.methods) * 2 * 2 == 6 * 2 * 2
    keys = set(zip(frame["method"], frame["n_train"], frame["repeat"]))
    assert keys == {(m, n, r) for m in bench.config.methods for n in (8, 16) for r in (0, 1)}
    assert frame["auc"].between(0, 1).all()
    assert (frame["n_fit"] + frame["n_val"] == frame["n_train"]).all()
    assert (frame["n_test"] == 12).all()
    on_disk = pd.read_csv(bench.out / "comparison.csv")
    assert len(on_disk) == len(frame)
    # The dark blob is linearly separable: the voxel baseline must find it.
    assert frame.loc[frame["method"] == "ridge", "auc"].mean() > 0.8


def test_outputs_summary_figures_and_report(bench: Bench) -> None:
    summary = pd.read_csv(bench.out / "summary.csv")
    assert set(summary["method"]) == set(bench.config.methods)
    assert (summary["n_repeats"] == 2).all()
    assert {"auc_mean", "auc_low", "auc_high", "balanced_accuracy_mean"} <= set(summary.columns)
    assert (bench.out / "figures" / "learning_curve_auc.png").stat().st_size > 1000
    differences = pd.read_csv(bench.out / "differences.csv")
    baselines = {"scratch", "ridge", "regional_random"} & set(bench.config.methods)
    assert set(differences["reference"]) == baselines and "regional_random" in baselines
    run = json.loads((bench.out / "run.json").read_text())
    assert run["kind"] == "transfer"
    assert run["config"]["transfer"] == bench.config.to_dict()
    html = build_report(bench.out).read_text()
    assert "Transfer comparison" in html and "linear_probe" in html


def test_train_val_test_subjects_are_disjoint(bench: Bench) -> None:
    draws = json.loads((bench.out / "splits.json").read_text())
    assert len(draws) == 4
    for draw in draws:
        train, val, test = set(draw["train"]), set(draw["val"]), set(draw["test"])
        assert train and val and len(test) == 12
        assert not (train & val) and not (train & test) and not (val & test)
    card = json.loads(bench.encoder.read_text())
    assert not set(card["training_subjects"]) & set(draws[0]["test"])


def test_every_method_and_repeat_uses_the_same_test_subjects(bench: Bench) -> None:
    assert bench.frame["test_subjects_hash"].nunique() == 1
    draws = json.loads((bench.out / "splits.json").read_text())
    assert len({tuple(d["test"]) for d in draws}) == 1


def test_vary_test_draws_a_test_set_per_repeat(bench: Bench) -> None:
    config = TransferConfig(**{**TINY, "vary_test": True})
    splits = plan_splits(bench.table, config)
    tests = {r: {s.test_hash for s in splits if s.repeat == r} for r in (0, 1)}
    assert all(len(h) == 1 for h in tests.values())  # fixed across N within a repeat
    assert tests[0] != tests[1]
    assert len(held_out_subjects(bench.table, config)) > 12


def test_training_subsets_are_balanced_nested_and_seeded(bench: Bench) -> None:
    splits = plan_splits(bench.table, bench.config)
    assert all(  # deterministic in the seed
        a.train.paths == b.train.paths and a.val.paths == b.val.paths
        for a, b in zip(splits, plan_splits(bench.table, bench.config))
    )
    by_key = {(s.repeat, s.n_train): s for s in splits}
    for s in splits:
        both = pd.concat([s.train.frame, s.val.frame])
        assert both["label"].value_counts().to_dict() == {
            "AD": s.n_train // 2,
            "CN": s.n_train // 2,
        }
        assert s.val.frame["label"].nunique() == 2  # validation holds every class
    for r in (0, 1):
        small, large = by_key[(r, 8)], by_key[(r, 16)]
        assert set(small.train.paths + small.val.paths) < set(large.train.paths + large.val.paths)
    assert set(by_key[(0, 8)].train.paths) != set(by_key[(1, 8)].train.paths)
    other = plan_splits(bench.table, TransferConfig(**{**TINY, "seed": 1}))
    assert set(other[0].train.paths) != set(splits[0].train.paths)


def test_rerun_resumes_without_duplicate_rows(bench: Bench, tmp_path: Path) -> None:
    config = TransferConfig(**{**TINY, "methods": ("ridge",)})
    out = tmp_path / "ridge"
    kwargs = {"preprocessing": PRE, "encoder": None, "out_dir": out, "config": config,
              "cache_dir": bench.cache}  # fmt: skip
    lines: list[str] = []
    first = transfer_curve(bench.table, **kwargs, report=lines.append).frame
    assert len(first) == 4
    assert [line.split(":")[1] for line in lines] == [f" run {k} of 4" for k in (1, 2, 3, 4)]
    assert re.fullmatch(r"compare: run 1 of 4: ridge N=\d+ repeat 0: AUC [\d.]+ \(\d+ s; about "
                        r"\d+ (s|min) left\)", lines[0]), lines[0]  # fmt: skip
    assert lines[-1].endswith("; done)")
    interrupted = first[~((first["n_train"] == 16) & (first["repeat"] == 1))]
    interrupted.to_csv(out / "comparison.csv", index=False)
    lines.clear()
    again = transfer_curve(bench.table, **kwargs, report=lines.append).frame
    assert len(again) == 4
    assert len(lines) == 1 and lines[0].startswith("compare: run 1 of 1: ridge N=16 repeat 1")
    assert not again.duplicated(["method", "n_train", "repeat"]).any()
    kept = again.merge(interrupted, on=["method", "n_train", "repeat"], suffixes=("", "_old"))
    assert (kept["seconds"] == kept["seconds_old"]).all()  # measured rows were not redone
    more = TransferConfig(**{**TINY, "methods": ("ridge",), "repeats": 3})
    grown = transfer_curve(bench.table, **{**kwargs, "config": more}).frame
    assert len(grown) == 6
    with pytest.raises(OutputExistsError, match="differs in"):
        transfer_curve(bench.table, **{**kwargs, "config": TransferConfig(**{**TINY, "seed": 3,
                       "methods": ("ridge",)})})  # fmt: skip


def test_overwrite_never_deletes_files_of_a_folder_that_is_no_benchmark(
    bench: Bench, tmp_path: Path
) -> None:
    # Issue 17, item 1: files named like the benchmark's own are the user's here.
    out = tmp_path / "mine"
    (out / "runs").mkdir(parents=True)
    (out / "runs" / "notes.txt").write_text("mine")
    (out / "comparison.csv").write_text("my table")
    config = TransferConfig(**{**TINY, "methods": ("ridge",)})
    with pytest.raises(OutputExistsError, match=r"no transfer\.json; choose another folder$"):
        transfer_curve(bench.table, preprocessing=PRE, encoder=None, out_dir=out, config=config,
                       cache_dir=bench.cache, overwrite=True)  # fmt: skip
    assert (out / "runs" / "notes.txt").read_text() == "mine"
    assert (out / "comparison.csv").read_text() == "my table"


def test_a_leaking_encoder_is_refused(bench: Bench, tmp_path: Path) -> None:
    leaky = _pretrain(bench.table, tmp_path / "leaky")  # saw every subject, test ones included
    with pytest.raises(DataLeakageError, match="target test set"):
        transfer_curve(bench.table, preprocessing=PRE, encoder=leaky, out_dir=tmp_path / "out",
                       config=bench.config, cache_dir=bench.cache)  # fmt: skip
    assert not (tmp_path / "out" / "comparison.csv").exists()


# -------------------------------------------------------------- registry
def test_a_registered_method_runs(
    bench: Bench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    seen: list[MethodContext] = []

    @register_method("constant")
    def constant(context: MethodContext) -> MethodResult:
        seen.append(context)
        return MethodResult(probs=np.full((len(context.test), 2), 0.5), converged=True, notes="x")

    assert "constant" in available_methods()
    with pytest.raises(ConfigError, match="already registered"):
        register_method("constant")(constant)
    config = TransferConfig(**{**TINY, "methods": ("constant",), "repeats": 1})
    frame = transfer_curve(bench.table, preprocessing=PRE, encoder=None, out_dir=tmp_path / "c",
                           config=config, cache_dir=bench.cache).frame  # fmt: skip
    assert list(frame["auc"]) == [0.5, 0.5] and list(frame["notes"]) == ["x", "x"]
    assert [c.data.classes for c in seen] == [["AD", "CN"]] * 2
    assert all(not set(c.train.subjects) & set(c.test.subjects) for c in seen)


def test_methods_that_need_an_encoder_are_refused_without_one(
    make_cohort: Callable[..., Path], tmp_path: Path
) -> None:
    table = ScanTable.from_csv(make_cohort(n=24))
    with pytest.raises(ConfigError, match=r"methods: \['finetune'\] need a pretrained encoder"):
        transfer_curve(table, preprocessing=PRE, encoder=None, out_dir=tmp_path / "o",
                       config=TransferConfig(methods=("finetune",), test_size=6))  # fmt: skip


# ------------------------------------------------------------ validation
@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("n_train", (1, 8)),
        ("n_train", ()),
        ("repeats", 0),
        ("test_size", 1.5),
        ("test_size", 0),
        ("val_fraction", 0.0),
        ("methods", ("nope",)),
        ("methods", ("ridge", "ridge")),
        ("monitor", "test_auc"),
        ("lr_mult", 2.0),
        ("head", "mlp"),
        ("dropout", 1.0),
        ("early_stop", 0),
        ("cv_folds", 1),
        ("vary_test", "yes"),
    ],
)
def test_bad_config_values_name_the_key(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=rf"^{key}"):
        TransferConfig(**{key: value})  # type: ignore[arg-type]


def test_config_round_trips_and_refuses_unknown_keys() -> None:
    config = TransferConfig(n_train=[20, 10], methods=["ridge"])  # type: ignore[arg-type]
    assert config.n_train == (10, 20)
    assert TransferConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ConfigError, match=r"unknown key.*'epoch'"):
        TransferConfig.from_dict({"epoch": 3})
    with pytest.raises(ConfigError, match="epochs_unfrozen"):
        TransferConfig(epochs_frozen=0, epochs_unfrozen=0)


def test_impossible_draws_name_the_problem(make_cohort: Callable[..., Path]) -> None:
    table = ScanTable.from_csv(make_cohort(n=24))
    with pytest.raises(ConfigError, match=r"n_train: 20 scans asked for.* 18 scans outside"):
        plan_splits(table, TransferConfig(n_train=(20,), test_size=6, methods=("ridge",)))
    unbalanced = table.subset([i for i, lab in enumerate(table.frame["label"]) if lab == "CN"]
                              + [1, 3, 5, 7, 9, 11])  # fmt: skip
    with pytest.raises(DataFormatError, match="class 'AD' has 4 scan"):
        plan_splits(unbalanced, TransferConfig(n_train=(10,), test_size=6, methods=("ridge",)))
    with pytest.raises(ConfigError, match="test_size"):
        plan_splits(table, TransferConfig(test_size=24, methods=("ridge",)))


def test_the_built_in_methods_are_a_plain_table() -> None:
    # Issue 18: methods were registered by importing modules for their side effects.
    from transmri.transfer.methods import cnn, linear

    assert available_methods()[: len(registry.BUILT_IN)] == tuple(registry.BUILT_IN)
    assert registry.get_method("ridge") is linear.ridge
    assert registry.get_method("default") is cnn.default
    assert [m for m in registry.BUILT_IN if registry.method_needs_encoder(m)] == [
        "finetune", "linear_probe", "regional_probe", "regional_random",
        "lpft", "l2sp", "llrd", "default",
    ]  # fmt: skip


def test_a_moved_name_says_where_it_lives_now() -> None:
    import transmri.evaluation

    with pytest.raises(ImportError, match=r"moved to transmri\.transfer\.transfer_curve"):
        transmri.evaluation.transfer_curve  # noqa: B018
    with pytest.raises(ImportError, match=r"moved to transmri\.transfer\.TransferConfig"):
        from transmri.evaluation import TransferConfig  # noqa: F401
