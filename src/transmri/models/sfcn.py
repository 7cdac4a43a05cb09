"""SFCN (Peng et al. 2021, "Accurate brain age prediction with lightweight deep neural networks").

The feature extractor of ``dp_model/model_files/sfcn.py``
(ha-ha-ha-han/UKBiobank_deep_pretrain) as a plain PyTorch encoder, with
the same parameter names (``feature_extractor.conv_0.0.weight``, ...), so
the published UK Biobank state dicts load one to one once the ``module.``
prefixes of ``DataParallel`` are stripped
(:func:`transmri.pretrained.import_sfcn`):

- ``conv_0``-``conv_4``: 3^3 conv (padding 1, with bias), batch norm,
  2^3 max-pool of stride 2, ReLU (in that order);
- ``conv_5``: 1^3 conv, batch norm, ReLU (no pool).

The brain-age network has channels 32, 64, 128, 256, 256, 64; the sex
network 28, 58, 128, 256, 256, 64. The original's classifier (a 5x6x5
average pool, dropout and a 1^3 conv to 40 age bins or 2 sexes) is not
part of the encoder. Each spatial size is halved (rounding down) 5 times:
160x192x160 inputs (1 mm MNI152, cropped) give a ``(64, 5, 6, 5)`` code.

Example:
    >>> SFCNEncoder().code_shape((160, 192, 160))
    (64, 5, 6, 5)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from transmri.models._shapes import check_channels, check_input, check_input_shape, level_sizes
from transmri.models.protocol import count_parameters

__all__ = ["SFCN_AGE_CHANNELS", "SFCN_SEX_CHANNELS", "SFCNEncoder", "sfcn_encoder"]

#: Channels of the published brain-age network.
SFCN_AGE_CHANNELS: tuple[int, ...] = (32, 64, 128, 256, 256, 64)
#: Channels of the published sex-classification network.
SFCN_SEX_CHANNELS: tuple[int, ...] = (28, 58, 128, 256, 256, 64)
_STEPS = 5


def _block(in_channels: int, out_channels: int, *, pool: bool) -> nn.Sequential:
    if pool:
        return nn.Sequential(
            nn.Conv3d(in_channels, out_channels, 3, padding=1),
            nn.BatchNorm3d(out_channels),
            nn.MaxPool3d(2, stride=2),
            nn.ReLU(),
        )
    return nn.Sequential(
        nn.Conv3d(in_channels, out_channels, 1, padding=0),
        nn.BatchNorm3d(out_channels),
        nn.ReLU(),
    )


class SFCNEncoder(nn.Module):
    """SFCN's feature extractor: six conv blocks, the last one 1^3 without pooling.

    ``forward`` returns the ``conv_5`` map ``(N, C[-1], D//32, H//32, W//32)``
    (not pooled). Weights start random;
    :func:`transmri.pretrained.import_sfcn` gives the UK Biobank ones. SFCN
    was trained on brain-extracted T1w scans linearly registered to MNI152
    at 1 mm, centre-cropped to 160x192x160, each divided by its mean.

    Args:
        channels: the six blocks' output channels (default: the brain-age
            network's, :data:`SFCN_AGE_CHANNELS`).

    Example:
        >>> enc = SFCNEncoder(channels=SFCN_SEX_CHANNELS)
        >>> len(enc.layer_groups()), enc.out_channels
        (6, 64)
    """

    def __init__(self, *, channels: Sequence[int] = SFCN_AGE_CHANNELS) -> None:
        super().__init__()
        self.channels = check_channels("channels", channels, length=_STEPS + 1)
        self.feature_extractor = nn.Sequential()
        previous = 1
        for i, out in enumerate(self.channels):
            self.feature_extractor.add_module(f"conv_{i}", _block(previous, out, pool=i < _STEPS))
            previous = out
        self.out_channels = self.channels[-1]

    @property
    def config(self) -> dict[str, Any]:
        """``{"name": "sfcn_encoder", "channels": [...]}``."""
        return {"name": "sfcn_encoder", "channels": list(self.channels)}

    def forward(self, x: Tensor) -> Tensor:
        """Return the ``conv_5`` feature map of ``x``."""
        check_input(x, steps=_STEPS, where=type(self).__name__)
        out: Tensor = self.feature_extractor(x)
        return out

    def code_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        """``(C[-1], D // 32, H // 32, W // 32)`` for volumes of shape ``(D, H, W)``."""
        shape = check_input_shape(input_shape, steps=_STEPS, where=type(self).__name__)
        return (self.out_channels, *level_sizes(shape, _STEPS)[-1])

    def layer_groups(self) -> list[nn.Module]:
        """``conv_0``-``conv_5``."""
        return list(self.feature_extractor.children())

    def num_parameters(self, *, trainable_only: bool = False) -> int:
        """Number of parameters."""
        return count_parameters(self, trainable_only=trainable_only)


def sfcn_encoder(*, channels: Sequence[int] = SFCN_AGE_CHANNELS) -> SFCNEncoder:
    """A randomly initialised :class:`SFCNEncoder` (registry name ``"sfcn_encoder"``)."""
    return SFCNEncoder(channels=channels)
