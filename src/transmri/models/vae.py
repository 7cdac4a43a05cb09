"""A variational autoencoder built on the CAE encoder family, and its KL term."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from transmri._validation import check_positive_int
from transmri.models._autoencoder import AutoEncoderBase
from transmri.models._shapes import check_input
from transmri.models.conv import ConvDecoder, ConvEncoder, init_conv_weights
from transmri.models.protocol import count_parameters

__all__ = ["VariationalAutoEncoder", "VariationalEncoder", "kl_divergence"]

# exp(logvar) must stay finite in float16/float32 when a batch goes wrong.
_LOGVAR_RANGE = (-30.0, 20.0)


def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)), summed over the code, mean over the batch.

    Args:
        mu: means ``(N, ...)``.
        logvar: log-variances, same shape as ``mu``.

    Returns:
        A scalar tensor, >= 0.

    Example:
        >>> float(kl_divergence(torch.ones(2, 4), torch.zeros(2, 4)))  # 0.5 per element
        2.0
    """
    if mu.shape != logvar.shape:
        raise ValueError(
            f"kl_divergence: expected mu and logvar of the same shape, got "
            f"{tuple(mu.shape)} and {tuple(logvar.shape)}"
        )
    logvar = logvar.clamp(*_LOGVAR_RANGE)
    per_element = 1 + logvar - mu.pow(2) - logvar.exp()
    return -0.5 * per_element.flatten(1).sum(1).mean()


class VariationalEncoder(nn.Module):
    """CAE encoder plus 1x1x1 conv heads for the mean and the log-variance.

    ``forward`` returns the mean (the code used for transfer);
    :meth:`distribution` returns the mean, the log-variance and the pre-pool
    sizes the decoder needs.

    Args:
        channels: feature maps of the encoder convs.
        activation: ``"relu"`` or ``"elu"``.
        norm: ``None``, ``"batch"`` or ``"group"``.
        latent_channels: channels of mu/logvar (default ``channels[-1]``).
    """

    def __init__(
        self,
        *,
        channels: Sequence[int] = (8, 16, 32, 16),
        activation: str = "relu",
        norm: str | None = None,
        latent_channels: int | None = None,
    ) -> None:
        super().__init__()
        self.body = ConvEncoder(channels=channels, activation=activation, norm=norm)
        width = self.body.out_channels
        self.latent_channels = width
        if latent_channels is not None:
            self.latent_channels = check_positive_int("latent_channels", latent_channels)
        self.mu = nn.Conv3d(width, self.latent_channels, 1)
        self.logvar = nn.Conv3d(width, self.latent_channels, 1)
        init_conv_weights(self.mu)
        # Start near unit variance so early KL terms are small.
        nn.init.zeros_(self.logvar.weight)
        nn.init.zeros_(self.logvar.bias)  # type: ignore[arg-type]

    @property
    def out_channels(self) -> int:
        """Channels of the code (the mean)."""
        return self.latent_channels

    @property
    def pooling_steps(self) -> int:
        """How many times each spatial size is halved."""
        return self.body.pooling_steps

    @property
    def config(self) -> dict[str, Any]:
        """``{"name": "vae_encoder", ...}`` for :func:`transmri.models.build_model`."""
        return {
            "name": "vae_encoder",
            **{k: v for k, v in self.body.config.items() if k != "name"},
            "latent_channels": self.latent_channels,
        }

    def distribution(self, x: Tensor) -> tuple[Tensor, Tensor, tuple[tuple[int, ...], ...]]:
        """Return ``(mu, logvar, sizes)`` for ``x``."""
        trace = self.body.trace(x)
        return self.mu(trace.code), self.logvar(trace.code), trace.sizes

    def forward(self, x: Tensor) -> Tensor:
        """Return the mean code of ``x``."""
        mu: Tensor = self.mu(self.body(x))
        return mu

    def code_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        """Per-sample shape of the mean code."""
        return (self.latent_channels, *self.body.code_shape(input_shape)[1:])

    def layer_groups(self) -> list[nn.Module]:
        """The conv blocks, then the mu/logvar heads."""
        return [*self.body.layer_groups(), nn.ModuleList([self.mu, self.logvar])]

    def num_parameters(self, *, trainable_only: bool = False) -> int:
        """Number of parameters."""
        return count_parameters(self, trainable_only=trainable_only)


class VariationalAutoEncoder(AutoEncoderBase):
    """VAE with the CAE encoder and a mirrored decoder using nearest upsampling.

    In training mode the decoder gets ``mu + eps * exp(logvar / 2)``; in eval
    mode it gets ``mu`` (deterministic). The decoder never sees pooling
    indices, so it can also decode codes drawn from the prior. Train with
    ``MSE(reconstruction, x) + beta * kl_divergence(mu, logvar)``.

    Args:
        channels: feature maps of the encoder convs.
        activation: ``"relu"`` or ``"elu"``.
        norm: ``None``, ``"batch"`` or ``"group"``.
        latent_channels: channels of the latent code (default ``channels[-1]``).

    Example:
        >>> vae = VariationalAutoEncoder().eval()
        >>> out = vae(torch.rand(1, 1, 16, 16, 16))
        >>> sorted(out)
        ['code', 'logvar', 'mu', 'reconstruction']
    """

    def __init__(
        self,
        *,
        channels: Sequence[int] = (8, 16, 32, 16),
        activation: str = "relu",
        norm: str | None = None,
        latent_channels: int | None = None,
    ) -> None:
        super().__init__()
        self.encoder = VariationalEncoder(
            channels=channels, activation=activation, norm=norm, latent_channels=latent_channels
        )
        self.decoder = ConvDecoder(
            channels=channels,
            activation=activation,
            norm=norm,
            in_channels=self.encoder.latent_channels,
            upsample="nearest",
        )

    @property
    def config(self) -> dict[str, Any]:
        """``{"name": "vae", ...}`` for :func:`transmri.models.build_model`."""
        return {**self.encoder.config, "name": "vae"}

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Return ``{"reconstruction", "mu", "logvar", "code"}``; ``code`` is ``mu``."""
        check_input(x, steps=self.encoder.pooling_steps, where=type(self).__name__)
        mu, logvar, sizes = self.encoder.distribution(x)
        if self.training:
            std = torch.exp(0.5 * logvar.clamp(*_LOGVAR_RANGE))
            z = mu + torch.randn_like(std) * std
        else:
            z = mu
        reconstruction = self.decoder(z, sizes=sizes)
        return {"reconstruction": reconstruction, "mu": mu, "logvar": logvar, "code": mu}
