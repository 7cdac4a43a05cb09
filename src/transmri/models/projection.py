"""A projection head and an encoder + projection model for contrastive pretraining.

SimCLR-style: two augmented views of a scan go through the encoder and the
projection head; the contrastive loss (an objective of the training stage)
pulls the two projections together. The projection head is discarded after
pretraining; the encoder is what is transferred.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from transmri._validation import check_positive_int
from transmri.errors import ConfigError
from transmri.models._shapes import (
    check_input,
    encoder_code_shape,
    encoder_out_channels,
    optional_shape3d,
)
from transmri.models.protocol import count_parameters

__all__ = ["ContrastiveModel", "ProjectionHead"]


class ProjectionHead(nn.Module):
    """Global average pooling -> Linear -> ReLU -> Linear.

    Args:
        in_channels: channels of the code (or features of a pooled code).
        hidden_dim: width of the hidden layer (default ``in_channels``).
        projection_dim: size of the projection.

    Example:
        >>> import torch
        >>> ProjectionHead(16, projection_dim=8)(torch.rand(2, 16, 3, 3, 3)).shape
        torch.Size([2, 8])
    """

    def __init__(
        self, in_channels: int, *, hidden_dim: int | None = None, projection_dim: int = 64
    ) -> None:
        super().__init__()
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.hidden_dim = (
            self.in_channels if hidden_dim is None else check_positive_int("hidden_dim", hidden_dim)
        )
        self.projection_dim = check_positive_int("projection_dim", projection_dim)
        self.layers = nn.Sequential(
            nn.Linear(self.in_channels, self.hidden_dim),
            nn.ReLU(),
            nn.Linear(self.hidden_dim, self.projection_dim),
        )

    def forward(self, code: Tensor) -> Tensor:
        """Return ``(N, projection_dim)`` for a code ``(N, C, ...)`` or ``(N, C)``."""
        features = code.mean(dim=tuple(range(2, code.dim()))) if code.dim() > 2 else code
        if features.shape[1] != self.in_channels:
            raise ValueError(
                f"ProjectionHead: expected a code with {self.in_channels} channels, got shape "
                f"{tuple(code.shape)}"
            )
        out: Tensor = self.layers(features)
        return out


class ContrastiveModel(nn.Module):
    """An encoder with a :class:`ProjectionHead`; ``forward`` returns ``{"code", "projection"}``.

    Args:
        encoder: the encoder to pretrain; used as given, not copied.
        projection_dim: size of the projection.
        hidden_dim: hidden width of the projection head (default: code channels).
        input_shape: volume shape ``(D, H, W)``; only needed for an encoder
            without ``out_channels``.

    Example:
        >>> import torch
        >>> from transmri.models import ConvEncoder
        >>> model = ContrastiveModel(ConvEncoder(), projection_dim=32).eval()
        >>> model(torch.rand(2, 1, 16, 16, 16))["projection"].shape
        torch.Size([2, 32])
    """

    def __init__(
        self,
        encoder: nn.Module,
        *,
        projection_dim: int = 64,
        hidden_dim: int | None = None,
        input_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(encoder, nn.Module):
            raise TypeError(f"encoder: expected an nn.Module, got {type(encoder).__name__}")
        self.input_shape = optional_shape3d("input_shape", input_shape)
        self.encoder = encoder
        self.projection = ProjectionHead(
            encoder_out_channels(encoder, self.input_shape),
            hidden_dim=hidden_dim,
            projection_dim=projection_dim,
        )

    @property
    def config(self) -> dict[str, Any]:
        """``{"name": "contrastive", "encoder": <encoder config>, ...}``."""
        encoder_config = getattr(self.encoder, "config", None)
        if not isinstance(encoder_config, dict):
            raise ConfigError(
                f"encoder: expected a model with a `config` dict so that build_model can "
                f"rebuild it, got {type(self.encoder).__name__} without one"
            )
        return {
            "name": "contrastive",
            "encoder": encoder_config,
            "projection_dim": self.projection.projection_dim,
            "hidden_dim": self.projection.hidden_dim,
            "input_shape": None if self.input_shape is None else list(self.input_shape),
        }

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Return ``{"code": encoder(x), "projection": (N, projection_dim)}``."""
        check_input(x, steps=0, where=type(self).__name__)
        code = self.encoder(x)
        return {"code": code, "projection": self.projection(code)}

    def encode(self, x: Tensor) -> Tensor:
        """The encoder's code of ``x``."""
        code: Tensor = self.encoder(x)
        return code

    def code_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        """Per-sample code shape of the encoder."""
        return encoder_code_shape(self.encoder, input_shape)

    def layer_groups(self) -> list[nn.Module]:
        """The encoder's groups (or the whole encoder), then the projection head."""
        groups = getattr(self.encoder, "layer_groups", None)
        encoder_groups = list(groups()) if callable(groups) else [self.encoder]
        return [*encoder_groups, self.projection]

    def num_parameters(self, *, trainable_only: bool = False) -> int:
        """Number of parameters."""
        return count_parameters(self, trainable_only=trainable_only)
