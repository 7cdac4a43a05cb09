"""Stronger encoders: MONAI's 3D ResNet-10/18 and DenseNet-121 behind the encoder protocol.

Each wrapper keeps MONAI's feature extractor and drops its classifier, so
``forward``/``encode`` returns the **last feature map** ``(N, C, d, h, w)``
(not pooled): :class:`~transmri.models.EncoderClassifier` with ``head="gap"``
pools it, and the maps stay available for visualisation. MONAI is imported
inside the constructors, so importing :mod:`transmri.models` stays cheap.

Weights start random (Kaiming, MONAI's initialisation): nothing is downloaded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from transmri._validation import check_choice, check_fraction
from transmri.models._shapes import check_input, check_input_shape, level_sizes
from transmri.models.protocol import count_parameters

__all__ = [
    "DenseNetEncoder",
    "ResNetEncoder",
    "densenet121_encoder",
    "resnet10_encoder",
    "resnet18_encoder",
]


def _ceil_half(n: int) -> int:
    return math.ceil(n / 2)


class ResNetEncoder(nn.Module):
    """MONAI 3D ResNet (basic blocks) without its pooling and linear layer.

    The code is the ``layer4`` output: 512 channels, each spatial size
    halved (rounding up) 4 times, or 5 with ``first_stride=2``.

    Args:
        depth: 10 or 18.
        first_stride: stride of the first 7x7x7 convolution (2 saves memory
            on 108x128x108 volumes; MONAI's default is 1).

    Example:
        >>> resnet10_encoder().code_shape((108, 128, 108))
        (512, 4, 4, 4)
    """

    def __init__(self, *, depth: int = 10, first_stride: int = 2) -> None:
        super().__init__()
        from monai.networks.nets import resnet

        self.depth = check_choice("depth", depth, (10, 18))
        self.first_stride = check_choice("first_stride", first_stride, (1, 2))
        factory = resnet.resnet10 if depth == 10 else resnet.resnet18
        net = factory(
            spatial_dims=3, n_input_channels=1, conv1_t_stride=first_stride, feed_forward=False
        )
        self.stem = nn.Sequential(net.conv1, net.bn1, net.act, net.maxpool)
        self.layer1 = net.layer1
        self.layer2 = net.layer2
        self.layer3 = net.layer3
        self.layer4 = net.layer4
        self.out_channels = 512

    @property
    def config(self) -> dict[str, Any]:
        """``{"name": "resnet10"|"resnet18", "first_stride": ...}``."""
        return {"name": f"resnet{self.depth}", "first_stride": self.first_stride}

    def forward(self, x: Tensor) -> Tensor:
        """Return the ``layer4`` feature map of ``x``."""
        check_input(x, steps=0, where=type(self).__name__)
        h = self.stem(x)
        h = self.layer2(self.layer1(h))
        out: Tensor = self.layer4(self.layer3(h))
        return out

    def code_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        """``(512, d, h, w)`` for volumes of shape ``(D, H, W)``."""
        shape = check_input_shape(input_shape, steps=0, where=type(self).__name__)
        steps = 4 if self.first_stride == 1 else 5
        return (self.out_channels, *level_sizes(shape, steps, rule=_ceil_half)[-1])

    def layer_groups(self) -> list[nn.Module]:
        """Stem, layer1, layer2, layer3, layer4."""
        return [self.stem, self.layer1, self.layer2, self.layer3, self.layer4]

    def num_parameters(self, *, trainable_only: bool = False) -> int:
        """Number of parameters."""
        return count_parameters(self, trainable_only=trainable_only)


class DenseNetEncoder(nn.Module):
    """MONAI 3D DenseNet-121 features (plus the final ReLU), without its classifier.

    The code has 1024 channels; each spatial size is halved 5 times (twice
    rounding up, then three times rounding down), so inputs need at least
    32 voxels along each axis.

    Args:
        dropout: dropout probability after each dense layer.

    Example:
        >>> densenet121_encoder().code_shape((108, 128, 108))
        (1024, 3, 4, 3)
    """

    _STEPS = 5

    def __init__(self, *, dropout: float = 0.0) -> None:
        super().__init__()
        from monai.networks.nets import DenseNet121

        self.dropout = check_fraction("dropout", dropout, inclusive=True)
        net = DenseNet121(spatial_dims=3, in_channels=1, out_channels=1, dropout_prob=dropout)
        self.features = net.features
        self.act = nn.ReLU()
        self.out_channels = 1024

    @property
    def config(self) -> dict[str, Any]:
        """``{"name": "densenet121", "dropout": ...}``."""
        return {"name": "densenet121", "dropout": self.dropout}

    def forward(self, x: Tensor) -> Tensor:
        """Return the final feature map of ``x``."""
        check_input(x, steps=self._STEPS, where=type(self).__name__)
        out: Tensor = self.act(self.features(x))
        return out

    def code_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        """``(1024, d, h, w)`` for volumes of shape ``(D, H, W)``."""
        shape = check_input_shape(input_shape, steps=self._STEPS, where=type(self).__name__)
        stem = level_sizes(shape, 2, rule=_ceil_half)[-1]
        return (self.out_channels, *level_sizes(stem, 3)[-1])

    def layer_groups(self) -> list[nn.Module]:
        """Stem, then each dense block with its transition (the last with its norm)."""
        f = self.features
        stem = nn.ModuleList(f.get_submodule(n) for n in ("conv0", "norm0", "relu0", "pool0"))
        groups: list[nn.Module] = [stem]
        for i in range(1, 4):
            block, transition = f.get_submodule(f"denseblock{i}"), f.get_submodule(f"transition{i}")
            groups.append(nn.ModuleList([block, transition]))
        groups.append(nn.ModuleList([f.get_submodule("denseblock4"), f.get_submodule("norm5")]))
        return groups

    def num_parameters(self, *, trainable_only: bool = False) -> int:
        """Number of parameters."""
        return count_parameters(self, trainable_only=trainable_only)


def resnet10_encoder(*, first_stride: int = 2) -> ResNetEncoder:
    """A MONAI 3D ResNet-10 encoder (registry name ``"resnet10"``)."""
    return ResNetEncoder(depth=10, first_stride=first_stride)


def resnet18_encoder(*, first_stride: int = 2) -> ResNetEncoder:
    """A MONAI 3D ResNet-18 encoder (registry name ``"resnet18"``)."""
    return ResNetEncoder(depth=18, first_stride=first_stride)


def densenet121_encoder(*, dropout: float = 0.0) -> DenseNetEncoder:
    """A MONAI 3D DenseNet-121 encoder (registry name ``"densenet121"``)."""
    return DenseNetEncoder(dropout=dropout)
