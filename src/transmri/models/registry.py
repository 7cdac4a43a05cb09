"""Rebuild any model from its ``config``: a plain dict of names to builders, no exec.

Every model's ``config`` property returns ``{"name": <registry name>,
**options}`` (JSON-able); :func:`build_model` maps it back to a fresh,
randomly initialised module of the same architecture. Nested models (a
classifier's encoder, a multi-task model's autoencoder) are configs inside
the config.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import nn

from transmri.errors import ConfigError
from transmri.models.backbones import densenet121_encoder, resnet10_encoder, resnet18_encoder
from transmri.models.cae import ConvAutoEncoder
from transmri.models.classifier import EncoderClassifier
from transmri.models.conv import ConvEncoder
from transmri.models.deepbet import deepbet_encoder
from transmri.models.medicalnet import medicalnet_encoder
from transmri.models.multitask import MultiTaskAutoEncoder
from transmri.models.projection import ContrastiveModel
from transmri.models.sfcn import sfcn_encoder
from transmri.models.strided import StridedConvAutoEncoder, StridedEncoder
from transmri.models.vae import VariationalAutoEncoder, VariationalEncoder

__all__ = ["available_models", "build_model"]


def _build_classifier(
    *,
    encoder: Mapping[str, Any],
    num_classes: int,
    head: str = "gap",
    dropout: float = 0.0,
    input_shape: Sequence[int] | None = None,
    hidden: int = 0,
    norm: str = "none",
) -> EncoderClassifier:
    # A config without "norm" was written before the option: its head has none.
    return EncoderClassifier.from_config(
        encoder,
        num_classes,
        head=head,
        dropout=dropout,
        input_shape=input_shape,
        hidden=hidden,
        norm=norm,
    )


def _build_mixed(
    *,
    autoencoder: Mapping[str, Any],
    num_classes: int = 0,
    regression_targets: Sequence[str] = (),
    classification_targets: Mapping[str, int] | None = None,
    head: str = "gap",
    dropout: float = 0.0,
    input_shape: Sequence[int] | None = None,
    hidden: int = 0,
) -> MultiTaskAutoEncoder:
    return MultiTaskAutoEncoder(
        build_model(autoencoder),
        num_classes=num_classes,
        regression_targets=regression_targets,
        classification_targets=classification_targets,
        head=head,
        dropout=dropout,
        input_shape=input_shape,
        hidden=hidden,
    )


def _build_contrastive(
    *,
    encoder: Mapping[str, Any],
    projection_dim: int = 64,
    hidden_dim: int | None = None,
    input_shape: Sequence[int] | None = None,
) -> ContrastiveModel:
    built = build_model(encoder)
    return ContrastiveModel(
        getattr(built, "encoder", built),
        projection_dim=projection_dim,
        hidden_dim=hidden_dim,
        input_shape=input_shape,
    )


_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "cae": ConvAutoEncoder,
    "cae_encoder": ConvEncoder,
    "srcae": StridedConvAutoEncoder,
    "srcae_encoder": StridedEncoder,
    "vae": VariationalAutoEncoder,
    "vae_encoder": VariationalEncoder,
    "classifier": _build_classifier,
    "mixed": _build_mixed,
    "contrastive": _build_contrastive,
    "resnet10": resnet10_encoder,
    "resnet18": resnet18_encoder,
    "densenet121": densenet121_encoder,
    "deepbet_encoder": deepbet_encoder,
    "medicalnet_resnet": medicalnet_encoder,
    "sfcn_encoder": sfcn_encoder,
}


def available_models() -> list[str]:
    """The names :func:`build_model` knows, sorted."""
    return sorted(_BUILDERS)


def build_model(config: Mapping[str, Any]) -> nn.Module:
    """Build a fresh model from ``{"name": ..., **options}`` (a model's ``config``).

    Args:
        config: a mapping with a ``"name"`` from :func:`available_models` and
            that model's keyword options (lists are accepted for tuples, so a
            config read back from JSON works).

    Raises:
        ConfigError: unknown name, unknown option, or an invalid option value.

    Example:
        >>> model = build_model({"name": "cae", "channels": [8, 16, 32, 16]})
        >>> build_model(model.config).config == model.config
        True
    """
    if not isinstance(config, Mapping):
        raise ConfigError(f"model config: expected a mapping with a 'name', got {config!r}")
    name = config.get("name")
    if name not in _BUILDERS:
        known = ", ".join(repr(n) for n in available_models())
        raise ConfigError(f"model config 'name': expected one of {known}, got {name!r}")
    builder = _BUILDERS[name]
    options = {k: v for k, v in config.items() if k != "name"}
    accepted = [
        p.name
        for p in inspect.signature(builder).parameters.values()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(
            f"model config for {name!r}: unknown option(s) {', '.join(map(repr, unknown))}; "
            f"expected some of {', '.join(map(repr, accepted))}"
        )
    return builder(**options)
