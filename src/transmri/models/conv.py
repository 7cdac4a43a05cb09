"""The convolutional encoder and decoder of the paper's CAE (shared by the VAE).

Encoder: ``len(channels) - 1`` blocks of [Conv3d k3 - (norm) - activation -
MaxPool3d 2] and one [Conv3d - (norm) - activation] that maps to the code.
Decoder: the mirror image with ConvTranspose3d and MaxUnpool3d (or nearest
upsampling, for the VAE, whose decoder must not see the encoder's pooling
indices), and a sigmoid after the last layer.

The pooling indices and pre-pool sizes are returned by
:meth:`ConvEncoder.trace` and passed explicitly to :meth:`ConvDecoder.forward`;
nothing is stored on the modules between calls.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch.nn.functional as F
from torch import Tensor, nn

from transmri._validation import check_choice, check_positive_int
from transmri.models._shapes import check_channels, check_input, check_input_shape
from transmri.models.protocol import count_parameters

__all__ = [
    "ACTIVATIONS",
    "NORMS",
    "ConvBlock",
    "ConvDecoder",
    "ConvEncoder",
    "EncoderTrace",
    "init_conv_weights",
    "make_activation",
]

ACTIVATIONS: tuple[str, ...] = ("relu", "elu")
NORMS: tuple[str | None, ...] = (None, "batch", "group")


def make_activation(name: str) -> nn.Module:
    """A fresh activation module: ``"relu"`` or ``"elu"``."""
    check_choice("activation", name, ACTIVATIONS)
    return nn.ReLU() if name == "relu" else nn.ELU()


def _make_norm(name: str | None, channels: int) -> nn.Module:
    if name is None:
        return nn.Identity()
    if name == "batch":
        return nn.BatchNorm3d(channels)
    # GroupNorm needs a group count dividing the channels; up to 8 groups.
    return nn.GroupNorm(math.gcd(channels, 8), channels)


def init_conv_weights(module: nn.Module) -> None:
    """Kaiming-normal weights and zero bias for every (transposed) 3D convolution."""
    for m in module.modules():
        if isinstance(m, nn.Conv3d | nn.ConvTranspose3d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class ConvBlock(nn.Module):
    """[Conv3d (or ConvTranspose3d) k3 pad 1 - norm - activation]; keeps the spatial size.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        activation: ``"relu"`` or ``"elu"``; ``"sigmoid"`` for a decoder's last block.
        norm: ``None``, ``"batch"`` or ``"group"``.
        transpose: use ConvTranspose3d (decoder) instead of Conv3d.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        activation: str = "relu",
        norm: str | None = None,
        transpose: bool = False,
    ) -> None:
        super().__init__()
        conv_type = nn.ConvTranspose3d if transpose else nn.Conv3d
        # A bias before a normalisation layer is redundant.
        self.conv = conv_type(in_channels, out_channels, 3, padding=1, bias=norm is None)
        self.norm = _make_norm(norm, out_channels)
        self.act = nn.Sigmoid() if activation == "sigmoid" else make_activation(activation)

    def forward(self, x: Tensor) -> Tensor:
        """Apply conv, norm and activation."""
        return self.act(self.norm(self.conv(x)))


class EncoderTrace(NamedTuple):
    """What the decoder needs from one encoder pass.

    Attributes:
        code: the code ``(N, C, d, h, w)``.
        indices: max-pooling indices, earliest level first.
        sizes: spatial sizes before each pooling, earliest level first.
    """

    code: Tensor
    indices: tuple[Tensor, ...]
    sizes: tuple[tuple[int, ...], ...]


