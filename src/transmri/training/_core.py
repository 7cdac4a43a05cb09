"""The Learner's plumbing: Fabric, the run folder, loaders, the objective, validation.

:class:`LearnerCore` holds what every Learner method needs; the public
methods are in :mod:`transmri.training.outputs` and
:mod:`transmri.training.learner`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from transmri.errors import ConfigError, NotFittedError, OutputExistsError
from transmri.training.callbacks import Callback, FitState
from transmri.training.checkpoint import check_model_config, get_rng_state, save_checkpoint
from transmri.training.config import FitConfig, LearnerConfig
from transmri.training.loop import classification_scores, collect, per_scan_losses
from transmri.training.objectives import (
    ClassificationLoss,
    MultiTaskLoss,
    Objective,
    ReconstructionLoss,
    VAELoss,
)
from transmri.training.predictions import save_reconstruction_figure
from transmri.training.run_folder import prepare_run_folder, run_identity

__all__ = ["SPLITS", "LearnerCore", "SeededSampler"]

SPLITS = ("train", "val", "test")


class SeededSampler(DistributedSampler):
    """A :class:`DistributedSampler` whose epoch only the Learner sets (:meth:`use_epoch`).

    Fabric's loader wrapper calls ``set_epoch`` with its own count of
    iterations, which restarts at 0 in a resumed run; the order must instead
    follow the run's epoch number, so ``set_epoch`` is ignored here.

    :meth:`use_epoch` also reseeds the random augmentation of the dataset (and
    the seeds of the loader's workers, through ``worker_generator``) from
    ``(seed, epoch, rank)``: an epoch draws the same flips and affines whether
    the run went straight through or was resumed from a checkpoint, with no
    random state to store.
    """

    worker_generator: torch.Generator | None = None
    """The loader's generator, from which each epoch's worker seeds are drawn."""

    def set_epoch(self, epoch: int) -> None:
        """Ignored (see the class docstring)."""

    def use_epoch(self, epoch: int) -> None:
        """Shuffle and augment as for ``epoch`` (the same on every run and after a resume)."""
        self.epoch = epoch
        state = np.random.SeedSequence([self.seed, epoch, self.rank]).generate_state(2)
        transform = getattr(self.dataset, "transform", None)
        set_random_state = getattr(transform, "set_random_state", None)
        if callable(set_random_state):
            set_random_state(seed=int(state[0]))
        if self.worker_generator is not None:
            self.worker_generator.manual_seed(int(state[1]))


class LearnerCore:
    """State and helpers shared by the Learner's methods (not used on its own)."""

    data: Any
    model: nn.Module
    path: Path
    config: LearnerConfig
    loss_fn: Callable[..., dict[str, Tensor]] | None
    opt_fn: Callable[..., torch.optim.Optimizer]
    callbacks: list[Callback]
    overwrite: bool
    history_: list[dict[str, Any]]
    fitted_: bool
    _frozen: set[str]
    _fabric: Any
    _run_ready: bool
    _objective_: Objective | None = None
    _stage: str | None = None

    # ------------------------------------------------------------ devices
    def _get_fabric(self) -> Any:
        """The Fabric of this learner, created and launched on first use."""
        if self._fabric is None:
            from lightning_fabric import Fabric

            cfg = self.config
            fabric = Fabric(
                accelerator=cfg.accelerator,
                strategy=cfg.strategy,
                devices=cfg.devices,
                num_nodes=cfg.num_nodes,
                precision=cfg.precision,  # type: ignore[arg-type]
            )
            fabric.launch()
            self.model.to(fabric.device)
            if cfg.channels_last:
                self.model.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
            self._fabric = fabric
        return self._fabric

    @property
    def is_global_zero(self) -> bool:
        """Whether this process writes files (rank 0, or the only process)."""
        return bool(self._get_fabric().is_global_zero)

    # ---------------------------------------------------------- run folder
    def model_config(self) -> dict[str, Any]:
        """The model's ``config`` (a class name for a model without one)."""
        config = getattr(self.model, "config", None)
        if isinstance(config, dict):
            return config
        return {"class": f"{type(self.model).__module__}.{type(self.model).__qualname__}"}

    def _prepare_run(self) -> Path:
        """Create the run folder on first use (rank 0 writes; others wait)."""
        if self._run_ready:
            return self.path
        fabric = self._get_fabric()
        failure: BaseException | None = None
        if fabric.is_global_zero:
            try:
                self._write_run_folder(fabric.world_size)
            except Exception as exc:  # told to the other ranks below, then re-raised
                failure = exc
        # Every rank learns whether rank 0 failed, so that none waits forever at a barrier.
        reason = fabric.broadcast(None if failure is None else f"{failure}", src=0)
        if failure is not None:
            raise failure
        if reason is not None:
            raise OutputExistsError(
                f"{self.path}: rank 0 could not prepare the run folder ({reason}); "
                f"rank {fabric.global_rank} stops too"
            )
        fabric.barrier()
        self._run_ready = True
        return self.path

    def _write_run_folder(self, world_size: int) -> None:
        """Rank 0's part of :meth:`_prepare_run`: ``run.json`` and ``data.json``."""
        self._check_input_fits()
        identity = run_identity(
            model_type=self.config.model_type,
            model_config=self.model_config(),
            preprocessing=self.data.preprocessing.to_dict(),
            splits={s: list(self.data.subjects(s)) for s in SPLITS},
        )
        settings = {
            "learner": self.config.to_dict(),
            "loss_fn": repr(self.loss_fn),
            "opt_fn": getattr(self.opt_fn, "__qualname__", repr(self.opt_fn)),
            "model": self.model_config(),
            "world_size": world_size,
            # Another thread count sums in another order: results differ in the
            # last digits (the same seed is bit-identical only with the same count).
            "torch_threads": torch.get_num_threads(),
        }
        prepare_run_folder(self.path, identity, config=settings, overwrite=self.overwrite)
        self.data.save(self.path / "data.json")

    def _check_input_fits(self) -> None:
        """Refuse volumes too small for the model before any run-folder file is written."""
        shape = self.data.preprocessing.target_shape
        code_shape = getattr(self.model, "code_shape", None)
        if shape is not None and callable(code_shape):
            code_shape(shape)  # raises ConfigError naming the axis and the size needed

    def _check_fitted(self, what: str) -> None:
        if not self.fitted_:
            raise NotFittedError(
                f"{what}: the model has not been trained; call fit() (or load()) first"
            )

    # ------------------------------------------------------------- loaders
    def _loader(self, split: str, *, train: bool) -> tuple[DataLoader[Any], SeededSampler]:
        """A loader over this process's shard of ``split``, seeded by ``config.seed``.

        The same :class:`DistributedSampler` serves one process (one replica)
        and DDP, so a 2-process run sees, per step, exactly the scans of the
        1-process run's batch.
        """
        if split not in SPLITS:
            raise ConfigError(f"split: expected one of {SPLITS}, got {split!r}")
        fabric = self._get_fabric()
        dataset = self.data.dataset(split)
        if len(dataset) == 0:
            raise ConfigError(f"split: the {split} split is empty")
        sampler = SeededSampler(
            dataset,
            num_replicas=fabric.world_size,
            rank=fabric.global_rank,
            shuffle=train,
            seed=self.config.seed,
        )
        loader = self.data.dataloader(
            split,
            self.config.batch_size,
            shuffle=False,
            num_workers=self.config.num_workers,
            sampler=sampler,
        )
        sampler.worker_generator = loader.generator
        return fabric.setup_dataloaders(loader, use_distributed_sampler=False), sampler

    # ----------------------------------------------------------- objective
    def _objective(self, cfg: FitConfig) -> Objective:
        """The user's ``loss_fn`` as given, or the model type's default objective.

        Raises:
            ConfigError: ``alpha``/``beta`` given where they cannot apply.
        """
        model_type = self.config.model_type
        if self.loss_fn is not None:
            given = [n for n in ("alpha", "beta") if getattr(cfg, n) is not None]
            if given:
                raise ConfigError(
                    f"{', '.join(given)}: apply to the default objective, but this learner uses "
                    f"loss_fn={self.loss_fn!r}; set them on that loss instead"
                )
            return self.loss_fn
        if cfg.alpha is not None and model_type != "mixed":
            raise ConfigError(f"alpha: applies to model_type='mixed' only, got {model_type!r}")
        if cfg.beta is not None and model_type != "vae":
            raise ConfigError(f"beta: applies to model_type='vae' only, got {model_type!r}")
        if model_type == "autoencoder":
            return ReconstructionLoss()
        if model_type == "vae":
            return VAELoss(beta=1.0 if cfg.beta is None else cfg.beta)
        weights = self.data.class_weights()
        if model_type == "mixed":
            return MultiTaskLoss(
                alpha=0.7 if cfg.alpha is None else cfg.alpha, class_weights=weights
            )
        return ClassificationLoss(class_weights=weights)

    def _current_objective(self) -> Objective:
        if self._objective_ is None:
            self._objective_ = self._objective(FitConfig(epochs=1))
        return self._objective_

    # ---------------------------------------------------------- evaluation
    def _split_metrics(self, split: str, objective: Objective, *, prefix: str) -> dict[str, float]:
        """Mean loss parts over the scans of a whole split, plus classification scores."""
        fabric = self._get_fabric()
        loader, _ = self._loader(split, train=False)

        def extract(outputs: dict[str, Tensor], batch: dict[str, Tensor]) -> dict[str, Tensor]:
            row = per_scan_losses(objective, outputs, batch)
            if "logits" in outputs:
                row["probs"] = torch.softmax(outputs["logits"].float(), dim=1)
                row["label"] = batch["label"]
            return row

        arrays = collect(fabric, self.model, loader, extract)
        metrics = {
            f"{prefix}{k}": float(np.mean(v))
            for k, v in arrays.items()
            if k not in ("probs", "label", "index")
        }
        if "probs" in arrays:
            scores = classification_scores(arrays["label"].astype(np.int64), arrays["probs"])
            metrics.update({f"{prefix}{k}": v for k, v in scores.items()})
        return metrics

    def _validate(self, objective: Objective) -> dict[str, float]:
        return self._split_metrics("val", objective, prefix="val_")

    @torch.no_grad()
    def _snapshot(self, epoch: int) -> Path | None:
        """Save the reconstruction of the first validation (else training) scan."""
        split = "val" if len(self.data.val_ds) else "train"
        image = self.data.dataset(split)[0]["image"][None].to(self._get_fabric().device)
        was_training = self.model.training
        self.model.eval()
        try:
            outputs = self.model(image)
        finally:
            self.model.train(was_training)
        if "reconstruction" not in outputs:
            return None
        return save_reconstruction_figure(
            image[0, 0].float().cpu().numpy(),
            outputs["reconstruction"][0, 0].float().cpu().numpy(),
            self.path / "figures" / f"reconstruction_epoch{epoch:03d}.png",
            title=f"epoch {epoch}",
        )

    # ------------------------------------------------------------ freezing
    def _names_of(self, modules: Iterable[nn.Module]) -> set[str]:
        ids = {id(m) for root in modules for m in root.modules()}
        return {name for name, m in self.model.named_modules() if id(m) in ids}

    def _apply_frozen(self) -> None:
        for name, module in self.model.named_modules():
            for p in module.parameters(recurse=False):
                p.requires_grad_(name not in self._frozen)

    def _freeze_norm_stats(self) -> None:
        """Keep norm layers of frozen parts in eval mode so their running stats stay fixed."""
        for name, module in self.model.named_modules():
            if name in self._frozen and isinstance(module, nn.modules.batchnorm._NormBase):
                module.eval()

    def _encoder(self) -> nn.Module:
        encoder = getattr(self.model, "encoder", None)
        if not isinstance(encoder, nn.Module):
            raise ConfigError(
                f"model: expected an `encoder` sub-module to freeze, "
                f"{type(self.model).__name__} has none"
            )
        return encoder

    def _layer_groups(self) -> list[nn.Module]:
        groups = getattr(self.model, "layer_groups", None)
        return list(groups()) if callable(groups) else [self.model]

    # --------------------------------------------------------- loop helpers
    def _event(self, name: str, state: FitState) -> None:
        for callback in self.callbacks:
            getattr(callback, name)(self, state)

    def _on_batch(self, state: FitState, loss: float) -> None:
        state.step += 1
        state.batch_loss = loss
        self._event("on_batch_end", state)

    def _seed_everything(self) -> None:
        seed = self.config.seed
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)

    def _save_checkpoint(
        self,
        path: Path,
        cfg: FitConfig,
        state: FitState,
        offset: int,
        *,
        full: bool,
        optimizer: Any = None,
        scheduler: Any = None,
        best_model: dict[str, Tensor] | None = None,
    ) -> None:
        content: dict[str, Any] = {
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "model_config": json.dumps(self.model_config()),
            "epoch": state.epoch,
            "fit_config": json.dumps(cfg.to_dict()),
            "learner_config": json.dumps(self.config.to_dict()),
        }
        if full:
            content.update(
                optimizer=optimizer.state_dict(),
                scheduler=None if scheduler is None else scheduler.state_dict(),
                history=json.dumps(self.history_),
                history_offset=offset,
                fit_state=json.dumps(state.to_dict()),
                frozen=json.dumps(sorted(self._frozen)),
                rng=get_rng_state(),
                # The fit-sequence stage (``fine_tune``'s "frozen", "unfrozen"...)
                # that wrote it, so that a resume knows which stage to continue.
                stage=self._stage or "",
            )
            if best_model is not None:
                # The best epoch's weights travel with last.pt: a resume restores
                # them even if best.pt was rewritten by a later stage since.
                content["best_model"] = best_model
        save_checkpoint(path, content)

    def _restore_for_resume(self, path: Path, ckpt: dict[str, Any], cfg: FitConfig) -> None:
        """Load the model, history and frozen layers of ``last.pt``; check the fit options."""
        check_model_config(path, ckpt["model_config"], self.model_config())
        saved = FitConfig.from_dict(json.loads(ckpt["fit_config"]))
        diffs = saved.differences(cfg, ignore=("epochs",))
        if saved.epochs != cfg.epochs and cfg.schedule is not None:
            diffs.append(f"epochs: {saved.epochs} vs {cfg.epochs} (the schedule depends on it)")
        if diffs:
            raise ConfigError(
                f"{path}: resume needs the options of the interrupted fit; differs in "
                + "; ".join(diffs)
            )
        self.model.load_state_dict(ckpt["model"])
        self._frozen = set(json.loads(ckpt["frozen"]))
        self._apply_frozen()
        self.history_ = json.loads(ckpt["history"])
