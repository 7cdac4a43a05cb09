"""deepbet's LinkNet-style 3D U-Net (Fisch et al. 2024) as plain PyTorch modules.

deepbet ships its brain-extraction networks as TorchScript archives; this is
a re-implementation traced from them, with the same parameter names, so the
weights copy over one to one (:mod:`transmri.pretrained.deepbet` does that,
once, and afterwards only safetensors are loaded).

- :class:`DeepbetEncoder`: ``init`` (7^3 conv stride 2, 1 -> 16, instance
  norm without affine, ReLU, 3^3 max-pool stride 2), then ``down0``-``down3``
  of two residual blocks each (channels 16, 16, 32, 64, 128; the first block
  of ``down1``-``down3`` strides 2 with a 1^3 conv + norm shortcut). No conv
  biases. Each spatial size is halved (rounding up) 5 times: the code is
  ``(128, D/32, H/32, W/32)``.
- :class:`DeepbetNet`: that encoder plus the LinkNet decoder (``up0``-``up3``
  with additive skips) and the head (two transposed convs and a conv), ending
  in a 2-class softmax at full resolution. Its input sizes must be multiples
  of 32.

Example:
    >>> import torch
    >>> DeepbetEncoder().code_shape((96, 96, 96))
    (128, 3, 3, 3)
    >>> DeepbetNet()(torch.zeros(1, 1, 64, 64, 64)).shape
    torch.Size([1, 2, 64, 64, 64])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from transmri.models._shapes import check_input, check_input_shape, level_sizes
from transmri.models.protocol import count_parameters

__all__ = ["DEEPBET_CHANNELS", "DeepbetEncoder", "DeepbetNet", "deepbet_encoder"]

#: Channels of ``init`` and ``down0``-``down3``.
DEEPBET_CHANNELS = (16, 16, 32, 64, 128)
_STEPS = 5


def _ceil_half(n: int) -> int:
    return math.ceil(n / 2)


def _check_sizes(sizes: Sequence[int], where: str) -> None:
    # Instance norm needs more than one voxel at the last stage (1/32 scale).
    small = [int(s) for s in sizes if int(s) <= 2**_STEPS]
    if small:
        raise ValueError(
            f"{where}: every input size must be at least {2**_STEPS + 1} voxels (instance "
            f"norm needs more than one voxel at 1/{2**_STEPS} scale), got {tuple(sizes)}"
        )


def _norm(channels: int) -> nn.InstanceNorm3d:
    return nn.InstanceNorm3d(channels, affine=False, track_running_stats=False)


class _ResidualBlock(nn.Module):
    """3^3 conv, norm, ReLU, 3^3 conv, norm, + shortcut, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, *, stride: int) -> None:
        super().__init__()
        self.double_conv = nn.Sequential(
            nn.Conv3d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            _norm(out_channels),
            nn.ReLU(),
            nn.Conv3d(out_channels, out_channels, 3, padding=1, bias=False),
            _norm(out_channels),
        )
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv3d(in_channels, out_channels, 1, stride=stride, bias=False),
                _norm(out_channels),
            )
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out: Tensor = self.act(self.double_conv(x) + shortcut)
        return out


class _Stage(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, *, stride: int) -> None:
        super().__init__()
        self.block1 = _ResidualBlock(in_channels, out_channels, stride=stride)
        self.block2 = _ResidualBlock(out_channels, out_channels, stride=1)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.block2(self.block1(x))
        return out


class _UpBlock(nn.Module):
    """LinkNet decoder block: 1^3 conv to in/4, transposed 3^3 conv, 1^3 conv to out."""

    def __init__(self, in_channels: int, out_channels: int, *, stride: int) -> None:
        super().__init__()
        mid = in_channels // 4
        self.conv1 = nn.Sequential(
            nn.Conv3d(in_channels, mid, 1, bias=False), _norm(mid), nn.ReLU()
        )
        self.tp_conv = nn.Sequential(
            nn.ConvTranspose3d(
                mid, mid, 3, stride=stride, padding=1, output_padding=stride - 1, bias=False
            ),
            _norm(mid),
            nn.ReLU(),
        )
        self.conv2 = nn.Sequential(
            nn.Conv3d(mid, out_channels, 1, bias=False), _norm(out_channels), nn.ReLU()
        )

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.conv2(self.tp_conv(self.conv1(x)))
        return out


