"""The experiment's data side: run folder, cohorts, splits (used by every step).

:class:`ExperimentState` resolves paths, opens the run folder, loads the two
cohorts once and makes the target split that every step shares: the
transfer benchmark's held-out test subjects, the rest split into training
and validation.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from transmri.errors import DataFormatError
from transmri.experiment.files import dump_experiment
from transmri.experiment.folder import (
    EXTENSION_KEYS,
    check_run_folder,
    config_identity,
    finished_steps,
    forget_steps,
    open_run_folder,
    path_fingerprint,
    write_text,
)
from transmri.experiment.schema import ExperimentConfig
from transmri.experiment.sources import (
    PATH_OPTIONS,
    check_encoder_source,
    check_source_paths,
    config_roles,
    load_cohort,
    source_path,
)

if TYPE_CHECKING:
    from transmri.data import DataBunch, ScanTable
    from transmri.training import Learner
    from transmri.transfer.config import TransferConfig

__all__ = ["ExperimentState"]


class ExperimentState:
    """Run folder, cohorts and splits of one experiment (the base of :class:`Experiment`).

    The constructor stores settings only. :meth:`check` validates data paths
    and the run folder without writing; every step opens the folder first.

    Args:
        config: the validated experiment.
        overwrite: replace another experiment found in the run folder.
        progress: show progress bars.
        log: called with one line per finished step (default: ignore).
        restart: train every step run from scratch: first remove what that
            step (and the steps using its results) wrote in an earlier,
            possibly interrupted run. By default a step finished before is
            skipped and an interrupted training step resumes from its
            ``checkpoints/last.pt``.
        note: called with one line when a step is skipped or resumed (the
            CLI prints it on stderr; default: ``log``).
    """

    def __init__(
        self,
        config: ExperimentConfig,
        *,
        overwrite: bool = False,
        progress: bool = False,
        log: Callable[[str], None] | None = None,
        restart: bool = False,
        note: Callable[[str], None] | None = None,
    ) -> None:
        self.config = self._resolved(config)
        self.run_dir = self.config.run_dir
        self.overwrite = overwrite
        self.progress = progress
        self.log = log or (lambda line: None)
        self.restart = restart
        self.note = note or self.log
        self._restarted: set[str] = set()
        self._opened = False
        self._tables: dict[str, ScanTable] = {}
        self._raw_tables: dict[str, ScanTable] = {}
        self._checking = False  # check_data reads the cohorts as given, before the raw steps
        self._target_data: DataBunch | None = None
        self._finetuned: Learner | None = None
        self._given_card: Path | None = None
        self._data_checked = False

    @staticmethod
    def _resolved(config: ExperimentConfig) -> ExperimentConfig:
        """The config with absolute data paths and output folder."""
        data = config.data
        sources = {}
        for role in config_roles(config):
            source = getattr(data, role)
            sources[role] = dataclasses.replace(source, path=str(source_path(config, role)))
        cache = config.resolve(data.cache_dir) or config.run_dir / "cache"
        data = dataclasses.replace(data, cache_dir=str(cache), **sources)
        pretrain = config.pretrain
        given = config.resolve(pretrain.encoder)
        if given is not None and given.exists():  # a folder, not a zoo name: made absolute
            pretrain = dataclasses.replace(pretrain, encoder=str(given))
        return dataclasses.replace(config, data=data, pretrain=pretrain, output=str(config.run_dir))

    @functools.cached_property
    def identity(self) -> str:
        """The run folder's identity (computed on first use: it reads the input tables)."""
        return config_identity(self._identity_body())

    @property
    def _legacy_identity(self) -> str:
        """What older versions recorded for this config (absolute paths): the same run."""
        return config_identity(self.config.to_dict())

    def _identity_body(self) -> dict[str, Any]:
        """The resolved config, free of where the run folder and the data lie.

        Paths inside the run folder become ``<run>/...``; the cache folder is
        left out (its entries are content-addressed); input data are
        fingerprinted by content (:func:`~transmri.experiment.folder.path_fingerprint`);
        :data:`~transmri.experiment.folder.EXTENSION_KEYS` are left out.
        """
        config, run_dir = self.config, self.run_dir
        skip = (run_dir, self.cache_dir)

        def portable(value: str) -> str:
            path = Path(value)
            if path.is_relative_to(run_dir):
                return f"<run>/{path.relative_to(run_dir).as_posix()}"
            return path_fingerprint(path, skip=skip)

        body = config.to_dict()
        body["data"].pop("cache_dir", None)
        for role in config_roles(config):
            section = body["data"][role]
            synthetic = getattr(config.data, role).adapter == "synthetic"
            path = Path(section["path"])
            if synthetic and not path.is_relative_to(run_dir):
                pass  # generated from its options, which are in the body
            else:
                section["path"] = portable(section["path"])
            for key in PATH_OPTIONS:
                value = section.get("options", {}).get(key)
                if isinstance(value, str):
                    section["options"][key] = portable(str(config.resolve(value)))
        encoder = body["pretrain"].get("encoder")
        if isinstance(encoder, str) and Path(encoder).is_absolute() and Path(encoder).exists():
            card = Path(encoder) / "encoder.json"  # the card holds the weights' sha256
            body["pretrain"]["encoder"] = portable(str(card if card.is_file() else encoder))
        for key in EXTENSION_KEYS:
            body["evaluation"].pop(key, None)
        return body

    # ------------------------------------------------------------ plumbing
    def check(self) -> None:
        """Validate data paths and the run folder; writes nothing.

        Raises:
            FileNotFoundError: a data path does not exist.
            OutputExistsError: the run folder holds another run.
        """
        check_source_paths(self.config)
        check_encoder_source(self.config)
        check_run_folder(
            self.run_dir, self.identity, overwrite=self.overwrite, legacy=self._legacy_identity
        )

    def open(self) -> Path:
        """Create or accept the run folder (after :meth:`check`); return it."""
        if not self._opened:
            self.check()
            open_run_folder(
                self.run_dir,
                identity=self.identity,
                name=self.config.name,
                synthetic=self.config.synthetic,
                config=self.config.to_dict(),
                resolved_yaml=dump_experiment(self.config),
                overwrite=self.overwrite,
                legacy=self._legacy_identity,
            )
            self._opened = True
        return self.run_dir

    def check_data(self) -> None:
        """Check what the data allow before the first heavy step (no volume is read).

        Loads the cohorts (writing ``source.csv``, ``target.csv`` and
        ``skipped.csv``, what the adapters and filters dropped, with reasons),
        makes the target split and the benchmark's draws, and refuses: a class
        too small to split, a subject with two labels, ``evaluation.n_train``
        beyond the scans available, target test subjects in the pretraining
        set (``data.exclude_target: none`` on the same cohort), and
        byte-identical scan files in the pretraining set and the target test
        set or in two target splits (each scan file is hashed once). Warns
        when some scans have a brain mask and others do not.

        Raises:
            DataFormatError: naming the cohort's table, row or class.
            DataLeakageError: naming the subjects (and files) seen twice.
            ConfigError: ``evaluation.n_train`` or ``test_size`` the data cannot meet.
        """
        if self._data_checked:
            return
        self._checking = True
        try:
            self._check_data()
        finally:
            self._checking = False
        if self.config.data.raw is not None:
            self._target_data = None  # rebuilt from the raw steps' outputs
        self._data_checked = True

    def _check_data(self) -> None:
        from transmri.data import check_content_leakage, check_leakage
        from transmri.errors import DataLeakageError

        roles = config_roles(self.config)
        tables = {role: self.table(role) for role in roles}
        _write_skipped(self.run_dir, tables)
        _warn_mixed_masking(self.config, tables)
        target = tables["target"]
        try:
            data = self.target_data()
            _check_every_class_trains(target, data.split_table("train"))
            if self.config.evaluation.methods:
                from transmri.transfer.plan import plan_splits

                plan_splits(target, self.transfer_config())
        except DataFormatError as exc:
            if self.config.data.target.labels is not None:
                raise
            raise DataFormatError(
                f"{exc} (data.target: classes {target.label_counts()}; data.target.labels "
                "names the classes to keep)"
            ) from None
        test = data.split_table("test")
        parts = {f"the target {s} split": data.split_table(s) for s in ("train", "val", "test")}
        if "source" in tables:
            self.source_data()
            if self.config.data.exclude_target == "none":
                try:
                    check_leakage(
                        tables["source"],
                        test,
                        names=("data.source (pretraining)", "the target test split"),
                    )
                except DataLeakageError as exc:
                    raise DataLeakageError(
                        f"{exc}; with data.exclude_target: none the encoder would be tested "
                        "on scans it was pretrained on: set data.exclude_target: test (or all)"
                    ) from None
            check_content_leakage(
                {"data.source (pretraining)": tables["source"], "the target test split": test}
            )
        check_content_leakage(parts)

    def _begin(self, step: str) -> dict[str, Any] | None:
        """Open the folder for ``step``; its record in ``run.json`` if it finished before.

        With ``restart`` (once per step and instance) the step's files and
        those of its dependents are removed first, so ``None`` is returned.
        """
        self.open()
        if self.restart and step not in self._restarted:
            forgotten = forget_steps(self.run_dir, [step])
            self._restarted.update(forgotten)
            self.note(f"{step}: --restart: starting over (forgot {', '.join(forgotten)})")
        return finished_steps(self.run_dir).get(step)

    @property
    def cache_dir(self) -> Path:
        """The volume cache folder."""
        return Path(str(self.config.data.cache_dir))

    def table(self, role: str) -> ScanTable:
        """Cohort ``"source"`` or ``"target"`` (the source without target subjects).

        With ``data.raw`` the scans are the raw steps' outputs (skull-stripped,
        registered; see :func:`raw_scans`), except while :meth:`check_data` runs:
        its checks need only the subjects, labels and source files, so they
        come before the slow raw steps.
        """
        cohort = self._cohort(role)
        raw = self.config.data.raw
        if raw is None or self._checking:
            return cohort
        if role not in self._raw_tables:
            folder = self.cache_dir / "raw" / role
            self._raw_tables[role] = raw_scans(cohort, folder, raw, note=self.note)
            frame = self._raw_tables[role].frame
            write_text(self.run_dir / f"{role}.csv", frame.to_csv(index=False))
        return self._raw_tables[role]

    def _cohort(self, role: str) -> ScanTable:
        """The cohort as its adapter gives it (see :meth:`table`)."""
        if role not in self._tables:
            self.open()
            table = load_cohort(self.config, role)
            mode = self.config.data.exclude_target
            if role == "source" and mode != "none":
                from transmri.transfer.plan import held_out_subjects

                target = self._cohort("target")
                drop = set(
                    target.subjects
                    if mode == "all"
                    else held_out_subjects(target, self.transfer_config())
                )
                table = table.subset([i for i, s in enumerate(table.subjects) if s not in drop])
                if len(table) == 0:
                    raise DataFormatError(
                        f"data.source: no scan left after removing the target's subjects "
                        f"(data.exclude_target: {mode}); the two cohorts are the same people"
                    )
            self._tables[role] = table
            write_text(self.run_dir / f"{role}.csv", table.frame.to_csv(index=False))
        return self._tables[role]

    def transfer_config(self) -> TransferConfig:
        """The :class:`TransferConfig` of ``compare``; its held-out test subjects are ours too."""
        from transmri.transfer.config import TransferConfig

        ev, ft = self.config.evaluation, self.config.finetune
        n_train = ev.n_train or (self._all_training_scans(),)
        return TransferConfig(
            n_train=n_train,
            repeats=ev.repeats,
            test_size=ev.test_size,
            val_fraction=ev.val_size / (1 - ev.test_size),
            methods=ev.methods or ("finetune",),
            epochs=ft.total_epochs,
            epochs_frozen=ft.epochs_frozen,
            epochs_unfrozen=ft.epochs_unfrozen,
            lr=ft.lr,
            lr_mult=ft.lr_mult,
            batch_size=ft.batch_size,
            weight_decay=ft.weight_decay,
            head=self.config.model.head,
            dropout=self.config.model.dropout,
            early_stop=ft.early_stop,
            scratch_arch=self.config.model.arch,
            seed=self.config.seed,
        )

    def _all_training_scans(self) -> int:
        """The largest label-balanced training set outside the held-out test subjects."""
        from transmri.transfer import TransferConfig, held_out_subjects

        target = self.table("target")
        probe = TransferConfig(
            test_size=self.config.evaluation.test_size, n_train=(2,), seed=self.config.seed
        )
        held = set(held_out_subjects(target, probe))
        rest = [label for s, label in zip(target.subjects, target.frame["label"]) if s not in held]
        counts = [rest.count(c) for c in sorted(set(rest))]
        return max(2, len(counts) * min(counts)) if counts else 2

    def target_data(self) -> DataBunch:
        """The target split: the benchmark's held-out test subjects; the rest train / val."""
        if self._target_data is None:
            from transmri.data import DataBunch, train_val_test_split
            from transmri.transfer.plan import held_out_subjects

            target = self.table("target")
            held = set(held_out_subjects(target, self.transfer_config()))
            is_test = np.array([s in held for s in target.subjects])
            rest = target.subset(np.flatnonzero(~is_test))
            ev = self.config.evaluation
            with warnings.catch_warnings():  # the test split is held out above, on purpose
                warnings.filterwarnings("ignore", message="test_size=0")
                split = train_val_test_split(
                    rest,
                    val_size=ev.val_size / (1 - ev.test_size),
                    test_size=0.0,
                    seed=self.config.seed,
                )
            self._target_data = DataBunch.from_splits(
                train=rest.subset(split.train),
                val=rest.subset(split.val),
                test=target.subset(np.flatnonzero(is_test)),
                preprocessing=self.config.data.preprocessing,
                cache_dir=self.cache_dir,
                seed=self.config.seed,
                augment=self.config.finetune.augment,
                classes=self.config.data.target.labels,
            )
        return self._target_data

    def source_data(self) -> DataBunch:
        """The source cohort split for pretraining."""
        from transmri.data import DataBunch

        p, source = self.config.pretrain, self.config.data.source
        if source is None:
            raise DataFormatError(
                "data.source: not given (pretrain.encoder starts from an existing encoder)"
            )
        return DataBunch(
            self.table("source"),
            self.config.data.preprocessing,
            cache_dir=self.cache_dir,
            val_size=p.val_size,
            test_size=p.test_size,
            seed=self.config.seed,
            augment=p.augment,
            targets=source.targets,
            classes=source.labels if p.objective == "mixed" else None,
        )

    def _learner_options(self, batch_size: int) -> dict[str, Any]:
        return {"batch_size": batch_size, "seed": self.config.seed, "progress": self.progress}

    @property
    def encoder_card(self) -> Path:
        """The pretrained encoder's card (after ``pretrain``; or ``pretrain.encoder``'s).

        A zoo name in ``pretrain.encoder`` is converted on first use into the
        transmri cache.
        """
        given = self.config.pretrain.encoder
        if given is None:
            return self.run_dir / "pretrain" / "encoder.json"
        if self._given_card is None:
            from transmri.pretrained.zoo import resolve_encoder

            self._given_card = resolve_encoder(
                given, base_dir=self.config.base_dir, where="pretrain.encoder"
            )
        return self._given_card

    def _require(self, path: Path, step: str) -> Path:
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: not found; run `transmri {step}` on this experiment first"
            )
        return path

    def stats(self) -> Any:
        """Scans and subjects per cohort, split and label; writes ``data_stats.csv``."""
        import pandas as pd

        rows = []
        parts = {"target": self.target_data()}
        if self.config.data.source is not None and self.config.pretrain.encoder is None:
            parts = {"source": self.source_data(), **parts}
        for cohort, data in parts.items():
            for split in ("train", "val", "test"):
                frame = data.split_table(split).frame
                labels = frame["label"].fillna("(unlabelled)")
                for label, group in frame.groupby(labels):
                    rows.append(
                        {
                            "cohort": cohort,
                            "split": split,
                            "label": label,
                            "scans": len(group),
                            "subjects": group["subject"].nunique(),
                        }
                    )
        stats = pd.DataFrame(rows, columns=["cohort", "split", "label", "scans", "subjects"])
        write_text(self.run_dir / "data_stats.csv", stats.to_csv(index=False))
        return stats


