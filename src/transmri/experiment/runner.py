"""Run an experiment's steps: prepare, pretrain, finetune, evaluate, embed, compare, report.

Each step reads what earlier steps left in the run folder, so every step can
also run alone in a new process (``transmri pretrain exp.yaml`` then
``transmri finetune exp.yaml``). Running a step again skips it if it
finished (``pretrain``, ``finetune``; ``compare`` measures only missing rows)
and resumes an interrupted training step from its ``checkpoints/last.pt``;
``restart=True`` starts over (see ``docs/resume.md``). The run folder::

    RUN_DIR/
      run.json                  kind "experiment", name, synthetic, identity, steps, config
      experiment.resolved.yaml  the experiment with every default filled in
      source.csv, target.csv    the scan tables used (after filters and label maps)
      data_stats.csv            scans and subjects per cohort, split and label
      pretrain/                 the pretraining Learner's folder (encoder.safetensors + .json)
      finetune/                 the fine-tuned classifier's Learner folder (models/model.*)
      history.csv               the fine-tuned classifier's training curves
      predictions_test.csv      its test predictions; metrics_test.json its metrics
      embeddings_test.csv/.npy  its codes of the target test scans
      compare/                  the transfer benchmark (transfer_curve's folder)
      comparison.csv            one row per method, N and repeat (summary.csv, differences.csv)
      figures/                  pretraining curves
      report.html               everything above on one page

Example:
    >>> experiment = Experiment(load_experiment("examples/synthetic.yaml"))  # doctest: +SKIP
    >>> experiment.run()  # doctest: +SKIP
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from transmri.errors import ConfigError
from transmri.experiment.folder import (
    record_step,
    write_bytes,
    write_text,
)
from transmri.experiment.sources import config_roles
from transmri.experiment.state import ExperimentState

if TYPE_CHECKING:
    from transmri.training import Learner

__all__ = ["STEPS", "Experiment"]

#: The steps of ``transmri run``, in order.
STEPS: tuple[str, ...] = (
    "prepare",
    "pretrain",
    "finetune",
    "evaluate",
    "embed",
    "compare",
    "report",
)


class Experiment(ExperimentState):
    """The steps of one experiment, writing into its run folder.

    See :class:`~transmri.experiment.state.ExperimentState` for the arguments.
    """

    def prepare(self) -> int:
        """Load both cohorts, fill the volume cache and write the data statistics."""
        from transmri.data import VolumeCache

        self._begin("prepare")
        self.check_data()  # every check the data allow, before the first volume is read
        cache = VolumeCache(self.cache_dir, self.config.data.preprocessing)
        roles = config_roles(self.config)
        built = sum(cache.fill(self.table(r), progress=self.progress) for r in roles)
        stats = self.stats()
        record_step(self.run_dir, "prepare", {"cached": built, "scans": int(stats["scans"].sum())})
        self.log(f"prepare: {built} volumes cached in {self.cache_dir}; data_stats.csv written")
        return built

    def pretrain(self) -> Path:
        """Pretrain the autoencoder on the source; return the encoder card's path.

        With ``pretrain.encoder`` nothing is trained: the given encoder (a zoo
        name is converted on first use) is checked and its card's provenance
        recorded in ``run.json``. A pretraining that finished before is not
        repeated; an interrupted one resumes from ``pretrain/checkpoints/last.pt``.
        """
        from transmri.evaluation import plot_history
        from transmri.training import create_autoencoder, create_contrastive, create_mixed

        done = self._begin("pretrain")
        self.check_data()
        if self.config.pretrain.encoder is not None:
            return self._use_given_encoder()
        if done is not None and self.encoder_card.is_file():
            self._say_done("pretrain", done)
            return self.encoder_card
        p, m = self.config.pretrain, self.config.model
        data = self.source_data()
        arch: dict[str, Any] = {"channels": m.channels, "activation": m.activation, "norm": m.norm}
        options = self._learner_options(p.batch_size)
        path = self.run_dir / "pretrain"
        if p.objective == "mixed":
            learner = create_mixed(
                data,
                path,
                arch=m.arch,
                alpha=p.alpha,
                head=m.head,
                dropout=m.dropout,
                **arch,
                **options,
            )
        elif p.objective == "contrastive":
            learner = create_contrastive(
                data, path, arch=m.arch, target=p.contrastive_target, sigma=p.sigma,
                temperature=p.temperature, **arch, **options,
            )  # fmt: skip
        else:
            learner = create_autoencoder(data, path, arch=m.arch, **arch, **options)
        resume = self._resuming("pretrain", path, p.epochs)
        learner.fit(
            p.epochs, p.lr, wd=p.weight_decay, early_stop=p.early_stop, pretext=p.pretext,
            resume=resume,
        )  # fmt: skip
        card = learner.save_encoder()
        if len(data.test_ds) and p.objective != "contrastive":  # no per-scan contrastive loss
            learner.evaluate("test")
        history = self.run_dir / "pretrain" / "history.csv"
        if history.is_file():
            import pandas as pd

            plot_history(
                pd.read_csv(history), path=self.run_dir / "figures" / "pretraining_curves.png"
            )
        record_step(
            self.run_dir,
            "pretrain",
            {"epochs": len(learner.history_), "encoder": str(card), "pretext": p.pretext},
        )
        self.log(
            f"pretrain: {len(learner.history_)} epochs on {len(data.train_ds)} scans -> {card}"
        )
        return card

    def _use_given_encoder(self) -> Path:
        from transmri.training import load_encoder

        card_file = self.encoder_card
        _, card = load_encoder(card_file)  # verifies the weights against the card's sha256
        provenance = card.get("provenance")
        record_step(
            self.run_dir,
            "pretrain",
            {
                "skipped": True,
                "given": self.config.pretrain.encoder,
                "encoder": str(card_file),
                "encoder_sha256": card.get("sha256"),
                "encoder_source": card.get("source"),
                "architecture": card.get("architecture"),
                "provenance": provenance,
            },
        )
        name = (provenance or {}).get("zoo_name", card_file.parent.name)
        self.log(f"pretrain: skipped; starting from encoder {name} ({card_file})")
        return card_file

    def _classifier(self) -> Learner:
        from transmri.training import create_classifier_from_encoder

        m, f = self.config.model, self.config.finetune
        return create_classifier_from_encoder(
            self.target_data(),
            self._require(self.encoder_card, "pretrain"),
            self.run_dir / "finetune",
            head=m.head,
            dropout=m.dropout,
            **self._learner_options(f.batch_size),
        )

    def finetune(self) -> Learner:
        """Fine-tune the pretrained encoder + a head on the target's training split.

        A fine-tuning that finished before is not repeated (the saved model is
        loaded); an interrupted one resumes from ``finetune/checkpoints/last.pt``.
        """
        done = self._begin("finetune")
        if done is not None and (self.run_dir / "finetune" / "models" / "model.json").is_file():
            self._say_done("finetune", done)
            return self.finetuned()
        f = self.config.finetune
        learner = self._classifier()
        resume = self._resuming("finetune", learner.path, f.total_epochs)
        learner.fine_tune(
            f.epochs_frozen, f.epochs_unfrozen, f.lr, lr_mult=f.lr_mult, wd=f.weight_decay,
            early_stop=f.early_stop, resume=resume,
        )  # fmt: skip
        learner.save("model")
        history = learner.path / "history.csv"
        if history.is_file():
            write_bytes(self.run_dir / "history.csv", history.read_bytes())
        self._finetuned = learner
        record_step(self.run_dir, "finetune", {"epochs": len(learner.history_)})
        self.log(f"finetune: {len(learner.history_)} epochs on {len(learner.data.train_ds)} scans")
        return learner

    def _say_done(self, step: str, record: dict[str, Any]) -> None:
        self.note(
            f"{step}: already done (finished {record.get('finished', '?')}); skipped. "
            "Pass --restart (restart=True) to train it again"
        )

    def _resuming(self, step: str, learner_dir: Path, epochs: int) -> bool:
        """Whether ``step``'s Learner left a checkpoint to resume from (and say so)."""
        last = learner_dir / "checkpoints" / "last.pt"
        if not last.is_file():
            return False
        from transmri.training.checkpoint import load_checkpoint

        state = load_checkpoint(last)  # verified now: a damaged one is named before any work
        rows = int(state.get("history_offset", 0)) + int(state["epoch"])
        self.note(
            f"{step}: resuming from {last} ({rows} of {epochs} epochs done); "
            "pass --restart (restart=True) to start over"
        )
        return True

    def finetuned(self) -> Learner:
        """The fine-tuned classifier (loaded from ``finetune/models/model`` if needed)."""
        if self._finetuned is None:
            self.open()
            self._require(self.run_dir / "finetune" / "models" / "model.json", "finetune")
            learner = self._classifier()
            learner.load("model")
            self._finetuned = learner
        return self._finetuned

    def evaluate(self) -> Any:
        """Test predictions and metrics (subject-bootstrap intervals) of the fine-tuned model."""
        from transmri.evaluation import classification_metrics, write_metrics

        self._begin("evaluate")
        learner = self.finetuned()
        predictions = learner.predict("test")
        write_text(
            self.run_dir / "predictions_test.csv", predictions.to_frame().to_csv(index=False)
        )
        report = classification_metrics(
            [predictions.classes[i] for i in predictions.labels],
            predictions.probs,
            classes=predictions.classes,
            groups=list(predictions.subjects),
            n_boot=self.config.evaluation.n_boot,
            seed=self.config.seed,
        )
        write_metrics(report, self.run_dir / "metrics_test.json")
        record_step(self.run_dir, "evaluate", {k: float(v) for k, v in report.point.items()})
        self.log(
            f"evaluate: test AUC {report.point['auc']:.3f}, balanced accuracy "
            f"{report.point['balanced_accuracy']:.3f} on {len(predictions)} scans"
        )
        return report

    def embed(self, *, model: str = "finetune", splits: Sequence[str] = ("test",)) -> list[Path]:
        """Export codes of target scans as ``embeddings_<split>.csv`` and ``.npy``.

        Args:
            model: ``"finetune"`` (the fine-tuned encoder; files ``embeddings_<split>``)
                or ``"pretrain"`` (the encoder as pretrained; ``embeddings_pretrained-<split>``).
            splits: target splits to encode.
        """
        import pandas as pd

        from transmri.training import Learner

        if model not in ("finetune", "pretrain"):
            raise ConfigError(f"model: expected 'finetune' or 'pretrain', got {model!r}")
        self._begin("embed")
        if model == "finetune":
            learner, prefix = self.finetuned(), "embeddings_"
        else:
            learner = Learner.from_pretrained(
                self.target_data(),
                self._require(self.encoder_card, "pretrain"),
                self.run_dir / "embed",
                **self._learner_options(self.config.finetune.batch_size),
            )
            prefix = "embeddings_pretrained-"
        written = []
        for split in splits:
            codes, labels, subjects = learner.encode_data(split)
            names = learner.data.classes
            frame = pd.DataFrame(codes, columns=[f"e{i}" for i in range(codes.shape[1])])
            frame.insert(0, "label", [names[i] if i >= 0 else "" for i in labels])
            scans = learner.data.split_table(split).frame  # the codes' order
            if "image_id" in scans.columns:  # several visits of a subject told apart
                frame.insert(0, "image_id", scans["image_id"].astype(str).tolist())
            frame.insert(0, "path", scans["path"].astype(str).tolist())
            frame.insert(0, "subject", subjects)
            csv = write_text(self.run_dir / f"{prefix}{split}.csv", frame.to_csv(index=False))
            import io

            buffer = io.BytesIO()
            np.save(buffer, codes.astype(np.float32), allow_pickle=False)
            written += [csv, write_bytes(csv.with_suffix(".npy"), buffer.getvalue())]
        record_step(self.run_dir, "embed", {"model": model, "splits": list(splits)})
        self.log(f"embed: {len(splits)} split(s) of codes -> {written[0].name} ...")
        return written

    def compare(self) -> Any:
        """The transfer benchmark (``transfer_curve``) on the target; writes ``comparison.csv``."""
        from transmri.transfer.curve import transfer_curve

        self._begin("compare")
        rows = self.run_dir / "compare" / "comparison.csv"
        before = len(rows.read_text(encoding="utf-8").splitlines()) - 1 if rows.is_file() else 0
        result = transfer_curve(
            self.table("target"),
            preprocessing=self.config.data.preprocessing,
            encoder=self._require(self.encoder_card, "pretrain"),
            out_dir=self.run_dir / "compare",
            config=self.transfer_config(),
            cache_dir=self.cache_dir,
            overwrite=self.overwrite,
            report=self.note if self.progress else None,
        )
        for name in ("comparison.csv", "summary.csv", "differences.csv"):
            source = self.run_dir / "compare" / name
            if source.is_file():
                write_bytes(self.run_dir / name, source.read_bytes())
        if before and len(result.frame) == before:
            self.note(f"compare: all {before} rows already measured; nothing new to run")
        elif before:
            self.note(f"compare: {len(result.frame) - before} new rows; {before} kept from before")
        record_step(self.run_dir, "compare", {"rows": len(result.frame)})
        self.log(f"compare: {len(result.frame)} runs -> {self.run_dir / 'comparison.csv'}")
        return result

    def report(self) -> Path:
        """Write ``report.html`` from what the run folder holds."""
        from transmri.evaluation import build_report

        self._begin("report")
        path = build_report(self.run_dir, title=f"transmri experiment: {self.config.name}")
        self.log(f"report: {path}")
        return path

    def run(self, steps: Sequence[str] = STEPS) -> Path:
        """Run ``steps`` in order (skipping ``compare``/``report`` when the config says so)."""
        unknown = [s for s in steps if s not in STEPS]
        if unknown:
            raise ConfigError(f"steps: unknown step {unknown[0]!r}; expected some of {list(STEPS)}")
        ev = self.config.evaluation
        self.open()
        for step in steps:
            if (step == "compare" and not ev.methods) or (step == "report" and not ev.report):
                continue
            if step == "embed" and not ev.embeddings:
                continue
            getattr(self, step)()
        shutil.rmtree(self.run_dir / "embed", ignore_errors=True)
        return self.run_dir
