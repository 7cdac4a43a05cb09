"""The pieces of one epoch: a training pass, and passes that collect per-scan outputs.

These functions know nothing about the model beyond "a module whose forward
returns a dict" and nothing about the data beyond "a loader of dict batches
with ``image`` and ``index``". Under DDP every rank runs them on its shard;
:func:`collect` gathers the shards so that every rank sees the whole split,
in the dataset's order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

import numpy as np
import torch
from lightning_fabric import Fabric
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from transmri.training.config import FitConfig
from transmri.training.objectives import Objective, code_l1, weight_l1

__all__ = [
    "classification_scores",
    "collect",
    "per_scan_losses",
    "train_epoch",
]


def train_epoch(
    fabric: Fabric,
    module: nn.Module,
    raw_model: nn.Module,
    optimizer: Any,
    scheduler: Any,
    loader: Iterable[dict[str, Tensor]],
    objective: Objective,
    config: FitConfig,
    *,
    on_batch_end: Callable[[float], None],
    description: str,
    progress: bool,
) -> dict[str, float]:
    """One pass over the training loader; return the scan-weighted mean of every loss part.

    The penalties ``l1_reg * sum|w|`` (non-bias weights of ``raw_model``) and
    ``l1_code * mean|code|`` are added to the objective's loss and logged as
    parts ``l1`` and ``l1_code``. Sums are all-reduced across processes.

    Raises:
        FloatingPointError: the loss became NaN or infinite (names the step).
    """
    sums: dict[str, Tensor] = {}
    count = torch.zeros((), device=fabric.device)
    bar = tqdm(loader, desc=description, leave=False, disable=not progress, dynamic_ncols=True)
    for step, batch in enumerate(bar, start=1):
        outputs = module(batch["image"])
        parts = dict(objective(outputs, batch))
        loss = parts["loss"]
        if config.l1_reg > 0:
            parts["l1"] = config.l1_reg * weight_l1(raw_model).to(loss.device)
            loss = loss + parts["l1"]
        if config.l1_code > 0:
            parts["l1_code"] = config.l1_code * code_l1(outputs)
            loss = loss + parts["l1_code"]
        parts["loss"] = loss
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"{description}, step {step}: the loss became {loss.item()} "
                f"(parts: { {k: float(v) for k, v in parts.items()} }); try a lower lr"
            )
        optimizer.zero_grad(set_to_none=True)
        fabric.backward(loss)
        if config.grad_clip is not None:
            fabric.clip_gradients(module, optimizer, max_norm=config.grad_clip)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        n = batch["image"].shape[0]
        for key, value in parts.items():
            sums[key] = sums.get(key, torch.zeros((), device=fabric.device)) + value.detach() * n
        count += n
        bar.set_postfix(loss=f"{loss.item():.4g}")
        on_batch_end(float(loss.item()))
    keys = sorted(sums)
    stacked = torch.stack([sums[k] for k in keys] + [count]).float()
    total = cast(Tensor, fabric.all_reduce(stacked, reduce_op="sum"))
    n_total = float(total[-1])
    return {f"train_{k}": float(total[i]) / max(n_total, 1.0) for i, k in enumerate(keys)}


def _slice(mapping: Mapping[str, Any], i: int, n: int) -> dict[str, Any]:
    return {
        k: v[i : i + 1] if isinstance(v, Tensor) and v.ndim > 0 and v.shape[0] == n else v
        for k, v in mapping.items()
    }


def per_scan_losses(
    objective: Objective, outputs: Mapping[str, Tensor], batch: Mapping[str, Tensor]
) -> dict[str, Tensor]:
    """Every loss part for each scan of the batch separately, shape ``(N,)`` each.

    Averaging these over a split gives a mean over scans that does not depend
    on the batch size or on how the split was sharded.
    """
    n = batch["image"].shape[0]
    rows = [objective(_slice(outputs, i, n), _slice(batch, i, n)) for i in range(n)]
    return {k: torch.stack([r[k].detach().float().reshape(()) for r in rows]) for k in rows[0]}


@torch.no_grad()
def collect(
    fabric: Fabric,
    model: nn.Module,
    loader: DataLoader[Any],
    extract: Callable[[dict[str, Tensor], dict[str, Tensor]], dict[str, Tensor]],
    *,
    forward: Callable[[Tensor], Any] | None = None,
) -> dict[str, np.ndarray]:
    """Run ``model`` in eval mode over ``loader`` and gather per-scan arrays.

    Args:
        fabric: gives the device, autocast and (under DDP) ``all_gather``.
        model: the plain module (not DDP-wrapped); its train/eval mode is restored.
        loader: batches with ``image`` and ``index`` (a shard under DDP).
        extract: ``(outputs, batch) -> {name: (N, ...) tensor}``.
        forward: what to call instead of ``model`` (e.g. ``model.encode``).

    Returns:
        ``{name: array}`` ordered by dataset index, one row per scan, plus
        ``"index"``; duplicates that a distributed sampler padded are dropped.
    """
    was_training = model.training
    model.eval()
    call = forward or model
    parts: dict[str, list[Tensor]] = {}
    try:
        for batch in loader:
            batch = {
                k: fabric.to_device(v) if isinstance(v, Tensor) else v for k, v in batch.items()
            }
            with fabric.autocast():
                outputs = call(batch["image"])
            if not isinstance(outputs, dict):
                outputs = {"code": outputs}
            row = {k: v.detach().float() for k, v in extract(outputs, batch).items()}
            row["index"] = torch.as_tensor(batch["index"], device=fabric.device).long()
            for key, value in row.items():
                parts.setdefault(key, []).append(value)
    finally:
        model.train(was_training)
    if not parts:
        return {}
    local = {k: torch.cat(v) for k, v in parts.items()}
    if fabric.world_size > 1:
        gathered = cast(dict[str, Tensor], fabric.all_gather(local))
        local = {k: v.reshape(-1, *v.shape[2:]) for k, v in gathered.items()}
    index = local["index"].cpu().numpy()
    _, first = np.unique(index, return_index=True)
    return {k: v.cpu().numpy()[first] for k, v in local.items()}


def classification_scores(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """Accuracy, balanced accuracy and ROC AUC over the labelled scans of a whole split.

    The AUC is :func:`~transmri.evaluation.metrics.classification_auc` (the
    one that ``metrics_<split>.json`` reports): one-vs-rest macro over the
    classes present for more than two classes, and NaN when the labelled scans
    hold a single class (it is undefined then).
    """
    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    from transmri.evaluation.metrics import classification_auc

    keep = labels >= 0
    y, p = labels[keep], probs[keep]
    if y.size == 0:
        return {"accuracy": float("nan"), "balanced_accuracy": float("nan"), "auc": float("nan")}
    pred = p.argmax(axis=1)
    out = {
        "accuracy": float(accuracy_score(y, pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
        "auc": classification_auc(y, p),
    }
    return out
