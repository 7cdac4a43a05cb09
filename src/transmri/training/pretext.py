"""Pretraining tasks: input corruptions (denoising, in-painting) and source-label heads.

A *pretext* changes what the model sees during the **training step only**:

- :class:`Denoising`: Gaussian noise is added to the input, the target stays
  the clean volume;
- :class:`Inpainting`: random 3D cubes of the input are zeroed (MAE-style
  grid masking), the target stays the clean volume; the loss may weigh the
  hidden voxels more;
- :class:`~transmri.training.contrastive.TwoViews`: two augmented views of
  every scan, for a contrastive objective.

It is a fit option, ``learner.fit(20, pretext="denoise")`` (or an instance
with your settings). The Learner wraps the *training* loader with
:class:`PretextLoader` (batches get the corrupted ``"image"`` and the
``"clean"`` original) and the objective with :meth:`Pretext.wrap` (which
puts the clean volume back as the reconstruction target). Validation,
evaluation, prediction and encoding read unwrapped loaders, so they always
see clean input.

Multi-task pretraining on whatever source labels exist is
:class:`SourceTasksLoss` with :func:`source_task_model`: heads for the main
label and every DataBunch target, regression targets standardised with the
training split's mean and std, and missing labels (``nan`` / ``-1``) masked
out of the loss.

Example:
    >>> import torch
    >>> batch = {"image": torch.rand(2, 1, 16, 16, 16)}
    >>> out = Inpainting(cube_size=4, mask_ratio=0.5).corrupt(batch)
    >>> sorted(out)
    ['clean', 'image', 'pretext_mask']
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from transmri._validation import check_fraction, check_positive_float, check_positive_int
from transmri.errors import ConfigError
from transmri.training.objectives import Objective, _masked_ce, extra_head_losses

__all__ = [
    "PRETEXTS",
    "Denoising",
    "Inpainting",
    "Pretext",
    "PretextLoader",
    "PretextLoss",
    "SourceTasksLoss",
    "pretext_from_dict",
    "resolve_pretext",
    "source_task_model",
]

PRETEXTS: tuple[str, ...] = ("denoise", "inpaint", "views")
"""Names accepted by :func:`resolve_pretext` (``"views"``: contrastive two views)."""


@runtime_checkable
class Pretext(Protocol):
    """What the Learner needs from a pretext task."""

    def corrupt(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The training batch the model sees (called in the training step only)."""
        ...

    def wrap(self, objective: Objective) -> Objective:
        """The objective to minimise, given the model type's objective."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict with ``"kind"`` (saved in the fit config)."""
        ...


def _image(batch: Mapping[str, Tensor], where: str) -> Tensor:
    image = batch.get("image")
    if not isinstance(image, Tensor) or image.ndim != 5:
        shape = None if not isinstance(image, Tensor) else tuple(image.shape)
        raise ValueError(f"{where}: expected batch['image'] of shape (N, C, D, H, W), got {shape}")
    return image