def _check_every_class_trains(target: ScanTable, train: ScanTable) -> None:
    """Raise naming a class (and its rows) that the held-out test split left no training scan."""
    trained = set(train.labels)
    for label in target.labels:
        if label not in trained:
            rows = target.frame.loc[target.frame["label"] == label, "row"].tolist()
            shown = ", ".join(str(r) for r in rows[:5]) + (" ..." if len(rows) > 5 else "")
            raise DataFormatError(
                f"{target.source}: class {label!r} (row(s) {shown}) has too few subjects: "
                "none is left for training after the held-out test split"
            )


def _write_skipped(run_dir: Path, tables: dict[str, ScanTable]) -> None:
    """``skipped.csv``: cohort, item, reason of every row an adapter or filter dropped."""
    import pandas as pd

    frames = [t.skipped.assign(cohort=role) for role, t in tables.items()]
    skipped = pd.concat(frames, ignore_index=True)[["cohort", "item", "reason"]]
    write_text(run_dir / "skipped.csv", skipped.to_csv(index=False))


def _warn_mixed_masking(config: ExperimentConfig, tables: dict[str, ScanTable]) -> None:
    """Warn when some scans have a brain mask and others not (within or across cohorts)."""
    if config.data.preprocessing.mask is not None:
        return  # one dataset-wide mask for every scan
    counts = {role: (int(t.frame["mask"].notna().sum()), len(t)) for role, t in tables.items()}
    masked = sum(n for n, _ in counts.values())
    if masked == 0 or masked == sum(total for _, total in counts.values()):
        return
    shown = ", ".join(f"data.{role}: {n} of {total}" for role, (n, total) in counts.items())
    warnings.warn(
        f"mixed masking: some scans have a brain mask and others not ({shown} scans masked); "
        "skull-stripped and whole-head scans look different to the network: give every scan "
        "a mask, or none",
        UserWarning,
        stacklevel=3,
    )


def raw_scans(table: ScanTable, folder: Path, config: Any, *, note: Any = None) -> ScanTable:
    """``table`` with each scan (and mask) replaced by its raw steps' output.

    Runs :func:`transmri.raw.preprocess_table` into ``folder`` (resumable: a
    scan done before with the same config is not redone), adds its QC columns
    and names every flagged scan through ``note``; the flagged scans are kept.
    """
    import pandas as pd

    from transmri.raw import preprocess_table

    scans = preprocess_table(table, folder, config)
    frame = table.frame.copy()
    frame["source_path"] = frame["path"]
    frame["path"] = scans["path"].to_numpy()
    frame["mask"] = pd.array(scans["mask"].to_numpy(), dtype="string")
    for column in ("brain_volume_cc", "registration_ncc", "template_mask_dice", "qc_flag"):
        if column in scans.columns:
            frame[column] = scans[column].to_numpy()
    if note is not None and "qc_flag" in scans.columns:
        for _, row in scans[scans["qc_flag"].astype(bool)].iterrows():
            note(
                f"raw: QC flagged {row['source_path']}: {row['qc_reason']} "
                f"(kept; see {folder}/qc.html)"
            )
    return table.with_frame(frame)
