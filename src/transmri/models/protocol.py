"""What every transmri model (and every encoder) offers to the training stage.

The Learner, the objectives and the transfer helpers know models only
through these two protocols, so any ``nn.Module`` that provides the same
members (a MONAI backbone wrapper, a user's own network) can be trained,
frozen, transferred and saved the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from torch import Tensor, nn

__all__ = ["Encoder", "TransferModel", "count_parameters"]


@runtime_checkable
class Encoder(Protocol):
    """A standalone encoder: a volume batch ``(N, 1, D, H, W)`` in, the code out.

    Attributes:
        out_channels: channels of the code (features, for a pooled code).
    """

    out_channels: int

    def __call__(self, x: Tensor) -> Tensor:
        """Return the code of ``x``."""
        ...

    @property
    def config(self) -> dict[str, Any]:
        """JSON-able ``{"name": <registry name>, **options}`` rebuilding this encoder."""
        ...

    def code_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        """Per-sample code shape for volumes of spatial shape ``(D, H, W)``."""
        ...

    def layer_groups(self) -> list[nn.Module]:
        """Sub-modules from the earliest layers to the last."""
        ...

    def num_parameters(self, *, trainable_only: bool = False) -> int:
        """Number of parameters (only those with ``requires_grad`` if asked)."""
        ...


@runtime_checkable
class TransferModel(Protocol):
    """A trainable model: autoencoder, classifier, multi-task or contrastive.

    ``forward`` returns a dict whose keys are among ``"reconstruction"``,
    ``"logits"``, ``"code"``, ``"mu"``, ``"logvar"``, ``"projection"`` and
    ``"pred_<target>"``; the objective picks what it needs.
    """

    @property
    def encoder(self) -> nn.Module:
        """The part that is saved, transferred and fine-tuned."""
        ...

    def __call__(self, x: Tensor) -> dict[str, Tensor]:
        """Run the model on a batch ``(N, 1, D, H, W)``."""
        ...

    def encode(self, x: Tensor) -> Tensor:
        """Return the code of ``x`` (a VAE returns the mean)."""
        ...

    @property
    def config(self) -> dict[str, Any]:
        """JSON-able ``{"name": <registry name>, **options}`` for ``build_model``."""
        ...

    def layer_groups(self) -> list[nn.Module]:
        """Parameter groups from the earliest layers to the head (last)."""
        ...

    def code_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        """Per-sample code shape for volumes of spatial shape ``(D, H, W)``."""
        ...

    def num_parameters(self, *, trainable_only: bool = False) -> int:
        """Number of parameters (only those with ``requires_grad`` if asked)."""
        ...


def count_parameters(module: nn.Module, *, trainable_only: bool = False) -> int:
    """Count the parameters of ``module``, shared ones once.

    Example:
        >>> count_parameters(nn.Linear(3, 2))
        8
    """
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
