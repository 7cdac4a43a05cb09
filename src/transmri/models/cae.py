"""The paper's vanilla 3D convolutional autoencoder (CAE)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from transmri._validation import check_fraction
from transmri.models._autoencoder import AutoEncoderBase
from transmri.models._shapes import check_input
from transmri.models.conv import ConvDecoder, ConvEncoder

__all__ = ["ConvAutoEncoder", "masking_noise"]


def masking_noise(x: Tensor, p: float) -> Tensor:
    """Zero each voxel of ``x`` with probability ``p`` (no rescaling).

    The denoising target stays the clean input, so surviving voxels keep
    their intensity (unlike ``nn.Dropout``, which rescales by ``1 / (1 - p)``).
    """
    if p <= 0:
        return x
    return x * (torch.rand_like(x) >= p).to(x.dtype)


class ConvAutoEncoder(AutoEncoderBase):
    """3D-CAE: three [Conv3d-act-MaxPool3d] blocks and [Conv3d-act] to the code.

    The decoder mirrors the encoder with ConvTranspose3d and MaxUnpool3d
    (using the encoder's indices and pre-pool sizes, so any input shape is
    reconstructed at exactly its size) and ends in a sigmoid: inputs are
    expected in [0, 1] (min-max scaled).

    Args:
        channels: feature maps of the encoder convs; the last is the code's.
        activation: ``"relu"`` (the paper) or ``"elu"``.
        norm: ``None`` (the paper), ``"batch"`` or ``"group"``.
        input_dropout: probability of zeroing each input voxel during
            training (a denoising autoencoder); off in eval mode and in
            :meth:`encode`.

    Example:
        >>> model = ConvAutoEncoder().eval()
        >>> out = model(torch.rand(1, 1, 32, 32, 32))
        >>> tuple(out["reconstruction"].shape), tuple(out["code"].shape)
        ((1, 1, 32, 32, 32), (1, 16, 4, 4, 4))
    """

    def __init__(
        self,
        *,
        channels: Sequence[int] = (8, 16, 32, 16),
        activation: str = "relu",
        norm: str | None = None,
        input_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.input_dropout = check_fraction("input_dropout", input_dropout, inclusive=True)
        if self.input_dropout == 1.0:
            raise ValueError("input_dropout: expected a probability < 1, got 1.0")
        self.encoder = ConvEncoder(channels=channels, activation=activation, norm=norm)
        self.decoder = ConvDecoder(channels=channels, activation=activation, norm=norm)

    @property
    def config(self) -> dict[str, Any]:
        """``{"name": "cae", ...}`` for :func:`transmri.models.build_model`."""
        enc = self.encoder.config
        return {
            "name": "cae",
            "channels": enc["channels"],
            "activation": enc["activation"],
            "norm": enc["norm"],
            "input_dropout": self.input_dropout,
        }

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Return ``{"reconstruction": (N, 1, D, H, W), "code": (N, C, d, h, w)}``."""
        check_input(x, steps=self.encoder.pooling_steps, where=type(self).__name__)
        noisy = masking_noise(x, self.input_dropout) if self.training else x
        trace = self.encoder.trace(noisy)
        reconstruction = self.decoder(trace.code, sizes=trace.sizes, indices=trace.indices)
        return {"reconstruction": reconstruction, "code": trace.code}
