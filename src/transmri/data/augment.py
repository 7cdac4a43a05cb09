"""Random augmentation of training volumes with MONAI random transforms.

Applied to the train split only. Volumes arrive in RAS order after
preprocessing, so the first spatial axis is left-right: the random flip
mirrors the hemispheres (turn it off, ``flip_prob=0``, when the task is
lateralised).

Example:
    >>> augment = build_augmentation(AugmentConfig.preset("standard"), seed=0)
    >>> import torch
    >>> augment(torch.rand(1, 16, 16, 16)).shape
    torch.Size([1, 16, 16, 16])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from transmri._validation import (
    check_choice,
    check_config_keys,
    check_fraction,
    check_positive_float,
    number_pair,
)
from transmri.errors import ConfigError

if TYPE_CHECKING:
    from monai.transforms import Compose

__all__ = ["AUGMENT_PRESETS", "AugmentConfig", "Augmentation", "build_augmentation"]


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of the random augmentations (default: none).

    Args:
        flip_prob: probability of a left-right flip.
        affine_prob: probability of a random rotation + scaling.
        rotate_range: largest rotation about each axis, in degrees (0-180).
        scale_range: largest relative zoom, e.g. 0.1 for factors in [0.9, 1.1].
        bias_field_prob: probability of a smooth multiplicative bias field.
        noise_prob: probability of additive Gaussian noise.
        noise_std: largest standard deviation of that noise (intensity units).
        gamma_prob: probability of a random gamma (contrast) change.
        gamma_range: ``(low, high)`` of the gamma exponent, ``0 < low <= high``.

    Raises:
        ConfigError: naming the field, what was expected and what was found.

    Example:
        >>> AugmentConfig.preset("light").flip_prob
        0.5
    """

    flip_prob: float = 0.0
    affine_prob: float = 0.0
    rotate_range: float = 0.0
    scale_range: float = 0.0
    bias_field_prob: float = 0.0
    noise_prob: float = 0.0
    noise_std: float = 0.0
    gamma_prob: float = 0.0
    gamma_range: tuple[float, float] = (1.0, 1.0)

    def __post_init__(self) -> None:
        for name in ("flip_prob", "affine_prob", "bias_field_prob", "noise_prob", "gamma_prob"):
            object.__setattr__(
                self, name, check_fraction(name, getattr(self, name), inclusive=True)
            )
        rotate = check_positive_float("rotate_range", self.rotate_range, allow_zero=True)
        if rotate > 180:
            raise ConfigError(f"rotate_range: expected degrees in [0, 180], got {rotate!r}")
        object.__setattr__(self, "rotate_range", rotate)
        scale = check_positive_float("scale_range", self.scale_range, allow_zero=True)
        if scale >= 1:
            raise ConfigError(f"scale_range: expected a fraction in [0, 1), got {scale!r}")
        object.__setattr__(self, "scale_range", scale)
        object.__setattr__(
            self, "noise_std", check_positive_float("noise_std", self.noise_std, allow_zero=True)
        )
        object.__setattr__(self, "gamma_range", _check_gamma(self.gamma_range))

    @classmethod
    def preset(cls, name: str) -> AugmentConfig:
        """One of the named settings in :data:`AUGMENT_PRESETS`.

        ``"none"`` does nothing; ``"light"`` flips and slightly rotates/zooms;
        ``"standard"`` adds bias field, noise and gamma.
        """
        check_choice("augmentation preset", name, tuple(AUGMENT_PRESETS))
        return AUGMENT_PRESETS[name]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (tuples become lists)."""
        out = asdict(self)
        out["gamma_range"] = list(self.gamma_range)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AugmentConfig:
        """Rebuild a config from :meth:`to_dict`'s output.

        Raises:
            ConfigError: an unknown key (naming it and the known ones) or a bad value.
        """
        values = check_config_keys("augmentation", data, cls)
        if isinstance(values.get("gamma_range"), list):
            values["gamma_range"] = tuple(values["gamma_range"])
        return cls(**values)

    @property
    def is_identity(self) -> bool:
        """Whether no transform can ever fire."""
        return not any(
            (
                self.flip_prob,
                self.affine_prob and (self.rotate_range or self.scale_range),
                self.bias_field_prob,
                self.noise_prob and self.noise_std,
                self.gamma_prob and self.gamma_range != (1.0, 1.0),
            )
        )


def _check_gamma(value: object) -> tuple[float, float]:
    pair = number_pair(value)
    if pair is None or not 0 < pair[0] <= pair[1]:
        raise ConfigError(f"gamma_range: expected (low, high) with 0 < low <= high, got {value!r}")
    return pair


AUGMENT_PRESETS: dict[str, AugmentConfig] = {
    "none": AugmentConfig(),
    "light": AugmentConfig(flip_prob=0.5, affine_prob=0.3, rotate_range=5.0, scale_range=0.05),
    "standard": AugmentConfig(
        flip_prob=0.5,
        affine_prob=0.5,
        rotate_range=10.0,
        scale_range=0.1,
        bias_field_prob=0.3,
        noise_prob=0.2,
        noise_std=0.03,
        gamma_prob=0.3,
        gamma_range=(0.7, 1.5),
    ),
}
"""The named settings of :meth:`AugmentConfig.preset`."""


class Augmentation:
    """A seeded chain of MONAI random transforms; call it on one volume.

    Build it with :func:`build_augmentation`. It has MONAI's
    ``set_random_state``, so ``monai.data.DataLoader`` (or a
    ``worker_init_fn`` calling ``monai.data.utils.set_rnd``) gives every
    worker its own stream.
    """

    def __init__(self, config: AugmentConfig, transforms: list[Callable[..., Any]]) -> None:
        from monai.transforms import Compose

        self.config = config
        self._compose: Compose = Compose(transforms)

    def __repr__(self) -> str:
        names = [type(t).__name__ for t in self._compose.transforms]
        return f"Augmentation({', '.join(names) or 'identity'})"

    def set_random_state(
        self, seed: int | None = None, state: np.random.RandomState | None = None
    ) -> Augmentation:
        """Reseed every random transform (reproducible streams)."""
        self._compose.set_random_state(seed=seed, state=state)
        return self

    def __call__(self, volume: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Augment one channel-first volume.

        Args:
            volume: shape (C, D, H, W), any real dtype (e.g. a float16 memmap).

        Returns:
            A new float32 tensor of the same shape (the input is not changed).

        Raises:
            ValueError: the input is not 4D (C, D, H, W).
        """
        if isinstance(volume, torch.Tensor):
            tensor = volume.detach().to(torch.float32, copy=True)
        else:
            tensor = torch.from_numpy(np.array(volume, dtype=np.float32, copy=True))
        if tensor.ndim != 4:
            raise ValueError(
                f"augmentation: expected a channel-first volume (C, D, H, W), "
                f"got shape {tuple(tensor.shape)}"
            )
        out = self._compose(tensor)
        # A MetaTensor is a torch.Tensor subclass: drop its metadata.
        return out.as_subclass(torch.Tensor).to(torch.float32).contiguous()


