"""The protocol methods every autoencoder shares (it has ``encoder`` and ``decoder``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from transmri.models.protocol import count_parameters

__all__ = ["AutoEncoderBase"]


class AutoEncoderBase(nn.Module):
    """``encode``, ``code_shape``, ``layer_groups`` and ``num_parameters`` of an autoencoder.

    Subclasses set ``self.encoder`` (a module with ``code_shape`` and
    ``layer_groups``) and ``self.decoder``, and define ``forward``.
    """

    encoder: Any
    decoder: Any

    def encode(self, x: Tensor) -> Tensor:
        """The code of ``x`` (the encoder's output; no input noise, the mean for a VAE)."""
        code: Tensor = self.encoder(x)
        return code

    def code_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        """Per-sample code shape for volumes of shape ``(D, H, W)``."""
        shape: tuple[int, ...] = self.encoder.code_shape(input_shape)
        return shape

    def layer_groups(self) -> list[nn.Module]:
        """The encoder's groups, earliest first, then the decoder."""
        return [*self.encoder.layer_groups(), self.decoder]

    def num_parameters(self, *, trainable_only: bool = False) -> int:
        """Number of parameters."""
        return count_parameters(self, trainable_only=trainable_only)
