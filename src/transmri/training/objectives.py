"""Training objectives: what the Learner minimises, with named parts for logging.

An objective is any callable ``objective(outputs, batch) -> dict`` where
``outputs`` is the model's output dict (``"reconstruction"``, ``"logits"``,
``"mu"``, ``"logvar"``, ``"pred_<target>"``...) and ``batch`` the DataLoader's
dict (``"image"``, ``"label"``, ``<target>``...). The returned dict holds
``"loss"`` (a scalar tensor to minimise) and any named parts (``"mse"``,
``"ce"``, ``"kl"``...) that end up as columns of ``history.csv``.

Penalties on the weights (``l1_reg``) and on the code (``l1_code``) do not live
here: the Learner adds them on top of any objective, including a user's own.

Example:
    >>> import torch
    >>> objective = MultiTaskLoss(alpha=0.7)
    >>> x = torch.rand(2, 1, 4, 4, 4)
    >>> out = {"reconstruction": x, "logits": torch.tensor([[3.0, -3.0], [-3.0, 3.0]])}
    >>> parts = objective(out, {"image": x, "label": torch.tensor([0, 1])})
    >>> sorted(parts)
    ['ce', 'loss', 'mse']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from transmri._validation import check_fraction, check_positive_float
from transmri.errors import ConfigError

__all__ = [
    "ClassificationLoss",
    "MultiTaskLoss",
    "Objective",
    "ReconstructionLoss",
    "VAELoss",
    "code_l1",
    "extra_head_losses",
    "required_outputs",
    "weight_l1",
]

_REQUIRED = {
    "autoencoder": ("reconstruction",),
    "vae": ("reconstruction", "mu", "logvar"),
    "classifier": ("logits",),
    "mixed": ("reconstruction", "logits"),
}


@runtime_checkable
class Objective(Protocol):
    """What the Learner calls once per batch."""

    def __call__(
        self, outputs: Mapping[str, Tensor], batch: Mapping[str, Tensor]
    ) -> dict[str, Tensor]:
        """Return ``{"loss": scalar, <part>: scalar...}``."""
        ...


def required_outputs(model_type: str) -> tuple[str, ...]:
    """The output keys the default objective of ``model_type`` reads."""
    return _REQUIRED[model_type]


def _get(mapping: Mapping[str, Tensor], key: str, where: str) -> Tensor:
    if key not in mapping:
        raise ConfigError(f"{where}: expected key {key!r}, found keys {sorted(mapping)}")
    return mapping[key]


def _masked_ce(logits: Tensor, target: Tensor, weight: Tensor | None) -> Tensor:
    """Cross-entropy over the labelled rows (target >= 0); 0 when none is labelled.

    With class weights this is the weighted mean ``sum(w_y * ce) / sum(w_y)``,
    as in :func:`torch.nn.functional.cross_entropy`.
    """
    keep = target >= 0
    if not bool(keep.any()):
        return logits.sum() * 0.0
    w = None if weight is None else weight.to(device=logits.device, dtype=logits.dtype)
    return F.cross_entropy(logits[keep], target[keep].long(), weight=w)


def extra_head_losses(
    outputs: Mapping[str, Tensor], batch: Mapping[str, Tensor]
) -> dict[str, Tensor]:
    """Losses of the extra heads ``pred_<target>``, one part per target.

    A head with one output per scan is a regression: MSE over the scans whose
    target is not NaN. A head with ``K > 1`` outputs is a classification: CE
    over the scans whose target is not NaN and not ``-1``. Scans without the
    target contribute nothing; a batch where nobody has it gives 0.
    """
    parts: dict[str, Tensor] = {}
    for key, pred in outputs.items():
        if not key.startswith("pred_"):
            continue
        name = key[len("pred_") :]
        target = _get(batch, name, f"extra head {key!r}").to(pred.device)
        known = ~torch.isnan(target.float())
        if pred.ndim == 2 and pred.shape[1] > 1:
            cls = torch.where(known, target.float(), torch.full_like(target.float(), -1.0))
            parts[f"{name}_ce"] = _masked_ce(pred, cls.long(), None)
        else:
            pred = pred.reshape(pred.shape[0])
            if bool(known.any()):
                parts[f"{name}_mse"] = F.mse_loss(pred[known], target[known].to(pred.dtype))
            else:
                parts[f"{name}_mse"] = pred.sum() * 0.0
    return parts


class ReconstructionLoss:
    """Mean squared error between ``outputs["reconstruction"]`` and ``batch["image"]``."""

    def __call__(
        self, outputs: Mapping[str, Tensor], batch: Mapping[str, Tensor]
    ) -> dict[str, Tensor]:
        recon = _get(outputs, "reconstruction", "model output")
        mse = F.mse_loss(recon, _get(batch, "image", "batch").to(recon.dtype))
        extras = extra_head_losses(outputs, batch)
        return {"loss": mse + sum(extras.values(), torch.zeros_like(mse)), "mse": mse, **extras}

    def __repr__(self) -> str:
        return "ReconstructionLoss()"


class ClassificationLoss:
    """Cross-entropy on ``outputs["logits"]``, optionally class-weighted; ``-1`` labels ignored.

    Args:
        class_weights: one weight per class (e.g. ``DataBunch.class_weights()``,
            inversely proportional to frequency), or ``None``.
    """

    def __init__(self, *, class_weights: Tensor | None = None) -> None:
        self.class_weights = (
            None if class_weights is None else torch.as_tensor(class_weights).float()
        )

    def __call__(
        self, outputs: Mapping[str, Tensor], batch: Mapping[str, Tensor]
    ) -> dict[str, Tensor]:
        logits = _get(outputs, "logits", "model output")
        ce = _masked_ce(logits, _get(batch, "label", "batch").to(logits.device), self.class_weights)
        extras = extra_head_losses(outputs, batch)
        return {"loss": ce + sum(extras.values(), torch.zeros_like(ce)), "ce": ce, **extras}

    def __repr__(self) -> str:
        return f"ClassificationLoss(class_weights={self.class_weights})"


class MultiTaskLoss:
    """``alpha * MSE + (1 - alpha) * (CE + extra heads)``: the paper's mixed objective.

    Args:
        alpha: weight of the reconstruction term, in [0, 1] (the paper used 0.7).
        class_weights: per-class weights of the cross-entropy, or ``None``.
    """

    def __init__(self, *, alpha: float = 0.7, class_weights: Tensor | None = None) -> None:
        self.alpha = check_fraction("alpha", alpha, inclusive=True)
        self.class_weights = (
            None if class_weights is None else torch.as_tensor(class_weights).float()
        )

    def __call__(
        self, outputs: Mapping[str, Tensor], batch: Mapping[str, Tensor]
    ) -> dict[str, Tensor]:
        recon = _get(outputs, "reconstruction", "model output")
        logits = _get(outputs, "logits", "model output")
        mse = F.mse_loss(recon, _get(batch, "image", "batch").to(recon.dtype))
        ce = _masked_ce(logits, _get(batch, "label", "batch").to(logits.device), self.class_weights)
        extras = extra_head_losses(outputs, batch)
        supervised = ce + sum(extras.values(), torch.zeros_like(ce))
        loss = self.alpha * mse + (1.0 - self.alpha) * supervised
        return {"loss": loss, "mse": mse, "ce": ce, **extras}

    def __repr__(self) -> str:
        return f"MultiTaskLoss(alpha={self.alpha}, class_weights={self.class_weights})"


class VAELoss:
    """Reconstruction MSE + ``beta`` x KL divergence to a unit Gaussian.

    The KL term is averaged over the batch and the latent elements, like the
    MSE is over voxels, so ``beta`` keeps the same meaning for any input size.

    Args:
        beta: weight of the KL term (``beta = 1``: the classic VAE).
    """

    def __init__(self, *, beta: float = 1.0) -> None:
        self.beta = check_positive_float("beta", beta, allow_zero=True)

    def __call__(
        self, outputs: Mapping[str, Tensor], batch: Mapping[str, Tensor]
    ) -> dict[str, Tensor]:
        recon = _get(outputs, "reconstruction", "model output")
        mu = _get(outputs, "mu", "model output")
        logvar = _get(outputs, "logvar", "model output")
        mse = F.mse_loss(recon, _get(batch, "image", "batch").to(recon.dtype))
        kl = -0.5 * torch.mean(1 + logvar - mu.pow(2) - logvar.exp())
        extras = extra_head_losses(outputs, batch)
        loss = mse + self.beta * kl + sum(extras.values(), torch.zeros_like(mse))
        return {"loss": loss, "mse": mse, "kl": kl, **extras}

    def __repr__(self) -> str:
        return f"VAELoss(beta={self.beta})"


def weight_l1(model: nn.Module | Iterable[tuple[str, nn.Parameter]]) -> Tensor:
    """``sum |w|`` over every trainable parameter that is not a bias (the paper's L1).

    Args:
        model: a module, or ``named_parameters()`` pairs.
    """
    named = model.named_parameters() if isinstance(model, nn.Module) else model
    terms = [p.abs().sum() for n, p in named if p.requires_grad and not n.endswith("bias")]
    if not terms:
        return torch.zeros(())
    return torch.stack(terms).sum()


def code_l1(outputs: Mapping[str, Tensor]) -> Tensor:
    """Mean ``|code|`` of ``outputs["code"]`` (``"mu"`` for a VAE): a sparse-code penalty."""
    code = outputs.get("code", outputs.get("mu"))
    if code is None:
        raise ConfigError(
            f"l1_code: the model output has no 'code' (or 'mu'); found keys {sorted(outputs)}"
        )
    return code.abs().mean()
