"""Contrastive pretraining: two augmented views per scan, SimCLR and y-aware InfoNCE.

With ``model_type="contrastive"`` (a
:class:`~transmri.models.ContrastiveModel`) the Learner trains on two views
of every scan, made on the device by :class:`TwoViews` (random crop-and-zoom,
left-right flip, intensity scale/shift, noise; optionally a
:func:`~transmri.data.build_augmentation` preset first), and minimises
:class:`ContrastiveLoss`:

- ``target=None``: SimCLR's NT-Xent (Chen et al. 2020): each view's positive
  is the other view of the same scan, the other ``2N - 2`` views are negatives;
- ``target="age"``: the y-aware InfoNCE of Dufumier et al. (MICCAI 2021):
  every other view ``j`` is a positive with weight
  ``exp(-(y_i - y_j)^2 / (2 sigma^2))`` (normalised over ``j``), so scans of
  similar age are pulled together; views of scans with a missing target fall
  back to the SimCLR positive.

Validation uses two views too, drawn with a fixed seed (:func:`validate_views`),
so ``val_loss`` is comparable between epochs and early stopping works.

Example:
    >>> import torch
    >>> z = torch.randn(8, 16)
    >>> pair = torch.arange(4).repeat(2)
    >>> loss = ContrastiveLoss(temperature=0.5)({"projection": z}, {"pair": pair})
    >>> bool(loss["loss"] > 0)
    True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from transmri._validation import check_choice, check_fraction, check_positive_float
from transmri.errors import ConfigError
from transmri.training.objectives import Objective

__all__ = ["ContrastiveLoss", "TwoViews", "info_nce", "validate_views"]


@dataclass(frozen=True)
class TwoViews:
    """Make two random views of every scan of a training batch.

    Each view is a random crop (side fraction drawn in ``crop_scale`` per
    axis, anywhere in the volume) zoomed back to the full size, flipped
    left-right (first spatial axis, RAS) with ``flip_prob``, multiplied by a
    factor in ``[1 - intensity, 1 + intensity]``, shifted by a value in
    ``[-intensity / 2, intensity / 2]`` and given Gaussian noise of
    ``noise_std``. All of it runs batched on the batch's device.

    Args:
        crop_scale: ``(low, high)`` side fraction of the crop, ``0 < low <= high <= 1``.
        flip_prob: probability of a left-right flip.
        intensity: range of the random intensity scale and shift.
        noise_std: standard deviation of the added noise.
        augment: a :func:`~transmri.data.build_augmentation` preset name
            (``"light"``, ``"standard"``) applied per volume first (CPU), or ``None``.
    """

    crop_scale: tuple[float, float] = (0.75, 1.0)
    flip_prob: float = 0.5
    intensity: float = 0.1
    noise_std: float = 0.02
    augment: str | None = None

    def __post_init__(self) -> None:
        low, high = (float(v) for v in self.crop_scale)
        if not 0 < low <= high <= 1:
            raise ConfigError(
                "crop_scale: expected (low, high) with 0 < low <= high <= 1, "
                f"got {self.crop_scale!r}"
            )
        object.__setattr__(self, "crop_scale", (low, high))
        check_fraction("flip_prob", self.flip_prob, inclusive=True)
        check_fraction("intensity", self.intensity, inclusive=True)
        check_positive_float("noise_std", self.noise_std, allow_zero=True)
        if self.augment is not None:
            from transmri.data.augment import AUGMENT_PRESETS

            check_choice("augment", self.augment, tuple(AUGMENT_PRESETS))

    def view(self, images: Tensor) -> Tensor:
        """One random view of each volume of ``images`` ``(N, C, D, H, W)``."""
        if images.ndim != 5:
            raise ValueError(
                f"TwoViews: expected images of shape (N, C, D, H, W), got {tuple(images.shape)}"
            )
        x = images.float()
        if self.augment is not None:
            x = self._preset(x)
        n, device = x.shape[0], x.device
        low, high = self.crop_scale
        scale = low + (high - low) * torch.rand(n, 3, device=device)
        shift = (1 - scale) * (2 * torch.rand(n, 3, device=device) - 1)
        flip = torch.rand(n, device=device) < self.flip_prob
        # grid_sample's coordinates are (x, y, z) = (W, H, D); D is left-right in RAS.
        scale = scale.flip(1)
        shift = shift.flip(1)
        scale[:, 2] = torch.where(flip, -scale[:, 2], scale[:, 2])
        theta = torch.zeros(n, 3, 4, device=device)
        theta[:, [0, 1, 2], [0, 1, 2]] = scale
        theta[:, :, 3] = shift
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        gain = 1 + self.intensity * (2 * torch.rand(n, 1, 1, 1, 1, device=device) - 1)
        offset = self.intensity * (torch.rand(n, 1, 1, 1, 1, device=device) - 0.5)
        out = out * gain + offset
        if self.noise_std > 0:
            out = out + self.noise_std * torch.randn_like(out)
        return out.to(images.dtype)

    def _preset(self, x: Tensor) -> Tensor:
        from transmri.data.augment import AugmentConfig, build_augmentation

        seed = int(torch.randint(0, 2**31 - 1, (1,)))
        augment = build_augmentation(AugmentConfig.preset(cast(str, self.augment)), seed=seed)
        return torch.stack([augment(v.cpu()) for v in x]).to(x.device)

    def corrupt(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """``"image"``: ``2N`` views (first views, then second); per-scan entries repeated.

        ``"pair"`` gives each view its scan's position in the batch, so
        views ``i`` and ``i + N`` are the two views of scan ``i``.
        """
        images = batch["image"]
        n = images.shape[0]
        out: dict[str, Tensor] = {}
        for key, value in batch.items():
            if isinstance(value, Tensor) and value.ndim > 0 and value.shape[0] == n:
                out[key] = torch.cat([value, value])
            else:
                out[key] = value
        out["image"] = torch.cat([self.view(images), self.view(images)])
        out["pair"] = torch.arange(n, device=images.device).repeat(2)
        return out

    def wrap(self, objective: Objective) -> Objective:
        """The objective unchanged (it reads ``"pair"`` itself)."""
        return objective

    def to_dict(self) -> dict[str, Any]:
        """``{"kind": "views", ...}``."""
        out = asdict(self)
        out["crop_scale"] = list(self.crop_scale)
        return {"kind": "views", **out}


def info_nce(z: Tensor, positives: Tensor, *, temperature: float) -> Tensor:
    """Weighted InfoNCE over the rows of ``z``.

    ``loss = -mean_i sum_{j != i} w_ij log softmax_{k != i}(cos(z_i, z_k) / t)_j``
    with ``w_ij = positives_ij / sum_{j != i} positives_ij``. One-hot
    positives (the other view) give NT-Xent; kernel weights give y-aware InfoNCE.
    A row without any positive adds 0.

    Args:
        z: ``(M, d)`` projections.
        positives: ``(M, M)`` non-negative weights (the diagonal is ignored).
        temperature: softmax temperature ``t > 0``.
    """
    m = z.shape[0]
    eye = torch.eye(m, dtype=torch.bool, device=z.device)
    zn = F.normalize(z.float(), dim=1)
    sim = (zn @ zn.T / temperature).masked_fill(eye, float("-inf"))
    log_prob = (sim - torch.logsumexp(sim, dim=1, keepdim=True)).masked_fill(eye, 0.0)
    weights = positives.float().masked_fill(eye, 0.0)
    weights = weights / weights.sum(dim=1, keepdim=True).clamp_min(1e-12)
    return -(weights * log_prob).sum(dim=1).mean()


class ContrastiveLoss:
    """NT-Xent (``target=None``) or y-aware InfoNCE on ``outputs["projection"]``.

    Needs a batch made by :class:`TwoViews` (with ``"pair"``).

    Args:
        temperature: softmax temperature (SimCLR used 0.1-0.5).
        target: name of a continuous batch entry (e.g. ``"age"``) for the
            y-aware kernel; the DataBunch must list it in ``targets``.
        sigma: bandwidth of the Gaussian kernel, in the target's units
            (Dufumier et al. used 5 years for age).
    """

    def __init__(
        self, *, temperature: float = 0.1, target: str | None = None, sigma: float = 5.0
    ) -> None:
        self.temperature = check_positive_float("temperature", temperature)
        if target is not None and (not isinstance(target, str) or not target):
            raise ConfigError(f"target: expected a target name such as 'age', got {target!r}")
        self.target = target
        self.sigma = check_positive_float("sigma", sigma)

    def positives(self, pair: Tensor, y: Tensor | None = None) -> Tensor:
        """``(M, M)`` positive weights: same scan, or the age kernel where both are known."""
        same = (pair[:, None] == pair[None, :]).float()
        if y is None:
            return same
        y = y.float().reshape(-1)
        kernel = torch.exp(-((y[:, None] - y[None, :]) ** 2) / (2 * self.sigma**2))
        known = torch.isfinite(y)
        both = known[:, None] & known[None, :]
        return torch.where(both, kernel, same)

    def __call__(
        self, outputs: Mapping[str, Tensor], batch: Mapping[str, Tensor]
    ) -> dict[str, Tensor]:
        if "projection" not in outputs:
            raise ConfigError(
                f"ContrastiveLoss: expected a 'projection' output (a ContrastiveModel), "
                f"found keys {sorted(outputs)}"
            )
        if "pair" not in batch:
            raise ConfigError(
                "ContrastiveLoss: needs two views per scan (a batch made by TwoViews, with "
                "'pair'); contrastive models have no per-scan loss, so evaluate() does not "
                "apply: use encode_data() and a probe instead"
            )
        z = outputs["projection"]
        y = None
        if self.target is not None:
            if self.target not in batch:
                raise ConfigError(
                    f"ContrastiveLoss: target {self.target!r} is not in the batch (keys "
                    f"{sorted(batch)}); give the DataBunch targets=({self.target!r},)"
                )
            y = batch[self.target].to(z.device)
        weights = self.positives(batch["pair"].to(z.device), y)
        loss = info_nce(z, weights, temperature=self.temperature)
        name = "nt_xent" if self.target is None else "y_info_nce"
        return {"loss": loss, name: loss}

    def __repr__(self) -> str:
        return (
            f"ContrastiveLoss(temperature={self.temperature}, target={self.target!r}, "
            f"sigma={self.sigma})"
        )


@torch.no_grad()
def validate_views(
    fabric: Any,
    model: nn.Module,
    loader: Iterable[dict[str, Tensor]],
    views: TwoViews,
    objective: Objective,
    *,
    seed: int,
) -> dict[str, float]:
    """Mean loss parts over a split, on two views drawn with a fixed seed (eval mode).

    The global random state is restored afterwards, so training is not
    affected. Sums are all-reduced across processes.

    Returns:
        ``{"val_<part>": value}``, weighted by scans per batch.
    """
    was_training = model.training
    model.eval()
    sums: dict[str, Tensor] = {}
    count = torch.zeros((), device=fabric.device)
    device = torch.device(fabric.device)
    devices = [device.index or 0] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            for batch in loader:
                batch = {
                    k: fabric.to_device(v) if isinstance(v, Tensor) else v for k, v in batch.items()
                }
                paired = views.corrupt(batch)
                with fabric.autocast():
                    outputs = model(paired["image"])
                parts = objective(outputs, paired)
                n = batch["image"].shape[0]
                for key, value in parts.items():
                    sums[key] = sums.get(key, count.new_zeros(())) + value.detach().float() * n
                count += n
    finally:
        model.train(was_training)
    keys = sorted(sums)
    stacked = torch.stack([sums[k] for k in keys] + [count]).float()
    total = cast(Tensor, fabric.all_reduce(stacked, reduce_op="sum"))
    n_total = max(float(total[-1]), 1.0)
    return {f"val_{k}": float(total[i]) / n_total for i, k in enumerate(keys)}
