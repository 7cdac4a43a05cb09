"""What a trained Learner produces: predictions, metrics, embeddings and saved weights.

:class:`LearnerOutputs` is the part of :class:`~transmri.training.Learner`
that reads a trained model out; every method works on one process or under
DDP (each rank computes its shard, results are gathered, rank 0 writes).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file
from torch import Tensor

from transmri._files import (
    atomic_save_tensors,
    atomic_write_json,
    atomic_write_text,
    read_json,
    tensors_id,
    verify_weights,
)
from transmri._validation import check_positive_int
from transmri._version import __version__
from transmri.errors import CheckpointError, ConfigError, NotFittedError
from transmri.training._core import LearnerCore
from transmri.training.checkpoint import check_model_config
from transmri.training.encoder_io import save_encoder as write_encoder
from transmri.training.loop import collect, per_scan_losses
from transmri.training.predictions import Predictions

__all__ = ["LearnerOutputs"]

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_RECONSTRUCTION_KEYS = ("mse", "psnr", "ssim")


class LearnerOutputs(LearnerCore):
    """Predictions, metrics, embeddings and persistence of a Learner."""

    pretrained_card_: dict[str, Any] | None = None

    # ----------------------------------------------------------------- state
    @property
    def encoder_fitted_(self) -> bool:
        """Whether the encoder holds trained weights.

        True after :meth:`fit` or :meth:`load`, and for a Learner built on a
        pretrained encoder file (``create_classifier_from_encoder``,
        ``Learner.from_pretrained``) before any training: such a Learner can
        :meth:`encode_data` at once, but :meth:`predict` and :meth:`evaluate`
        still need its new head trained (``fitted_``).
        """
        return bool(self.fitted_ or self.pretrained_card_ is not None)

    def _check_encoder_fitted(self, what: str) -> None:
        if not self.encoder_fitted_:
            raise NotFittedError(
                f"{what}: the encoder has not been trained; call fit() (or load()) first, "
                "or build the Learner on a pretrained encoder (Learner.from_pretrained)"
            )

    def _check_head_fitted(self, what: str) -> None:
        if not self.fitted_ and self.pretrained_card_ is not None:
            raise NotFittedError(
                f"{what}: the encoder is pretrained but the new head has not been trained; "
                "call fit() or fine_tune() first (encode_data() works already)"
            )
        self._check_fitted(what)

    # ---------------------------------------------------------- predictions
    def predict(self, split: str = "test") -> Predictions:
        """Class probabilities for every scan of ``split``, in the dataset's order.

        Also writes ``predictions_<split>.csv`` (subject, path, label, pred, prob_<class>...).

        Raises:
            NotFittedError: before ``fit`` or ``load`` (also for a Learner on a
                pretrained encoder whose head is untrained).
            ConfigError: the model has no ``"logits"`` output (an autoencoder).
        """
        self._check_head_fitted("predict")
        fabric = self._get_fabric()
        loader, _ = self._loader(split, train=False)

        def extract(outputs: dict[str, Tensor], batch: dict[str, Tensor]) -> dict[str, Tensor]:
            if "logits" not in outputs:
                raise ConfigError(
                    f"predict: the model returns no 'logits' (keys {sorted(outputs)}); "
                    f"use evaluate() or encode_data() for a {self.config.model_type}"
                )
            return {
                "probs": torch.softmax(outputs["logits"].float(), dim=1),
                "label": batch["label"],
            }

        arrays = collect(fabric, self.model, loader, extract)
        table = self.data.split_table(split)
        probs = arrays["probs"]
        predictions = Predictions(
            probs=probs,
            preds=probs.argmax(axis=1).astype(np.int64),
            labels=arrays["label"].astype(np.int64),
            subjects=tuple(table.subjects),
            paths=tuple(table.paths),
            classes=tuple(self.data.classes),
        )
        if fabric.is_global_zero:
            self._prepare_run()
            predictions.to_csv(self.path / f"predictions_{split}.csv")
        return predictions

    def evaluate(self, split: str = "test", *, n_boot: int = 1000) -> dict[str, float]:
        """Metrics of the current model on the whole ``split``; written for the report.

        Classifiers (models with ``"logits"``) get
        :func:`~transmri.evaluation.classification_metrics` with intervals from
        a bootstrap over subjects, written by
        :func:`~transmri.evaluation.write_metrics` to ``metrics_<split>.json``
        (the file :func:`~transmri.evaluation.build_report` reads). Models that
        reconstruct get :func:`~transmri.evaluation.reconstruction_metrics`
        (each scan's own intensity range as the data range), averaged over
        scans and written to ``reconstruction_<split>.json``. A mixed model
        gets both.

        Args:
            split: ``"train"``, ``"val"`` or ``"test"``.
            n_boot: bootstrap resamples of the classification intervals (0: none).

        Returns:
            A flat dict of point estimates: the objective's loss parts (mean
            over scans), the classification metrics and/or ``mse``, ``psnr``,
            ``ssim``, and ``n`` (scans).

        Raises:
            NotFittedError: before ``fit`` or ``load``.
            ConfigError: an empty split.
        """
        from transmri.evaluation.metrics import (
            classification_metrics,
            reconstruction_metrics,
            write_metrics,
        )

        self._check_head_fitted("evaluate")
        n_boot = check_positive_int("n_boot", n_boot, minimum=0)
        objective = self._current_objective()
        loader, _ = self._loader(split, train=False)

        def extract(outputs: dict[str, Tensor], batch: dict[str, Tensor]) -> dict[str, Tensor]:
            row = per_scan_losses(objective, outputs, batch)
            if "logits" in outputs:
                row["probs"] = torch.softmax(outputs["logits"].float(), dim=1)
                row["label"] = batch["label"]
            if "reconstruction" in outputs:
                scores = []
                for x, x_hat in zip(
                    batch["image"].float().cpu(), outputs["reconstruction"].float().cpu()
                ):
                    span = float(x.max() - x.min()) or 1.0
                    values = reconstruction_metrics(x, x_hat, data_range=span)
                    scores.append([values[k] for k in _RECONSTRUCTION_KEYS])
                row["reconstruction"] = torch.tensor(scores, dtype=torch.float64)
            return row

        arrays = collect(self._get_fabric(), self.model, loader, extract)
        skip = ("probs", "label", "index", "reconstruction")
        metrics = {k: float(np.mean(v)) for k, v in arrays.items() if k not in skip}
        report = None
        if "probs" in arrays:
            labels = arrays["label"].astype(np.int64)
            keep = labels >= 0
            if keep.any():
                subjects = np.asarray(self.data.split_table(split).subjects)
                report = classification_metrics(
                    labels[keep],
                    arrays["probs"][keep],
                    classes=list(self.data.classes),
                    groups=subjects[keep],
                    n_boot=n_boot,
                    seed=self.config.seed,
                )
                metrics.update(report.point)
        reconstruction = None
        if "reconstruction" in arrays:
            means = arrays["reconstruction"].mean(axis=0)
            reconstruction = {k: float(v) for k, v in zip(_RECONSTRUCTION_KEYS, means)}
            metrics.update({k: v for k, v in reconstruction.items() if k not in metrics})
        n = len(self.data.dataset(split))
        metrics["n"] = float(n)
        if self.is_global_zero:
            run_dir = self._prepare_run()
            if report is not None:
                write_metrics(report, run_dir / f"metrics_{split}.json")
            if reconstruction is not None:
                atomic_write_json(
                    run_dir / f"reconstruction_{split}.json",
                    {"split": split, "n_samples": n, **reconstruction},
                )
        self._get_fabric().barrier()
        return metrics

    def encode_data(
        self, split: str = "test", *, pooled: bool = True, to_csv: bool = False
    ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Codes of every scan of ``split`` (eval mode, no gradients, batched).

        Args:
            split: ``"train"``, ``"val"`` or ``"test"``.
            pooled: average the code over space (``(n, C)``); else flatten it.
            to_csv: also write ``embeddings_<split>.csv`` (subject, label, e0..ek).

        Returns:
            ``(codes, labels, subjects)`` in the dataset's order (labels ``-1`` if unlabelled).

        Raises:
            NotFittedError: the encoder is neither trained (``fit``/``load``)
                nor loaded from a pretrained encoder file.
        """
        self._check_encoder_fitted("encode_data")
        fabric = self._get_fabric()
        loader, _ = self._loader(split, train=False)
        encode = getattr(self.model, "encode", None)

        def extract(outputs: dict[str, Tensor], batch: dict[str, Tensor]) -> dict[str, Tensor]:
            code = outputs["code"]
            flat = code.mean(dim=tuple(range(2, code.ndim))) if pooled and code.ndim > 2 else code
            return {"code": flat.reshape(flat.shape[0], -1), "label": batch["label"]}

        arrays = collect(fabric, self.model, loader, extract, forward=encode)
        codes, labels = arrays["code"], arrays["label"].astype(np.int64)
        subjects = list(self.data.split_table(split).subjects)
        if to_csv and fabric.is_global_zero:
            self._prepare_run()
            names = list(self.data.classes)
            frame = pd.DataFrame(codes, columns=[f"e{i}" for i in range(codes.shape[1])])
            frame.insert(0, "label", [names[i] if i >= 0 else "" for i in labels])
            frame.insert(0, "subject", subjects)
            atomic_write_text(self.path / f"embeddings_{split}.csv", frame.to_csv(index=False))
        return codes, labels, subjects

    # --------------------------------------------------------------- weights
    def save_encoder(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write ``encoder.safetensors`` and its ``encoder.json`` card; return the card's path.

        Args:
            path: weights file or folder (default: the run folder).
        """
        self._check_fitted("save_encoder")
        encoder = getattr(self.model, "encoder", None)
        if encoder is None:
            raise ConfigError(f"save_encoder: {type(self.model).__name__} has no `encoder`")
        target = Path(path) if path is not None else self._prepare_run() / "encoder.safetensors"
        table = self.data.split_table("train")
        summary = {
            k: float(v)
            for k, v in (self.history_[-1] if self.history_ else {}).items()
            if isinstance(v, int | float) and k != "epoch"
        }
        architecture = getattr(encoder, "config", None)
        card = (
            write_encoder(
                encoder,
                target,
                architecture=architecture
                if isinstance(architecture, dict)
                else self.model_config(),
                model_config=self.model_config(),
                input_shape=self.data.input_shape,
                preprocessing=self.data.preprocessing.to_dict(),
                source=(
                    f"{table.source}: {len(self.data.train_ds)} training scans, "
                    f"classes {self.data.classes}"
                ),
                training_subjects=sorted(
                    set(self.data.subjects("train")) | set(self.data.subjects("val"))
                ),
                metrics={"epochs": float(len(self.history_)), **summary},
            )
            if self.is_global_zero
            else target.with_suffix(".json")
        )
        self._get_fabric().barrier()
        return card

    def _model_file(self, name: str) -> Path:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(f"name: expected letters, digits, '_', '-', '.', got {name!r}")
        return self.path / "models" / f"{name}.safetensors"

    def save(self, name: str = "model") -> Path:
        """Save the whole model as ``models/<name>.safetensors`` + ``<name>.json``.

        Returns:
            The weights' path.
        """
        self._check_fitted("save")
        weights = self._model_file(name)
        if self.is_global_zero:
            self._prepare_run()
            weights.parent.mkdir(parents=True, exist_ok=True)
            tensors = {
                k: v.detach().cpu().contiguous().clone() for k, v in self.model.state_dict().items()
            }
            save_id = tensors_id(tensors)
            digest = atomic_save_tensors(tensors, weights, save_id=save_id)
            atomic_write_json(
                weights.with_suffix(".json"),
                {
                    "format_version": 1,
                    "transmri_version": __version__,
                    "model": self.model_config(),
                    "model_type": self.config.model_type,
                    "classes": list(self.data.classes),
                    "weights_file": weights.name,
                    "sha256": digest,
                    "save_id": save_id,
                },
            )
        self._get_fabric().barrier()
        return weights

    def load(self, name: str = "model") -> None:
        """Load ``models/<name>`` saved by :meth:`save` (checksum and architecture checked).

        Raises:
            FileNotFoundError: the card or the weights are missing.
            IntegrityError: the weights do not match the card's sha256 (says
                whether they come from another save than the card).
            CheckpointError: the card lacks ``sha256``/``model``, the weights are
                not a safetensors file, or they do not fit the model.
        """
        weights = self._model_file(name)
        card_file = weights.with_suffix(".json")
        card = read_json(card_file, what="model card")
        if not weights.is_file():
            raise FileNotFoundError(f"{weights}: model weights not found")
        verify_weights(weights, card, card_file=card_file)
        if "model" not in card:
            raise CheckpointError(
                f"{card_file}: expected a 'model' entry (the architecture), found keys "
                f"{sorted(card)}; save the model again"
            )
        check_model_config(card_file, card["model"], self.model_config())
        try:
            state = load_file(str(weights))
        except Exception as exc:  # safetensors raises its own error types
            raise CheckpointError(
                f"{weights}: expected a safetensors file, got an unreadable one ({exc})"
            ) from None
        try:
            self.model.load_state_dict(state)
        except RuntimeError as exc:
            raise CheckpointError(f"{weights}: cannot load into the model ({exc})") from None
        self.fitted_ = True

    def reset_model(self) -> None:
        """Re-initialise every weight like a fresh model of the same config (seeded).

        Also unfreezes every layer and forgets the training history and the
        pretrained encoder (``encoder_fitted_`` becomes False).
        """
        from transmri.models import build_model

        torch.manual_seed(self.config.seed)
        fresh = build_model(self.model_config())
        self.model.load_state_dict(fresh.state_dict())
        self._frozen = set()
        self._apply_frozen()
        self.history_ = []
        self.fitted_ = False
        self.pretrained_card_ = None  # the pretrained weights are gone too