class ConvEncoder(nn.Module):
    """The paper's CAE encoder; ``forward`` returns the code only.

    Args:
        channels: feature maps of each conv layer; the last is the code's.
            ``len(channels) - 1`` max-pooling steps.
        activation: ``"relu"`` or ``"elu"``.
        norm: ``None`` (the paper), ``"batch"`` or ``"group"``.

    Example:
        >>> enc = ConvEncoder()
        >>> enc.code_shape((108, 128, 108))
        (16, 13, 16, 13)
    """

    def __init__(
        self,
        *,
        channels: Sequence[int] = (8, 16, 32, 16),
        activation: str = "relu",
        norm: str | None = None,
    ) -> None:
        super().__init__()
        self.channels = check_channels("channels", channels)
        if len(self.channels) < 2:
            raise ValueError(
                f"channels: expected at least 2 layers (one pooling step), got {channels!r}"
            )
        self.activation = check_choice("activation", activation, ACTIVATIONS)
        self.norm = check_choice("norm", norm, NORMS)
        widths = (1, *self.channels)
        self.blocks = nn.ModuleList(
            ConvBlock(widths[i], widths[i + 1], activation=activation, norm=norm)
            for i in range(len(self.channels))
        )
        self.pool = nn.MaxPool3d(2, return_indices=True)
        init_conv_weights(self)

    @property
    def out_channels(self) -> int:
        """Channels of the code."""
        return self.channels[-1]

    @property
    def pooling_steps(self) -> int:
        """How many times each spatial size is halved."""
        return len(self.channels) - 1

    @property
    def config(self) -> dict[str, Any]:
        """``{"name": "cae_encoder", ...}`` for :func:`transmri.models.build_model`."""
        return {
            "name": "cae_encoder",
            "channels": list(self.channels),
            "activation": self.activation,
            "norm": self.norm,
        }

    def trace(self, x: Tensor) -> EncoderTrace:
        """Encode ``x`` and keep what the decoder needs (indices, pre-pool sizes)."""
        check_input(x, steps=self.pooling_steps, where=type(self).__name__)
        indices: list[Tensor] = []
        sizes: list[tuple[int, ...]] = []
        h = x
        for block in self.blocks[:-1]:
            h = block(h)
            sizes.append(tuple(h.shape[2:]))
            h, idx = self.pool(h)
            indices.append(idx)
        code = self.blocks[-1](h)
        return EncoderTrace(code, tuple(indices), tuple(sizes))

    def forward(self, x: Tensor) -> Tensor:
        """Return the code of ``x`` ``(N, 1, D, H, W)`` -> ``(N, C, D//2^k, ...)``."""
        return self.trace(x).code

    def code_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        """``(C, D // 2**k, H // 2**k, W // 2**k)`` for ``k`` pooling steps."""
        shape = check_input_shape(input_shape, steps=self.pooling_steps, where=type(self).__name__)
        factor = 2**self.pooling_steps
        return (self.out_channels, *(s // factor for s in shape))

    def layer_groups(self) -> list[nn.Module]:
        """One group per conv block, earliest first."""
        return list(self.blocks)

    def num_parameters(self, *, trainable_only: bool = False) -> int:
        """Number of parameters."""
        return count_parameters(self, trainable_only=trainable_only)


class ConvDecoder(nn.Module):
    """Mirror of :class:`ConvEncoder`: code -> reconstruction in [0, 1].

    Args:
        channels: the encoder's ``channels`` (the decoder runs them backwards).
        activation: ``"relu"`` or ``"elu"``.
        norm: ``None``, ``"batch"`` or ``"group"``.
        in_channels: channels of the decoder's input; defaults to
            ``channels[-1]`` (the VAE passes its latent channels).
        upsample: ``"unpool"`` (MaxUnpool3d with the encoder's indices, the
            paper) or ``"nearest"`` (nearest-neighbour upsampling, no indices).
    """

    def __init__(
        self,
        *,
        channels: Sequence[int] = (8, 16, 32, 16),
        activation: str = "relu",
        norm: str | None = None,
        in_channels: int | None = None,
        upsample: str = "unpool",
    ) -> None:
        super().__init__()
        self.channels = check_channels("channels", channels)
        self.upsample = check_choice("upsample", upsample, ("unpool", "nearest"))
        code_channels = self.channels[-1]
        if in_channels is not None:
            code_channels = check_positive_int("in_channels", in_channels)
        widths = (1, *self.channels[:-1], code_channels)[::-1]
        last = len(widths) - 2
        self.blocks = nn.ModuleList(
            ConvBlock(
                widths[i],
                widths[i + 1],
                activation="sigmoid" if i == last else activation,
                norm=None if i == last else norm,
                transpose=True,
            )
            for i in range(len(widths) - 1)
        )
        self.unpool = nn.MaxUnpool3d(2)
        init_conv_weights(self)

    def forward(
        self,
        code: Tensor,
        *,
        sizes: Sequence[Sequence[int]],
        indices: Sequence[Tensor] | None = None,
    ) -> Tensor:
        """Decode ``code`` back to the input's exact shape.

        Args:
            code: ``(N, C, d, h, w)``.
            sizes: spatial sizes before each pooling, earliest level first
                (:attr:`EncoderTrace.sizes`).
            indices: pooling indices, earliest level first; required for
                ``upsample="unpool"``.
        """
        steps = len(self.blocks) - 1
        if len(sizes) != steps:
            raise ValueError(f"sizes: expected {steps} levels, got {len(sizes)}")
        if self.upsample == "unpool" and (indices is None or len(indices) != steps):
            found = "None" if indices is None else f"{len(indices)} levels"
            raise ValueError(f"indices: expected {steps} levels of pooling indices, got {found}")
        h = code
        for i, block in enumerate(self.blocks[:-1]):
            h = block(h)
            level = steps - 1 - i
            size = [int(s) for s in sizes[level]]
            if indices is not None and self.upsample == "unpool":
                h = self.unpool(h, indices[level], output_size=size)
            else:
                h = F.interpolate(h, size=size, mode="nearest")
        out: Tensor = self.blocks[-1](h)
        return out
