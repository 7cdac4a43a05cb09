"""What a trained Learner produces: predictions, metrics, embeddings and saved weights.

:class:`LearnerOutputs` is the part of :class:`~transmri.training.Learner`
that reads a trained model out; every method works on one process or under
DDP (each rank computes its shard, results are gathered, rank 0 writes).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from transmri._version import __version__
from transmri.errors import CheckpointError, ConfigError
from transmri.training._core import LearnerCore
from transmri.training._files import (
    atomic_write_json,
    atomic_write_text,
    read_json,
    sha256_file,
    verify_sha256,
)
from transmri.training.checkpoint import check_model_config
from transmri.training.encoder_io import save_encoder as write_encoder
from transmri.training.loop import collect
from transmri.training.predictions import Predictions

__all__ = ["LearnerOutputs"]

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


class LearnerOutputs(LearnerCore):
    """Predictions, metrics, embeddings and persistence of a Learner."""

    # ---------------------------------------------------------- predictions
    def predict(self, split: str = "test") -> Predictions:
        """Class probabilities for every scan of ``split``, in the dataset's order.

        Also writes ``predictions_<split>.csv`` (subject, path, label, pred, prob_<class>...).

        Raises:
            NotFittedError: before ``fit`` or ``load``.
            ConfigError: the model has no ``"logits"`` output (an autoencoder).
        """
        self._check_fitted("predict")
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

    def evaluate(self, split: str = "test") -> dict[str, float]:
        """Loss parts (mean over scans) and, for classifiers, accuracy/balanced accuracy/AUC.

        Computed on the whole ``split`` and written to ``metrics_<split>.json``.
        For autoencoders ``mse`` is the reconstruction error.
        """
        self._check_fitted("evaluate")
        metrics = self._split_metrics(split, self._current_objective(), prefix="")
        metrics["n"] = float(len(self.data.dataset(split)))
        if self.is_global_zero:
            self._prepare_run()
            atomic_write_json(self.path / f"metrics_{split}.json", {"split": split, **metrics})
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
        """
        self._check_fitted("encode_data")
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
            tmp = weights.with_name(f".{weights.name}.tmp")
            try:
                save_file(tensors, str(tmp))
                os.replace(tmp, weights)
            finally:
                tmp.unlink(missing_ok=True)
            atomic_write_json(
                weights.with_suffix(".json"),
                {
                    "format_version": 1,
                    "transmri_version": __version__,
                    "model": self.model_config(),
                    "model_type": self.config.model_type,
                    "classes": list(self.data.classes),
                    "weights_file": weights.name,
                    "sha256": sha256_file(weights),
                },
            )
        self._get_fabric().barrier()
        return weights

    def load(self, name: str = "model") -> None:
        """Load ``models/<name>`` saved by :meth:`save` (checksum and architecture checked).

        Raises:
            FileNotFoundError, IntegrityError, CheckpointError: naming the file.
        """
        weights = self._model_file(name)
        card_file = weights.with_suffix(".json")
        card = read_json(card_file, what="model card")
        if not weights.is_file():
            raise FileNotFoundError(f"{weights}: model weights not found")
        verify_sha256(weights, card["sha256"], source=str(card_file))
        check_model_config(card_file, card["model"], self.model_config())
        try:
            state = load_file(str(weights))
            self.model.load_state_dict(state)
        except (RuntimeError, OSError) as exc:
            raise CheckpointError(f"{weights}: cannot load into the model ({exc})") from exc
        self.fitted_ = True

    def reset_model(self) -> None:
        """Re-initialise every weight like a fresh model of the same config (seeded).

        Also unfreezes every layer and forgets the training history.
        """
        from transmri.models import build_model

        torch.manual_seed(self.config.seed)
        fresh = build_model(self.model_config())
        self.model.load_state_dict(fresh.state_dict())
        self._frozen = set()
        self._apply_frozen()
        self.history_ = []
        self.fitted_ = False