class DeepbetEncoder(nn.Module):
    """The encoder half of deepbet's network, behind the transmri encoder protocol.

    ``forward`` returns the ``down3`` feature map ``(N, 128, d, h, w)``
    (not pooled), each spatial size halved (rounding up) 5 times. Weights
    start random; :func:`transmri.pretrained.import_deepbet` gives deepbet's.
    Its inputs should be prepared as deepbet's were (see the card): RAS,
    intensities clipped to the 0.5-99.5 % quantiles, scaled to [0, 1], then
    standardised to mean 0.449 and sd 0.226.

    Example:
        >>> enc = DeepbetEncoder()
        >>> [type(g).__name__ for g in enc.layer_groups()][:2]
        ['Sequential', '_Stage']
    """

    def __init__(self) -> None:
        super().__init__()
        c = DEEPBET_CHANNELS
        self.init = nn.Sequential(
            nn.Conv3d(1, c[0], 7, stride=2, padding=3, bias=False),
            _norm(c[0]),
            nn.ReLU(),
            nn.MaxPool3d(3, stride=2, padding=1),
        )
        self.down0 = _Stage(c[0], c[1], stride=1)
        self.down1 = _Stage(c[1], c[2], stride=2)
        self.down2 = _Stage(c[2], c[3], stride=2)
        self.down3 = _Stage(c[3], c[4], stride=2)
        self.out_channels = c[4]

    @property
    def config(self) -> dict[str, Any]:
        """``{"name": "deepbet_encoder"}`` (the architecture has no options)."""
        return {"name": "deepbet_encoder"}

    def stages(self, x: Tensor) -> list[Tensor]:
        """The outputs of ``init`` and ``down0``-``down3``, earliest first."""
        check_input(x, steps=_STEPS, where=type(self).__name__)
        _check_sizes(x.shape[2:], type(self).__name__)
        outs = [self.init(x)]
        for stage in (self.down0, self.down1, self.down2, self.down3):
            outs.append(stage(outs[-1]))
        return outs

    def forward(self, x: Tensor) -> Tensor:
        """Return the ``down3`` feature map of ``x``."""
        return self.stages(x)[-1]

    def code_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        """``(128, d, h, w)`` for volumes of shape ``(D, H, W)``."""
        shape = check_input_shape(input_shape, steps=_STEPS, where=type(self).__name__)
        _check_sizes(shape, type(self).__name__)
        return (self.out_channels, *level_sizes(shape, _STEPS, rule=_ceil_half)[-1])

    def layer_groups(self) -> list[nn.Module]:
        """``init``, ``down0``, ``down1``, ``down2``, ``down3``."""
        return [self.init, self.down0, self.down1, self.down2, self.down3]

    def num_parameters(self, *, trainable_only: bool = False) -> int:
        """Number of parameters."""
        return count_parameters(self, trainable_only=trainable_only)


def deepbet_encoder() -> DeepbetEncoder:
    """A randomly initialised :class:`DeepbetEncoder` (the registry's builder)."""
    return DeepbetEncoder()


class DeepbetNet(nn.Module):
    """deepbet's whole network: encoder, LinkNet decoder and a 2-class softmax.

    ``forward`` returns ``(N, 2, D, H, W)`` probabilities (channel 1: brain).
    The parameters are those of deepbet's archive with the encoder's under
    ``encoder.``. ``D``, ``H`` and ``W`` must be multiples of 32.
    """

    def __init__(self) -> None:
        super().__init__()
        c = DEEPBET_CHANNELS
        self.encoder = DeepbetEncoder()
        self.up0 = _UpBlock(c[4], c[3], stride=2)
        self.up1 = _UpBlock(c[3], c[2], stride=2)
        self.up2 = _UpBlock(c[2], c[1], stride=2)
        self.up3 = _UpBlock(c[1], c[0], stride=1)
        self.tp_conv1 = nn.Sequential(
            nn.ConvTranspose3d(c[0], 8, 3, stride=2, padding=1, output_padding=1),
            _norm(8),
            nn.ReLU(),
        )
        self.conv = nn.Sequential(nn.Conv3d(8, 8, 3, padding=1), _norm(8), nn.ReLU())
        self.tp_conv2 = nn.ConvTranspose3d(8, 2, 2, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        """Return the class probabilities (background, brain) of every voxel."""
        bad = [int(s) for s in x.shape[2:] if int(s) % 32]
        if x.dim() == 5 and bad:
            raise ValueError(
                f"DeepbetNet: input sizes must be multiples of 32, got {tuple(x.shape[2:])}"
            )
        e0, d0, d1, d2, d3 = self.encoder.stages(x)
        h = self.up0(d3) + d2
        h = self.up1(h) + d1
        h = self.up2(h) + d0
        h = self.up3(h) + e0
        return torch.softmax(self.tp_conv2(self.conv(self.tp_conv1(h))), dim=1)

    def num_parameters(self, *, trainable_only: bool = False) -> int:
        """Number of parameters."""
        return count_parameters(self, trainable_only=trainable_only)
