"""Where a classifier looks: occlusion and gradient saliency maps of one volume.

Both maps run the model in eval mode (its previous mode is restored after),
never accumulate gradients into the model's parameters, and return a float32
array of the volume's shape.

Example:
    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8**3, 2))
    >>> occlusion_map(model, torch.zeros(8, 8, 8), patch=4).shape
    (8, 8, 8)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from transmri._files import save_figure
from transmri._validation import check_positive_float, check_positive_int
from transmri.errors import DataFormatError
from transmri.evaluation.plots import orthogonal_slices

__all__ = ["gradient_map", "occlusion_map", "plot_saliency"]


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def _device(model: nn.Module) -> torch.device:
    for parameter in model.parameters():
        return parameter.device
    return torch.device("cpu")


def _as_input(volume: Any, device: torch.device) -> torch.Tensor:
    t = volume.detach() if isinstance(volume, torch.Tensor) else torch.as_tensor(np.asarray(volume))
    t = t.to(device=device, dtype=torch.float32)
    while t.ndim > 3 and t.shape[0] == 1:
        t = t[0]
    if t.ndim != 3:
        raise DataFormatError(
            f"volume: expected one 3D volume (D, H, W) or (1, D, H, W), got shape {tuple(t.shape)}"
        )
    return t[None, None]


def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    if isinstance(out, dict):
        if "logits" not in out:
            raise DataFormatError(
                f"model output: expected a tensor or a dict with key 'logits', "
                f"got keys {sorted(out)}"
            )
        out = out["logits"]
    if not isinstance(out, torch.Tensor):
        raise DataFormatError(
            f"model output: expected a tensor or a dict with key 'logits', got {type(out).__name__}"
        )
    return out.reshape(out.shape[0], -1)


def _score(logits: torch.Tensor, target: int) -> torch.Tensor:
    """Probability of ``target``: softmax over classes, sigmoid for a single logit."""
    if logits.shape[1] == 1:
        return torch.sigmoid(logits[:, 0])
    return torch.softmax(logits, dim=1)[:, target]


def _resolve_target(logits: torch.Tensor, target: int | None) -> int:
    n_out = logits.shape[1]
    if target is None:
        return 0 if n_out == 1 else int(logits[0].argmax())
    if isinstance(target, bool) or not isinstance(target, int) or not 0 <= target < n_out:
        raise DataFormatError(f"target: expected a class index in 0..{n_out - 1}, got {target!r}")
    return target


def occlusion_map(
    model: nn.Module,
    volume: Any,
    *,
    target: int | None = None,
    patch: int = 8,
    stride: int | None = None,
    baseline: float = 0.0,
    batch_size: int = 8,
) -> np.ndarray:
    """Drop in the target class's probability when a cube of the volume is hidden.

    A ``patch``-sized cube filled with ``baseline`` slides over the volume by
    ``stride`` voxels (default: ``patch``, non-overlapping); each voxel gets
    the mean drop of the occlusions that covered it. Large positive values
    mark regions the prediction depends on.

    Args:
        model: A classifier; its forward returns logits or a dict with ``"logits"``.
        volume: ``(D, H, W)`` or ``(1, D, H, W)`` array or tensor.
        target: Class index; the predicted class if ``None``.
        patch: Edge of the occluding cube, in voxels.
        stride: Step between cubes; ``patch`` if ``None``.
        baseline: Value put into the occluded cube.
        batch_size: Occluded copies evaluated per forward pass.

    Returns:
        float32 array of the volume's shape.
    """
    patch = check_positive_int("patch", patch)
    stride = patch if stride is None else check_positive_int("stride", stride)
    batch_size = check_positive_int("batch_size", batch_size)
    x = _as_input(volume, _device(model))
    shape = tuple(x.shape[2:])
    starts = [
        sorted({*range(0, max(size - patch, 0) + 1, stride), max(size - patch, 0)})
        for size in shape
    ]
    corners = [(i, j, k) for i in starts[0] for j in starts[1] for k in starts[2]]
    total = torch.zeros(shape, dtype=torch.float64)
    count = torch.zeros(shape, dtype=torch.float64)
    with _eval_mode(model), torch.no_grad():
        logits = _logits(model, x)
        chosen = _resolve_target(logits, target)
        reference = _score(logits, chosen)[0]
        for first in range(0, len(corners), batch_size):
            chunk = corners[first : first + batch_size]
            batch = x.repeat(len(chunk), 1, 1, 1, 1)
            for b, (i, j, k) in enumerate(chunk):
                batch[b, 0, i : i + patch, j : j + patch, k : k + patch] = baseline
            drops = (reference - _score(_logits(model, batch), chosen)).double().cpu()
            for b, (i, j, k) in enumerate(chunk):
                total[i : i + patch, j : j + patch, k : k + patch] += drops[b]
                count[i : i + patch, j : j + patch, k : k + patch] += 1
    return (total / count.clamp(min=1)).numpy().astype(np.float32)


def gradient_map(
    model: nn.Module,
    volume: Any,
    *,
    target: int | None = None,
    smooth_samples: int = 0,
    noise: float = 0.1,
    seed: int = 0,
) -> np.ndarray:
    """Absolute gradient of the target logit with respect to each voxel.

    With ``smooth_samples > 0`` this is SmoothGrad: the mean absolute
    gradient over copies of the volume with gaussian noise of standard
    deviation ``noise * (max - min)`` added. Gradients are taken with
    :func:`torch.autograd.grad`, so the model's ``.grad`` fields stay untouched.

    Args:
        model: A classifier; its forward returns logits or a dict with ``"logits"``.
        volume: ``(D, H, W)`` or ``(1, D, H, W)`` array or tensor.
        target: Class index; the predicted class if ``None``.
        smooth_samples: Number of noisy copies (0: plain gradient).
        noise: Noise level relative to the volume's intensity range.
        seed: Seed of the noise.

    Returns:
        float32 array of the volume's shape.
    """
    smooth_samples = check_positive_int("smooth_samples", smooth_samples, minimum=0)
    noise = check_positive_float("noise", noise, allow_zero=True)
    x = _as_input(volume, _device(model))
    generator = torch.Generator(device="cpu").manual_seed(seed)
    sigma = float(noise * (x.max() - x.min()))
    with _eval_mode(model):
        with torch.no_grad():
            chosen = _resolve_target(_logits(model, x), target)
        total = torch.zeros(x.shape[2:], dtype=torch.float64)
        for _ in range(max(smooth_samples, 1)):
            noisy = x
            if smooth_samples:
                noisy = x + sigma * torch.randn(x.shape, generator=generator).to(x.device)
            noisy = noisy.clone().requires_grad_(True)
            with torch.enable_grad():
                logits = _logits(model, noisy)
                score = logits[0, 0] if logits.shape[1] == 1 else logits[0, chosen]
                (grad,) = torch.autograd.grad(score, noisy)
            total += grad[0, 0].abs().double().cpu()
    return (total / max(smooth_samples, 1)).numpy().astype(np.float32)


def plot_saliency(
    volume: Any,
    saliency: Any,
    *,
    title: str | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """Saliency over the volume on three orthogonal slices through the saliency peak.

    Args:
        volume: ``(D, H, W)`` volume (grey).
        saliency: Map of the same shape (hot colours, transparent where low).
        title: Figure title; states the peak voxel if ``None``.
        path: Save the figure there as a PNG.
    """
    vol = np.asarray(volume.detach().cpu() if isinstance(volume, torch.Tensor) else volume)
    sal = np.asarray(saliency.detach().cpu() if isinstance(saliency, torch.Tensor) else saliency)
    vol = vol.reshape(vol.shape[-3:]) if vol.ndim > 3 else vol
    if vol.ndim != 3 or sal.shape != vol.shape:
        raise DataFormatError(
            f"saliency: expected the shape of the 3D volume {vol.shape}, got {sal.shape}"
        )
    peak = tuple(int(i) for i in np.unravel_index(int(np.argmax(sal)), sal.shape))
    top = float(sal.max()) if float(sal.max()) > 0 else 1.0
    fig = Figure(figsize=(9.0, 3.4), layout="constrained")
    axes = fig.subplots(1, 3)
    image = None
    for ax, v, s, plane in zip(
        axes,
        orthogonal_slices(vol, at=peak),
        orthogonal_slices(sal, at=peak),
        ("sagittal", "coronal", "axial"),
    ):
        ax.imshow(v, cmap="gray", origin="lower", interpolation="nearest")
        masked = np.ma.masked_less_equal(s, 0.1 * top)
        image = ax.imshow(masked, cmap="hot", origin="lower", vmin=0, vmax=top, alpha=0.6)
        ax.set_title(plane, fontsize=8)
        ax.set_axis_off()
    if image is not None:
        fig.colorbar(image, ax=list(axes), shrink=0.8, label="saliency")
    fig.suptitle(title or f"saliency (slices through the peak at voxel {peak})", fontsize=10)
    if path is not None:
        save_figure(fig, path)
    return fig