def build_augmentation(config: AugmentConfig, *, seed: int | None = 0) -> Augmentation:
    """The random augmentation described by ``config``, as a callable.

    Transforms whose probability is 0 are left out, so the ``"none"`` preset
    returns its input (as a float32 copy) unchanged.

    Args:
        config: probabilities and ranges.
        seed: seed of the random stream (``None``: from the OS, not reproducible).

    Returns:
        An :class:`Augmentation` mapping a (C, D, H, W) array or tensor to a
        float32 tensor of the same shape.

    Example:
        >>> augment = build_augmentation(AugmentConfig.preset("light"), seed=1)
        >>> augment(np.ones((1, 8, 8, 8), np.float16)).dtype
        torch.float32
    """
    if not isinstance(config, AugmentConfig):
        raise TypeError(f"config: expected an AugmentConfig, got {type(config).__name__}")
    # MONAI takes seconds to import: load it only when an augmentation is built.
    from monai.transforms import (
        RandAdjustContrast,
        RandAffine,
        RandBiasField,
        RandFlip,
        RandGaussianNoise,
    )

    transforms: list[Callable[..., Any]] = []
    if config.flip_prob > 0:
        transforms.append(RandFlip(prob=config.flip_prob, spatial_axis=0))
    if config.affine_prob > 0 and (config.rotate_range > 0 or config.scale_range > 0):
        angle = math.radians(config.rotate_range)
        transforms.append(
            RandAffine(
                prob=config.affine_prob,
                rotate_range=(angle, angle, angle),
                scale_range=(config.scale_range,) * 3,
                mode="bilinear",
                padding_mode="zeros",
            )
        )
    if config.bias_field_prob > 0:
        transforms.append(RandBiasField(prob=config.bias_field_prob, coeff_range=(0.0, 0.1)))
    if config.gamma_prob > 0 and config.gamma_range != (1.0, 1.0):
        transforms.append(RandAdjustContrast(prob=config.gamma_prob, gamma=config.gamma_range))
    if config.noise_prob > 0 and config.noise_std > 0:
        transforms.append(RandGaussianNoise(prob=config.noise_prob, std=config.noise_std))
    return Augmentation(config, transforms).set_random_state(seed=seed)
