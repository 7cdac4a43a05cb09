"""MedicalNet's 3D ResNets (Chen et al. 2019, "Med3D") as plain PyTorch encoders.

The layout follows MedicalNet's ``models/resnet.py`` (Tencent/MedicalNet),
so its checkpoints load one to one once the ``module.`` prefixes of
``DataParallel`` are stripped (:func:`transmri.pretrained.import_medicalnet`):

- ``conv1`` (7^3, stride 2, padding 3, one input channel, no bias), ``bn1``,
  ReLU and a 3^3 max-pool of stride 2;
- ``layer1``-``layer4`` (64, 128, 256, 512 planes; x4 for the bottleneck
  blocks of ResNet-50): ``layer2`` strides 2, ``layer3`` and ``layer4``
  keep the resolution (stride 1) and dilate their 3^3 convolutions by 2
  and 4 (MONAI's ``resnet`` strides 2 there instead: its features differ,
  though the parameter names and shapes are the same);
- shortcuts where the shape changes: ``"B"`` a 1^3 conv (no bias) + batch
  norm (``downsample.0`` / ``downsample.1``), ``"A"`` parameter-free (a
  strided average pool of kernel 1 and zero channels). MedicalNet's
  ResNet-10 and -50 were trained with ``"B"``, ResNet-18 and -34 with
  ``"A"`` (their checkpoints have no ``downsample`` tensors; MONAI's
  ``get_medicalnet_pretrained_resnet_args`` says the same);
- MedicalNet's segmentation head (``conv_seg``) is not part of the encoder.

The code is the ``layer4`` map: 512 channels (2048 for ResNet-50), each
spatial size divided by 8 (rounding up).

Example:
    >>> MedicalNetEncoder(depth=10).code_shape((32, 32, 32))
    (512, 4, 4, 4)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from transmri._validation import check_choice
from transmri.models._shapes import check_input, check_input_shape, level_sizes
from transmri.models.protocol import count_parameters

__all__ = [
    "MEDICALNET_BLOCKS",
    "MEDICALNET_DEPTHS",
    "MEDICALNET_SHORTCUTS",
    "MedicalNetEncoder",
    "medicalnet_encoder",
]

#: Blocks per layer and block kind of each depth (MedicalNet's ``resnet10``-``resnet50``).
MEDICALNET_BLOCKS: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    10: ("basic", (1, 1, 1, 1)),
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
}
MEDICALNET_DEPTHS: tuple[int, ...] = tuple(MEDICALNET_BLOCKS)
#: The shortcut type each of MedicalNet's published checkpoints was trained with.
MEDICALNET_SHORTCUTS: dict[int, str] = {10: "B", 18: "A", 34: "A", 50: "B"}
_PLANES = (64, 128, 256, 512)
_STRIDES = (1, 2, 1, 1)
_DILATIONS = (1, 1, 2, 4)


def _ceil_half(n: int) -> int:
    return math.ceil(n / 2)


class _ZeroPadShortcut(nn.Module):
    """Shortcut ``"A"``: subsample by ``stride`` and append zero channels (no parameters)."""

    def __init__(self, out_channels: int, stride: int) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        out = nn.functional.avg_pool3d(x, kernel_size=1, stride=self.stride)
        pad = out.new_zeros((out.shape[0], self.out_channels - out.shape[1], *out.shape[2:]))
        return torch.cat([out, pad], dim=1)


def _shortcut(kind: str, in_channels: int, out_channels: int, stride: int) -> nn.Module:
    if kind == "A":
        return _ZeroPadShortcut(out_channels, stride)
    return nn.Sequential(
        nn.Conv3d(in_channels, out_channels, 1, stride=stride, bias=False),
        nn.BatchNorm3d(out_channels),
    )


def _conv3(in_channels: int, out_channels: int, *, stride: int = 1, dilation: int = 1) -> nn.Conv3d:
    return nn.Conv3d(
        in_channels,
        out_channels,
        3,
        stride=stride,
        padding=dilation,
        dilation=dilation,
        bias=False,
    )


class _BasicBlock(nn.Module):
    expansion = 1

    def __init__(
        self,
        in_channels: int,
        planes: int,
        *,
        stride: int,
        dilation: int,
        downsample: nn.Module | None,
    ) -> None:
        super().__init__()
        self.conv1 = _conv3(in_channels, planes, stride=stride, dilation=dilation)
        self.bn1 = nn.BatchNorm3d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3(planes, planes, dilation=dilation)
        self.bn2 = nn.BatchNorm3d(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        result: Tensor = self.relu(out + residual)
        return result


class _Bottleneck(nn.Module):
    expansion = 4

    def __init__(
        self,
        in_channels: int,
        planes: int,
        *,
        stride: int,
        dilation: int,
        downsample: nn.Module | None,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = _conv3(planes, planes, stride=stride, dilation=dilation)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = nn.Conv3d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm3d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        result: Tensor = self.relu(out + residual)
        return result


class _Stem(nn.Module):
    """``conv1``, ``bn1``, ReLU, max-pool as one layer group.

    Not registered as a child of the encoder, so the encoder's state dict
    keeps MedicalNet's top-level names (``conv1.weight``, ``bn1.weight``).
    """

    def __init__(self, conv1: nn.Conv3d, bn1: nn.BatchNorm3d) -> None:
        super().__init__()
        self.conv1 = conv1
        self.bn1 = bn1
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d(3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return out


class MedicalNetEncoder(nn.Module):
    """MedicalNet's 3D ResNet-10/18/34/50 without its segmentation head.

    ``forward`` returns the ``layer4`` map ``(N, C, d, h, w)``, not pooled
    (``C`` = 512, or 2048 for depth 50; ``d = ceil(D / 8)``). Weights start
    random; :func:`transmri.pretrained.import_medicalnet` gives MedicalNet's.
    MedicalNet normalised each volume by the mean and standard deviation of
    its nonzero voxels.

    Args:
        depth: 10, 18, 34 or 50.
        shortcut: ``"A"`` (parameter-free) or ``"B"`` (1^3 conv + norm);
            ``None`` takes the one MedicalNet's checkpoint of that depth
            was trained with (:data:`MEDICALNET_SHORTCUTS`).

    Example:
        >>> enc = MedicalNetEncoder(depth=18)
        >>> enc.shortcut, len(enc.layer_groups())
        ('A', 5)
    """

    def __init__(self, *, depth: int = 10, shortcut: str | None = None) -> None:
        super().__init__()
        self.depth = check_choice("depth", depth, MEDICALNET_DEPTHS)
        self.shortcut = check_choice(
            "shortcut", MEDICALNET_SHORTCUTS[depth] if shortcut is None else shortcut, ("A", "B")
        )
        kind, blocks = MEDICALNET_BLOCKS[depth]
        block = _BasicBlock if kind == "basic" else _Bottleneck
        self.conv1 = nn.Conv3d(1, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm3d(64)
        # A plain attribute (not a child module): see _Stem.
        object.__setattr__(self, "_stem", _Stem(self.conv1, self.bn1))
        channels = 64
        layers = []
        for planes, count, stride, dilation in zip(_PLANES, blocks, _STRIDES, _DILATIONS):
            out_channels = planes * block.expansion
            downsample = None
            if stride != 1 or channels != out_channels:
                downsample = _shortcut(self.shortcut, channels, out_channels, stride)
            stage = [
                block(channels, planes, stride=stride, dilation=dilation, downsample=downsample)
            ]
            stage += [
                block(out_channels, planes, stride=1, dilation=dilation, downsample=None)
                for _ in range(1, count)
            ]
            layers.append(nn.Sequential(*stage))
            channels = out_channels
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.out_channels = channels
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
            elif isinstance(module, nn.BatchNorm3d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    @property
    def config(self) -> dict[str, Any]:
        """``{"name": "medicalnet_resnet", "depth": ..., "shortcut": ...}``."""
        return {"name": "medicalnet_resnet", "depth": self.depth, "shortcut": self.shortcut}

    def forward(self, x: Tensor) -> Tensor:
        """Return the ``layer4`` feature map of ``x``."""
        check_input(x, steps=0, where=type(self).__name__)
        stem: _Stem = self.__dict__["_stem"]
        h = self.layer2(self.layer1(stem(x)))
        out: Tensor = self.layer4(self.layer3(h))
        return out

    def code_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        """``(C, d, h, w)`` for volumes of shape ``(D, H, W)``."""
        shape = check_input_shape(input_shape, steps=0, where=type(self).__name__)
        return (self.out_channels, *level_sizes(shape, 3, rule=_ceil_half)[-1])

    def layer_groups(self) -> list[nn.Module]:
        """The stem (``conv1``, ``bn1``, ReLU, max-pool), then ``layer1``-``layer4``."""
        return [self.__dict__["_stem"], self.layer1, self.layer2, self.layer3, self.layer4]

    def num_parameters(self, *, trainable_only: bool = False) -> int:
        """Number of parameters."""
        return count_parameters(self, trainable_only=trainable_only)


def medicalnet_encoder(*, depth: int = 10, shortcut: str | None = None) -> MedicalNetEncoder:
    """A randomly initialised :class:`MedicalNetEncoder` (registry name ``"medicalnet_resnet"``)."""
    return MedicalNetEncoder(depth=depth, shortcut=shortcut)
