"""The Learner: a DataBunch, a model and a run folder, trained with Lightning Fabric.

Read :meth:`Learner.fit` top to bottom: it is the whole training loop.
Transfer learning lives here too: :meth:`Learner.freeze_encoder`,
:meth:`Learner.unfreeze_encoder`, :meth:`Learner.freeze_to`,
:meth:`Learner.param_groups` (discriminative learning rates) and
:meth:`Learner.fine_tune`. Outputs (predictions, metrics, embeddings,
encoder files) are in :class:`~transmri.training.outputs.LearnerOutputs`,
which this class extends.

Example:
    >>> learner = Learner(data, ConvAutoEncoder(), "runs/cae")  # doctest: +SKIP
    >>> learner.fit(20, 1e-3, schedule="onecycle")  # doctest: +SKIP
    >>> learner.save_encoder()  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import functools
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from transmri._allocator import keep_freed_memory
from transmri.errors import CheckpointError, ConfigError
from transmri.training.callbacks import Callback, FitState
from transmri.training.checkpoint import check_model_config, load_checkpoint, set_rng_state
from transmri.training.config import FitConfig, LearnerConfig, ModelType, Schedule
from transmri.training.fit_support import (
    build_scheduler,
    check_training_data,
    deterministic,
    improved,
    write_history,
)
from transmri.training.loop import train_epoch
from transmri.training.lr_finder import find_lr
from transmri.training.objectives import Objective
from transmri.training.plotting import LearnerPlots
from transmri.training.pretext import Pretext, PretextLoader, resolve_pretext
from transmri.training.tensorboard import default_loggers

__all__ = ["Learner"]


class Learner(LearnerPlots):
    """Train a model on a DataBunch, writing everything into the run folder ``path``.

    The constructor only stores settings (no I/O); the run folder is created
    on the first write. See ``docs/ARCHITECTURE.md`` for the folder layout.

    Args:
        data: a :class:`~transmri.data.DataBunch` (train/val/test splits).
        model: a transmri model (``forward`` returns a dict; has ``encoder``,
            ``config``, ``layer_groups()``).
        path: the run folder.
        model_type: ``"autoencoder"``, ``"vae"``, ``"mixed"`` or ``"classifier"``;
            picks the default objective and the metrics.
        loss_fn: your own objective ``(outputs, batch) -> {"loss": ..., parts}``;
            used as given (never replaced).
        opt_fn: optimiser class or factory called as ``opt_fn(param_groups, lr=, weight_decay=)``.
        batch_size: scans per step and per process.
        num_workers: DataLoader workers.
        accelerator: Fabric accelerator.
        devices: Fabric devices per node.
        strategy: Fabric strategy (``"ddp"`` for several processes).
        num_nodes: machines.
        precision: Fabric precision, e.g. ``"32-true"``, ``"bf16-mixed"``.
        seed: seeds the shuffling, dropout and weight resets.
        callbacks: :class:`~transmri.training.callbacks.Callback` objects.
        progress: show progress bars.
        channels_last: channels-last-3d weights (faster on CPU, see the benchmarks).
        overwrite: replace another run found in ``path`` instead of refusing.

    Attributes:
        history_: one dict per epoch trained so far (also in ``history.csv``).
        optimizer_: the optimiser of the last ``fit`` (its ``param_groups`` show
            which parameters were trained and at which rate).
        fitted_: whether ``fit`` or ``load`` produced usable weights.
    """

    def __init__(
        self,
        data: Any,
        model: nn.Module,
        path: str | os.PathLike[str],
        *,
        model_type: ModelType = "autoencoder",
        loss_fn: Callable[..., dict[str, torch.Tensor]] | None = None,
        opt_fn: Callable[..., torch.optim.Optimizer] = torch.optim.Adam,
        batch_size: int = 16,
        num_workers: int = 0,
        accelerator: str = "auto",
        devices: int | str = 1,
        strategy: str = "auto",
        num_nodes: int = 1,
        precision: str = "32-true",
        seed: int = 42,
        callbacks: Sequence[Callback] = (),
        progress: bool = True,
        channels_last: bool = True,
        overwrite: bool = False,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
        if loss_fn is not None and not callable(loss_fn):
            raise TypeError(
                f"loss_fn: expected a callable (outputs, batch) -> dict, got {loss_fn!r}"
            )
        if not callable(opt_fn):
            raise TypeError(f"opt_fn: expected an optimiser class or factory, got {opt_fn!r}")
        bad = [c for c in callbacks if not isinstance(c, Callback)]
        if bad:
            raise TypeError(f"callbacks: expected Callback instances, got {bad!r}")
        self.data = data
        self.model = model
        self.path = Path(path)
        self.config = LearnerConfig(
            model_type=model_type,
            batch_size=batch_size,
            num_workers=num_workers,
            accelerator=accelerator,
            devices=devices,
            strategy=strategy,
            num_nodes=num_nodes,
            precision=precision,
            seed=seed,
            progress=progress,
            channels_last=channels_last,
        )
        self.loss_fn = loss_fn
        self.opt_fn = opt_fn
        # TensorBoard is added when installed (history.csv is always written).
        self.callbacks = [*callbacks, *default_loggers(callbacks)]
        self.overwrite = bool(overwrite)
        self.history_: list[dict[str, Any]] = []
        self.fitted_ = False
        self._frozen: set[str] = set()
        self._fabric: Any = None
        self._run_ready = False
        self.pretrained_card_: dict[str, Any] | None = None
        self._pretext: Pretext | None = None
        self.optimizer_: torch.optim.Optimizer | None = None

    def __repr__(self) -> str:
        return (
            f"Learner({type(self.model).__name__}, model_type={self.config.model_type!r}, "
            f"path='{self.path}', epochs trained={len(self.history_)})"
        )

    # ------------------------------------------------------------ freezing
    def freeze_encoder(self) -> None:
        """Freeze the encoder: no gradients, left out of the optimiser, norm stats fixed."""
        self._frozen |= self._names_of([self._encoder()])
        self._apply_frozen()

    def unfreeze_encoder(self) -> None:
        """Make the encoder trainable again."""
        self._frozen -= self._names_of([self._encoder()])
        self._apply_frozen()

    def freeze_to(self, n: int) -> None:
        """Freeze the first ``n`` of ``model.layer_groups()`` and unfreeze the others."""
        groups = self._layer_groups()
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= len(groups):
            raise ConfigError(f"n: expected an integer in [0, {len(groups)}], got {n!r}")
        self._frozen = self._names_of(groups[:n])
        self._apply_frozen()

    def unfreeze(self) -> None:
        """Make every parameter trainable."""
        self._frozen = set()
        self._apply_frozen()

    def param_groups(self, lr: float, lr_mult: float = 1.0) -> list[dict[str, Any]]:
        """Optimiser parameter groups with discriminative learning rates.

        ``model.layer_groups()`` (earliest first, head last) get rates
        ``lr * lr_mult ** (n - 1 - i)``: the head learns at ``lr``, each
        earlier group ``lr_mult`` times slower. Frozen parameters are left out;
        trainable parameters outside every group join the head's group.

        Raises:
            ConfigError: every parameter is frozen.
        """
        groups = self._layer_groups()
        n = len(groups)
        seen: set[int] = set()
        out: list[dict[str, Any]] = []
        for i, group in enumerate(groups):
            params = [p for p in group.parameters() if p.requires_grad and id(p) not in seen]
            seen |= {id(p) for p in group.parameters()}
            out.append({"params": params, "lr": lr * lr_mult ** (n - 1 - i), "name": f"group{i}"})
        rest = [p for p in self.model.parameters() if p.requires_grad and id(p) not in seen]
        out[-1]["params"] = out[-1]["params"] + rest
        out = [g for g in out if g["params"]]
        if not out:
            raise ConfigError("model: every parameter is frozen; unfreeze some before training")
        return out

    # ------------------------------------------------------------- fitting
    def fit(
        self,
        epochs: int,
        lr: float = 1e-3,
        *,
        wd: float = 0.0,
        l1_reg: float = 0.0,
        l1_code: float = 0.0,
        alpha: float | None = None,
        beta: float | None = None,
        lr_mult: float = 1.0,
        schedule: Schedule | None = None,
        grad_clip: float | None = None,
        early_stop: int | None = None,
        monitor: str = "val_loss",
        mode: Literal["min", "max"] | None = None,
        show_every: int = 0,
        pretext: Pretext | str | None = None,
        resume: bool = False,
    ) -> Learner:
        """Train for ``epochs`` epochs, validating on the validation split after each.

        Args:
            epochs: epochs to train (in total, when resuming).
            lr: learning rate of the head (the last layer group).
            wd: weight decay passed to the optimiser.
            l1_reg: ``l1_reg * sum|w|`` over non-bias weights, added to the loss.
            l1_code: ``l1_code * mean|code|``, a sparse-code penalty.
            alpha: mixed models: weight of the reconstruction term (default 0.7).
            beta: VAEs: weight of the KL term (default 1.0).
            lr_mult: rate ratio between consecutive layer groups (1: same rate).
            schedule: ``None``, ``"onecycle"`` or ``"cosine"`` (per step).
            grad_clip: clip the gradient norm to this value.
            early_stop: stop after this many epochs without improvement.
            monitor: history column that picks the best epoch (``val_loss``, ``val_auc``...).
            mode: ``"min"`` or ``"max"``; by default ``min`` for losses, else ``max``.
            show_every: autoencoders: save a reconstruction figure every k epochs.
            pretext: corrupt the training input only: ``"denoise"``, ``"inpaint"``
                (or a :class:`~transmri.training.pretext.Denoising` /
                :class:`~transmri.training.pretext.Inpainting`); contrastive models
                train on two views (``"views"``, the default for them).
            resume: continue from ``checkpoints/last.pt`` of this run folder.

        Returns:
            The learner, with the best epoch's weights restored.
        """
        keep_freed_memory()  # no per-step page faults for the large activations
        views = resolve_pretext(pretext, model_type=self.config.model_type)
        cfg = FitConfig(
            epochs=epochs,
            lr=lr,
            wd=wd,
            l1_reg=l1_reg,
            l1_code=l1_code,
            alpha=alpha,
            beta=beta,
            lr_mult=lr_mult,
            schedule=schedule,
            grad_clip=grad_clip,
            early_stop=early_stop,
            monitor=monitor,
            mode=mode,
            show_every=show_every,
            pretext=None if views is None else views.to_dict(),
        )
        has_val = check_training_data(self.data, self.config.model_type, cfg)
        objective = self._objective(cfg)
        if views is not None:
            objective = views.wrap(objective)
        self._pretext = views
        fabric = self._get_fabric()
        self._prepare_run()
        ckpt_dir = self.path / "checkpoints"
        resumed = load_checkpoint(ckpt_dir / "last.pt") if resume else None
        if resumed is not None:
            self._restore_for_resume(ckpt_dir / "last.pt", resumed, cfg)
        else:
            self._seed_everything()
        offset = int(resumed["history_offset"]) if resumed is not None else len(self.history_)
        loader, sampler = self._loader("train", train=True)
        batches = loader if views is None else PretextLoader(loader, views)
        optimizer = self.opt_fn(
            self.param_groups(cfg.lr, cfg.lr_mult), lr=cfg.lr, weight_decay=cfg.wd
        )
        scheduler = build_scheduler(optimizer, cfg, steps_per_epoch=len(loader))
        module, fabric_optimizer = fabric.setup(self.model, optimizer)
        self.optimizer_ = optimizer
        state = FitState(epochs=cfg.epochs)
        if resumed is not None:
            optimizer.load_state_dict(resumed["optimizer"])
            if scheduler is not None:
                scheduler.load_state_dict(resumed["scheduler"])
            for key, value in json.loads(resumed["fit_state"]).items():
                setattr(state, key, value)
            set_rng_state(resumed["rng"])
        # The best epoch's weights so far (restored at the end); a resumed fit
        # takes them from last.pt (older checkpoints: from best.pt at the end).
        best_state: dict[str, torch.Tensor] | None = (
            None if resumed is None else resumed.get("best_model")
        )
        first = state.epoch + 1
        if cfg.early_stop is not None and state.bad_epochs >= cfg.early_stop:
            first = cfg.epochs + 1  # the interrupted fit had stopped early: nothing left
        self._objective_ = objective
        with deterministic():
            self._event("on_fit_start", state)
            for epoch in range(first, cfg.epochs + 1):
                state.epoch = epoch
                state.row = {"epoch": offset + epoch, "lr": optimizer.param_groups[-1]["lr"]}
                sampler.use_epoch(offset + epoch)
                self._event("on_epoch_start", state)
                module.train()
                self._freeze_norm_stats()
                state.row.update(
                    train_epoch(
                        fabric,
                        module,
                        self.model,
                        fabric_optimizer,
                        scheduler,
                        batches,
                        objective,
                        cfg,
                        on_batch_end=lambda loss: self._on_batch(state, loss),
                        description=f"epoch {offset + epoch}/{offset + cfg.epochs}",
                        progress=self.config.progress and fabric.is_global_zero,
                    )
                )
                if has_val:
                    state.row.update(self._validate(objective))
                self._event("on_validation_end", state)
                is_best = improved(state, cfg)
                if is_best:
                    best_state = {
                        k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()
                    }
                self.history_.append(dict(state.row))
                if fabric.is_global_zero:
                    write_history(self.path / "history.csv", self.history_)
                    if is_best:
                        self._save_checkpoint(ckpt_dir / "best.pt", cfg, state, offset, full=False)
                    self._save_checkpoint(
                        ckpt_dir / "last.pt",
                        cfg,
                        state,
                        offset,
                        full=True,
                        optimizer=optimizer,
                        scheduler=scheduler,
                        best_model=best_state,
                    )
                    if cfg.show_every and epoch % cfg.show_every == 0:
                        self._snapshot(offset + epoch)
                fabric.barrier()
                self._event("on_epoch_end", state)
                if cfg.early_stop is not None and state.bad_epochs >= cfg.early_stop:
                    state.stop = True
                if state.stop:
                    break
        if best_state is not None and state.best is not None:
            self.model.load_state_dict(best_state)
        elif (ckpt_dir / "best.pt").is_file() and state.best is not None:
            best = load_checkpoint(ckpt_dir / "best.pt")
            check_model_config(ckpt_dir / "best.pt", best["model_config"], self.model_config())
            self.model.load_state_dict(best["model"])
        self.fitted_ = True
        self._event("on_fit_end", state)
        return self

    def fine_tune(
        self,
        epochs_frozen: int,
        epochs_unfrozen: int,
        lr: float = 1e-3,
        *,
        lr_mult: float = 0.1,
        gradual: bool = False,
        resume: bool = False,
        **fit_options: Any,
    ) -> Learner:
        """Train the head on a frozen encoder, then every layer with discriminative rates.

        Each stage is one :meth:`fit`; its checkpoints record the stage's name
        (``"frozen"``, ``"gradual<k>"``, ``"unfrozen"``), so ``resume=True``
        skips the stages that finished, continues the interrupted one from
        ``checkpoints/last.pt`` and runs the rest: the same weights and history
        as an uninterrupted ``fine_tune``.

        Args:
            epochs_frozen: epochs of head-only training (0 to skip).
            epochs_unfrozen: epochs with the encoder trainable.
            lr: the head's learning rate; earlier groups get ``lr * lr_mult ** k``.
            lr_mult: ratio between the rates of consecutive layer groups.
            gradual: unfreeze one layer group per epoch from the top (one
                ``fit`` per stage) until all are trainable.
            resume: continue from ``checkpoints/last.pt`` of this run folder.
            **fit_options: further :meth:`fit` options (``wd``, ``schedule``,
                ``monitor``...); unknown names raise ``TypeError``.

        Raises:
            FileNotFoundError: ``resume`` without ``checkpoints/last.pt``.
            CheckpointError: ``last.pt`` was written by a stage this call does not have.
        """
        if "resume" in fit_options or "lr_mult" in fit_options:
            raise ConfigError("fine_tune: 'resume' and 'lr_mult' are not fit options here")
        stages = self._fine_tune_stages(epochs_frozen, epochs_unfrozen, lr_mult, gradual=gradual)
        first = self._resumed_stage([name for name, *_ in stages]) if resume else 0
        try:
            for i, (name, prepare, epochs, mult) in enumerate(stages[first:], start=first):
                prepare()
                self._stage = name
                self.fit(epochs, lr, lr_mult=mult, resume=resume and i == first, **fit_options)
        finally:
            self._stage = None
        self.unfreeze()
        return self

    def _fine_tune_stages(
        self, epochs_frozen: int, epochs_unfrozen: int, lr_mult: float, *, gradual: bool
    ) -> list[tuple[str, Callable[[], None], int, float]]:
        """``fine_tune``'s fits: (stage name, freezing to apply, epochs, lr_mult)."""
        stages: list[tuple[str, Callable[[], None], int, float]] = []
        if epochs_frozen:
            stages.append(("frozen", self.freeze_encoder, epochs_frozen, 1.0))
        done = 0
        if gradual:
            for frozen in range(len(self._layer_groups()) - 2, 0, -1):
                if done == epochs_unfrozen:
                    break
                stages.append(
                    (f"gradual{frozen}", functools.partial(self.freeze_to, frozen), 1, lr_mult)
                )
                done += 1
        if epochs_unfrozen - done > 0:
            stages.append(("unfrozen", self.unfreeze, epochs_unfrozen - done, lr_mult))
        return stages

    def _resumed_stage(self, names: Sequence[str]) -> int:
        """The index in ``names`` of the stage that wrote ``checkpoints/last.pt``."""
        last = self.path / "checkpoints" / "last.pt"
        stage = str(load_checkpoint(last).get("stage", ""))
        if stage not in names:
            raise CheckpointError(
                f"{last}: written by fit stage {stage or '(none: a plain fit)'!r}, which this "
                f"fine_tune does not have (its stages: {list(names)}); resume with the options "
                "of the interrupted fine_tune, or start a new run"
            )
        return list(names).index(stage)

    def lr_find(
        self, start: float = 1e-6, end: float = 1.0, steps: int = 50
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """Loss along an exponentially growing learning rate; the weights are restored afterwards.

        Returns:
            ``(lrs, smoothed losses, suggestion)``: the suggestion is the rate
            where the loss fell fastest.
        """
        fabric = self._get_fabric()
        saved = copy.deepcopy(self.model.state_dict())
        rng = torch.get_rng_state()
        loader, sampler = self._loader("train", train=True)
        sampler.use_epoch(0)
        optimizer = self.opt_fn(self.param_groups(start), lr=start)
        module, fabric_optimizer = fabric.setup(self.model, optimizer)
        try:
            objective = self._objective_ or self._objective(FitConfig(epochs=1))
            return find_lr(
                fabric,
                module,
                fabric_optimizer,
                loader,
                objective,
                start=start,
                end=end,
                steps=steps,
            )
        finally:
            self.model.load_state_dict(saved)
            torch.set_rng_state(rng)

    # ------------------------------------------------ objective, validation
    def _objective(self, cfg: FitConfig) -> Objective:
        """Contrastive models default to NT-Xent; the other types as in ``LearnerCore``."""
        if self.config.model_type == "contrastive" and self.loss_fn is None:
            given = [n for n in ("alpha", "beta") if getattr(cfg, n) is not None]
            if given:
                raise ConfigError(f"{', '.join(given)}: do not apply to model_type='contrastive'")
            from transmri.training.contrastive import ContrastiveLoss

            return ContrastiveLoss()
        return super()._objective(cfg)

    def _validate(self, objective: Objective) -> dict[str, float]:
        """Contrastive models: the loss on two seeded views of every validation scan."""
        from transmri.training.contrastive import TwoViews, validate_views

        if isinstance(self._pretext, TwoViews):
            loader, _ = self._loader("val", train=False)
            fabric = self._get_fabric()
            return validate_views(
                fabric, self.model, loader, self._pretext, objective, seed=self.config.seed
            )
        return super()._validate(objective)

    # ------------------------------------------------------------- transfer
    @classmethod
    def from_pretrained(
        cls,
        data: Any,
        encoder_path: str | os.PathLike[str],
        path: str | os.PathLike[str],
        *,
        head: str = "gap",
        dropout: float = 0.0,
        check_leakage: bool = True,
        **learner_options: Any,
    ) -> Learner:
        """A classifier Learner on an encoder saved by :meth:`save_encoder`.

        Args:
            data: the target DataBunch (labelled).
            encoder_path: the encoder's card, weights file or run folder.
            path: the new run folder.
            head: ``"gap"``, ``"flatten"`` or ``"regional"``.
            dropout: dropout before the head's linear layer.
            check_leakage: refuse if a target test subject was in the pretraining set.
            **learner_options: :class:`Learner` options (unknown names raise ``TypeError``).

        Raises:
            ConfigError: the target data's input shape or preprocessing differs
                from the encoder's (every differing field is named).
            DataLeakageError: target test subjects the encoder was trained on.
            IntegrityError: the weights file does not match its card.
        """
        from transmri.training.factories import create_classifier_from_encoder

        return create_classifier_from_encoder(
            data,
            encoder_path,
            path,
            head=head,
            dropout=dropout,
            check_leakage=check_leakage,
            **learner_options,
        )