@dataclass(frozen=True)
class Denoising:
    """Add Gaussian noise ``N(0, std^2)`` to the input; reconstruct the clean volume.

    Args:
        std: noise standard deviation, in intensity units (inputs are usually in [0, 1]).
        clip: clamp the noisy input to ``(low, high)``, e.g. ``(0.0, 1.0)``; ``None``: no clamp.
    """

    std: float = 0.1
    clip: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        check_positive_float("std", self.std)
        if self.clip is not None:
            low, high = (float(v) for v in self.clip)
            if not low < high:
                raise ConfigError(f"clip: expected (low, high) with low < high, got {self.clip!r}")
            object.__setattr__(self, "clip", (low, high))

    def corrupt(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """``image + noise`` as ``"image"``; the original as ``"clean"``."""
        clean = _image(batch, "Denoising")
        noisy = clean + self.std * torch.randn_like(clean)
        if self.clip is not None:
            noisy = noisy.clamp(*self.clip)
        return {**batch, "image": noisy, "clean": clean}

    def wrap(self, objective: Objective) -> Objective:
        """:class:`PretextLoss` around ``objective`` (the clean volume is the target)."""
        return PretextLoss(objective)

    def to_dict(self) -> dict[str, Any]:
        """``{"kind": "denoise", "std": ..., "clip": ...}``."""
        out = asdict(self)
        out["clip"] = None if self.clip is None else list(self.clip)
        return {"kind": "denoise", **out}


@dataclass(frozen=True)
class Inpainting:
    """Zero random cubes of the input; reconstruct the whole clean volume.

    The volume is tiled by a grid of ``cube_size``-voxel cubes (shifted at
    random each batch) and ``round(mask_ratio * cubes)`` cubes of each scan
    are filled with ``fill``, so about ``mask_ratio`` of the voxels are hidden.

    Args:
        cube_size: edge of a masked cube, in voxels.
        mask_ratio: fraction of the cubes hidden, in (0, 1).
        masked_weight: extra weight of the MSE on the hidden voxels (0: the
            plain MSE over all voxels; 1: hidden voxels count twice, etc.).
        fill: value written into the hidden cubes.
    """

    cube_size: int = 8
    mask_ratio: float = 0.3
    masked_weight: float = 1.0
    fill: float = 0.0

    def __post_init__(self) -> None:
        check_positive_int("cube_size", self.cube_size)
        check_fraction("mask_ratio", self.mask_ratio)
        check_positive_float("masked_weight", self.masked_weight, allow_zero=True)
        if not np.isfinite(self.fill):
            raise ConfigError(f"fill: expected a finite number, got {self.fill!r}")

    def mask(self, image: Tensor) -> Tensor:
        """A ``(N, 1, D, H, W)`` float mask, 1 on hidden voxels."""
        n, spatial = image.shape[0], tuple(image.shape[2:])
        c = self.cube_size
        grid = tuple(-(-s // c) + 1 for s in spatial)  # one spare cube per axis for the shift
        cells = int(np.prod(grid))
        hidden = max(1, round(self.mask_ratio * cells))
        order = torch.rand(n, cells, device=image.device).argsort(dim=1)
        coarse = torch.zeros(n, cells, device=image.device)
        coarse.scatter_(1, order[:, :hidden], 1.0)
        fine = coarse.reshape(n, 1, *grid)
        for axis in range(3):
            fine = fine.repeat_interleave(c, dim=2 + axis)
        shift = [int(v) for v in torch.randint(0, c, (3,))]
        return fine[
            :,
            :,
            shift[0] : shift[0] + spatial[0],
            shift[1] : shift[1] + spatial[1],
            shift[2] : shift[2] + spatial[2],
        ].contiguous()

    def corrupt(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Masked ``"image"``, the original as ``"clean"``, the mask as ``"pretext_mask"``."""
        clean = _image(batch, "Inpainting")
        mask = self.mask(clean).to(clean.dtype)
        masked = clean * (1 - mask) + self.fill * mask
        return {**batch, "image": masked, "clean": clean, "pretext_mask": mask}

    def wrap(self, objective: Objective) -> Objective:
        """:class:`PretextLoss` with this ``masked_weight``."""
        return PretextLoss(objective, masked_weight=self.masked_weight)

    def to_dict(self) -> dict[str, Any]:
        """``{"kind": "inpaint", ...}``."""
        return {"kind": "inpaint", **asdict(self)}


class PretextLoss:
    """Evaluate ``base`` against the clean volume of a corrupted batch.

    On a training batch (with ``"clean"``) the base objective is called with
    ``"image"`` set back to the clean volume, and ``masked_weight`` x the MSE
    over the hidden voxels (``"pretext_mask"``) is added as part
    ``masked_mse``. On a clean batch (validation) it is ``base`` unchanged.

    Args:
        base: the objective of the model type (e.g. ``ReconstructionLoss()``).
        masked_weight: weight of the extra hidden-voxel term.
    """

    def __init__(self, base: Objective, *, masked_weight: float = 0.0) -> None:
        if not callable(base):
            raise TypeError(f"base: expected an objective (outputs, batch) -> dict, got {base!r}")
        self.base = base
        self.masked_weight = check_positive_float("masked_weight", masked_weight, allow_zero=True)

    def __call__(
        self, outputs: Mapping[str, Tensor], batch: Mapping[str, Tensor]
    ) -> dict[str, Tensor]:
        clean = batch.get("clean")
        if clean is None:
            return dict(self.base(outputs, batch))
        parts = dict(self.base(outputs, {**batch, "image": clean}))
        mask = batch.get("pretext_mask")
        if self.masked_weight > 0 and mask is not None and "reconstruction" in outputs:
            recon = outputs["reconstruction"]
            err = (recon - clean.to(recon.dtype)).pow(2) * mask.to(recon.dtype)
            parts["masked_mse"] = err.sum() / mask.sum().clamp_min(1.0)
            parts["loss"] = parts["loss"] + self.masked_weight * parts["masked_mse"]
        return parts

    def __repr__(self) -> str:
        return f"PretextLoss({self.base!r}, masked_weight={self.masked_weight})"


class PretextLoader:
    """A training loader whose batches go through ``pretext.corrupt`` (on the device).

    Args:
        loader: the (Fabric) training loader; ``len`` and iteration are forwarded.
        pretext: the corruption.
    """

    def __init__(self, loader: Iterable[dict[str, Tensor]], pretext: Pretext) -> None:
        self.loader = loader
        self.pretext = pretext

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        for batch in self.loader:
            yield self.pretext.corrupt(batch)


def pretext_from_dict(data: Mapping[str, Any]) -> Pretext:
    """Rebuild a pretext from its :meth:`Pretext.to_dict`.

    Raises:
        ConfigError: an unknown ``kind`` or option.
    """
    from transmri.training.contrastive import TwoViews

    if not isinstance(data, Mapping) or "kind" not in data:
        raise ConfigError(f"pretext: expected a mapping with a 'kind' key, got {data!r}")
    options = {k: v for k, v in data.items() if k != "kind"}
    kinds: dict[str, type] = {"denoise": Denoising, "inpaint": Inpainting, "views": TwoViews}
    kind = data["kind"]
    if kind not in kinds:
        raise ConfigError(f"pretext kind: expected one of {PRETEXTS}, got {kind!r}")
    for key in ("clip", "crop_scale"):
        if isinstance(options.get(key), list):
            options[key] = tuple(options[key])
    try:
        pretext: Pretext = kinds[kind](**options)
    except TypeError as exc:
        raise ConfigError(f"pretext {kind!r}: {exc}") from None
    return pretext


def resolve_pretext(pretext: Pretext | str | None, *, model_type: str) -> Pretext | None:
    """The pretext of one fit: an instance, a name in :data:`PRETEXTS`, or ``None``.

    A contrastive model needs two views: ``None`` gives the default
    :class:`~transmri.training.contrastive.TwoViews`, and any other pretext is
    refused. Denoising and in-painting need a model with a reconstruction
    (``model_type`` ``"autoencoder"``, ``"vae"`` or ``"mixed"``).

    Raises:
        ConfigError: an unknown name, or a pretext that cannot apply to ``model_type``.
    """
    from transmri.training.contrastive import TwoViews

    if isinstance(pretext, str):
        if pretext not in PRETEXTS:
            raise ConfigError(f"pretext: expected one of {PRETEXTS} or None, got {pretext!r}")
        pretext = pretext_from_dict({"kind": pretext})
    if pretext is not None and not isinstance(pretext, Pretext):
        raise ConfigError(
            f"pretext: expected a name {PRETEXTS}, a Denoising/Inpainting/TwoViews or None, "
            f"got {type(pretext).__name__}"
        )
    if model_type == "contrastive":
        if pretext is None:
            return TwoViews()
        if not isinstance(pretext, TwoViews):
            raise ConfigError(
                f"pretext: model_type='contrastive' trains on two views (TwoViews), "
                f"got {pretext.to_dict()['kind']!r}"
            )
    elif isinstance(pretext, TwoViews):
        raise ConfigError(
            f"pretext: two views ('views') need model_type='contrastive', got {model_type!r}"
        )
    elif pretext is not None and model_type == "classifier":
        raise ConfigError(
            f"pretext: {pretext.to_dict()['kind']!r} reconstructs the input; model_type "
            f"'classifier' has no reconstruction"
        )
    return pretext


# ------------------------------------------------------------ source labels
class SourceTasksLoss:
    """Reconstruction + every available source label, each missing value masked out.

    ``loss = reconstruction_weight * MSE + weights["label"] * CE(logits, label)
    + sum_t weights[t] * loss_t`` where ``loss_t`` is the MSE of the
    standardised target ``(y - mean) / std`` for a regression head
    ``pred_<t>`` and the CE for a classification head. Scans with a missing
    target (``nan``, or label ``-1``) add nothing; a batch with none gives 0
    for that part. Regression heads therefore predict standardised values.

    Args:
        scales: ``{target: (mean, std)}`` of the regression targets
            (see :meth:`from_data`); a target without one is used raw.
        weights: per-task weights (``"label"`` for the main class, else the
            target name); missing names weigh 1.
        reconstruction_weight: weight of the reconstruction MSE (0 for none).
        class_weights: per-class weights of the main cross-entropy.

    Example:
        >>> import torch
        >>> loss = SourceTasksLoss(scales={"age": (50.0, 10.0)})
        >>> out = {"reconstruction": torch.zeros(2, 1, 4, 4, 4), "pred_age": torch.zeros(2)}
        >>> batch = {"image": torch.zeros(2, 1, 4, 4, 4), "age": torch.tensor([60.0, float("nan")])}
        >>> round(float(loss(out, batch)["age_mse"]), 3)
        1.0
    """

    def __init__(
        self,
        *,
        scales: Mapping[str, tuple[float, float]] | None = None,
        weights: Mapping[str, float] | None = None,
        reconstruction_weight: float = 1.0,
        class_weights: Tensor | None = None,
    ) -> None:
        self.scales: dict[str, tuple[float, float]] = {}
        for name, pair in (scales or {}).items():
            mean, std = float(pair[0]), check_positive_float(f"scales[{name!r}] std", pair[1])
            if not np.isfinite(mean):
                raise ConfigError(f"scales[{name!r}]: expected a finite mean, got {pair[0]!r}")
            self.scales[name] = (mean, std)
        self.weights = {
            k: check_positive_float(f"weights[{k!r}]", v, allow_zero=True)
            for k, v in (weights or {}).items()
        }
        self.reconstruction_weight = check_positive_float(
            "reconstruction_weight", reconstruction_weight, allow_zero=True
        )
        self.class_weights = (
            None if class_weights is None else torch.as_tensor(class_weights).float()
        )

    @classmethod
    def from_data(
        cls,
        data: Any,
        *,
        weights: Mapping[str, float] | None = None,
        reconstruction_weight: float = 1.0,
    ) -> SourceTasksLoss:
        """Scales of ``data``'s numeric targets from its training split (never val/test).

        Raises:
            ConfigError: a numeric target has no value, or a single value, in training.
        """
        categorical = set(getattr(data, "target_classes", {}) or {})
        scales: dict[str, tuple[float, float]] = {}
        for name in data.targets:
            if name in categorical:
                continue
            values = data.train_ds.target_values(name)
            values = values[np.isfinite(values)]
            if values.size < 2 or float(values.std()) == 0:
                raise ConfigError(
                    f"target {name!r}: needs at least two distinct values in the training split "
                    f"to standardise, found {values.size} value(s)"
                )
            scales[name] = (float(values.mean()), float(values.std()))
        class_weights = data.class_weights() if data.num_classes >= 2 else None
        return cls(
            scales=scales,
            weights=weights,
            reconstruction_weight=reconstruction_weight,
            class_weights=class_weights,
        )

    def __call__(
        self, outputs: Mapping[str, Tensor], batch: Mapping[str, Tensor]
    ) -> dict[str, Tensor]:
        parts: dict[str, Tensor] = {}
        first = next(iter(outputs.values()))
        loss = first.new_zeros(()).float()
        if "reconstruction" in outputs:
            recon = outputs["reconstruction"]
            parts["mse"] = F.mse_loss(recon, batch["image"].to(recon.dtype))
            loss = loss + self.reconstruction_weight * parts["mse"]
        if "logits" in outputs:
            logits = outputs["logits"]
            parts["ce"] = _masked_ce(logits, batch["label"].to(logits.device), self.class_weights)
            loss = loss + self.weights.get("label", 1.0) * parts["ce"]
        scaled = dict(batch)
        for name, (mean, std) in self.scales.items():
            if name in batch:
                scaled[name] = (batch[name].float() - mean) / std
        for key, value in extra_head_losses(outputs, scaled).items():
            parts[key] = value
            loss = loss + self.weights.get(key.rsplit("_", 1)[0], 1.0) * value
        return {"loss": loss, **parts}

    def __repr__(self) -> str:
        return (
            f"SourceTasksLoss(scales={self.scales}, weights={self.weights}, "
            f"reconstruction_weight={self.reconstruction_weight})"
        )


def source_task_model(
    autoencoder: nn.Module,
    data: Any,
    *,
    use_label: bool = True,
    head: str = "gap",
    dropout: float = 0.0,
) -> nn.Module:
    """A :class:`~transmri.models.MultiTaskAutoEncoder` with a head per available source label.

    The main label gets a head when ``data`` is labelled (and ``use_label``);
    each of ``data.targets`` gets a regression head (numeric) or a
    classification head (categorical). Train it with
    ``Learner(data, model, path, model_type="autoencoder",
    loss_fn=SourceTasksLoss.from_data(data))``: the ``"autoencoder"`` type
    accepts partly labelled or unlabelled data.

    Raises:
        ConfigError: no head would be made (no label, no targets).
    """
    from transmri.models import MultiTaskAutoEncoder

    categorical = dict(getattr(data, "target_classes", {}) or {})
    num_classes = data.num_classes if use_label and data.num_classes >= 2 else 0
    model: nn.Module = MultiTaskAutoEncoder(
        autoencoder,
        num_classes=num_classes,
        regression_targets=tuple(t for t in data.targets if t not in categorical),
        classification_targets={t: len(categorical[t]) for t in data.targets if t in categorical},
        head=head,
        dropout=dropout,
        input_shape=data.input_shape,
    )
    return model
