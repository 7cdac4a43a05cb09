"""An encoder (pretrained or fresh) with a classification head: the fine-tuning model."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from torch import Tensor, nn

from transmri._validation import check_choice, check_positive_int
from transmri.errors import CheckpointError, ConfigError
from transmri.models._shapes import (
    check_input,
    encoder_code_shape,
    encoder_out_channels,
    optional_shape3d,
)
from transmri.models.heads import HEAD_KINDS, HEAD_NORMS, ClassifierHead
from transmri.models.protocol import count_parameters

__all__ = ["DEFAULT_HEAD_NORM", "EncoderClassifier", "EncoderLoadResult"]

#: The head's feature normalisation when ``norm=None`` is given, per head kind.
#:
#: Measured on the fine-tuning setting of ``tests/training/test_factories.py``
#: (CAE pretrained 4 epochs on 24 scans, fine-tuned 1 + 5 epochs on 40; 6
#: seeds; then 1 + 10 epochs, 5 seeds): epoch-to-epoch drops of the validation
#: AUC by more than 0.1 were 7 and 7 without normalisation (worst 0.60 and
#: 0.88), 0 with ``"batch"`` and 0 with ``"layer"``; mean validation AUC after
#: the first epoch 0.72 / 0.81 (none), 0.95 / 0.97 (batch), 0.90 / 0.96
#: (layer); test AUC at the selected epoch, mean (min) 0.97 (0.88) with
#: batch, 0.91 (0.60) with layer. Hence ``"batch"`` for the pooled head.
#: The ``"regional"`` head standardises its features the same way (its
#: features are averages too, with offsets that differ by layer).
DEFAULT_HEAD_NORM: dict[str, str] = {"gap": "batch", "flatten": "none", "regional": "batch"}


class EncoderLoadResult(NamedTuple):
    """Keys that did not line up when loading encoder weights.

    Attributes:
        missing_keys: encoder keys absent from the state dict (left as they were).
        unexpected_keys: state-dict keys the encoder does not have (ignored).
    """

    missing_keys: list[str]
    unexpected_keys: list[str]


def _format_keys(keys: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(repr(k) for k in keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


class EncoderClassifier(nn.Module):
    """Encoder + head: ``forward`` returns ``{"logits": (N, K), "code": ...}``.

    Args:
        encoder: the encoder module (its forward returns the code). Used as
            given, not copied.
        num_classes: number of classes ``K`` (>= 2; logits for a softmax).
        head: ``"gap"`` (global average pool + linear, the default) or
            ``"flatten"`` (the paper's flatten + linear; needs ``input_shape``).
        dropout: dropout probability before the linear layer(s).
        input_shape: the volume shape ``(D, H, W)``; needed for ``"flatten"``
            and for encoders without ``out_channels``.
        hidden: width of an optional hidden layer in the head; 0 for none.
        norm: the head's feature normalisation, ``"none"``, ``"batch"`` or
            ``"layer"`` (see :class:`~transmri.models.heads.ClassifierHead`);
            ``None`` picks :data:`DEFAULT_HEAD_NORM` of the head kind.

    Example:
        >>> from transmri.models import ConvAutoEncoder
        >>> clf = EncoderClassifier.from_autoencoder(ConvAutoEncoder(), 2)
        >>> clf.head.num_outputs
        2
    """

    def __init__(
        self,
        encoder: nn.Module,
        num_classes: int,
        *,
        head: str = "gap",
        dropout: float = 0.0,
        input_shape: Sequence[int] | None = None,
        hidden: int = 0,
        norm: str | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(encoder, nn.Module):
            raise TypeError(
                f"encoder: expected an nn.Module (build one from a config with "
                f"EncoderClassifier.from_config), got {type(encoder).__name__}"
            )
        check_choice("head", head, HEAD_KINDS)
        norm = DEFAULT_HEAD_NORM[head] if norm is None else check_choice("norm", norm, HEAD_NORMS)
        self.num_classes = check_positive_int("num_classes", num_classes, minimum=2)
        self.input_shape = optional_shape3d("input_shape", input_shape)
        if head == "flatten" and self.input_shape is None:
            raise ConfigError(
                "input_shape: expected the volume shape (D, H, W) for head='flatten' "
                "(the linear layer's size depends on it), got None"
            )
        if head == "flatten":
            code_shape = encoder_code_shape(encoder, self.input_shape)
        elif head == "regional":
            from transmri.models.features import regional_feature_size

            dry_run = self.input_shape or (32, 32, 32)  # the width does not depend on the shape
            code_shape = (regional_feature_size(encoder, dry_run),)
        else:
            code_shape = (encoder_out_channels(encoder, self.input_shape),)
        self.encoder = encoder
        self.head = ClassifierHead(
            code_shape, self.num_classes, kind=head, dropout=dropout, hidden=hidden, norm=norm
        )
        self._dropout = float(dropout)
        self._hidden = int(hidden)

    @classmethod
    def from_autoencoder(
        cls,
        autoencoder: nn.Module,
        num_classes: int,
        *,
        head: str = "gap",
        dropout: float = 0.0,
        input_shape: Sequence[int] | None = None,
        hidden: int = 0,
        norm: str | None = None,
    ) -> EncoderClassifier:
        """Build a classifier on a copy of ``autoencoder.encoder``.

        The encoder is deep-copied, so fine-tuning the classifier leaves the
        autoencoder unchanged.
        """
        encoder = getattr(autoencoder, "encoder", None)
        if not isinstance(encoder, nn.Module):
            raise TypeError(
                f"autoencoder: expected a model with an `encoder` module, got "
                f"{type(autoencoder).__name__}"
            )
        return cls(
            copy.deepcopy(encoder),
            num_classes,
            head=head,
            dropout=dropout,
            input_shape=input_shape,
            hidden=hidden,
            norm=norm,
        )

    @classmethod
    def from_config(
        cls,
        encoder_config: Mapping[str, Any],
        num_classes: int,
        *,
        state_dict: Mapping[str, Any] | None = None,
        strict: bool = True,
        head: str = "gap",
        dropout: float = 0.0,
        input_shape: Sequence[int] | None = None,
        hidden: int = 0,
        norm: str | None = None,
    ) -> EncoderClassifier:
        """Build a fresh encoder from its config (optionally load weights), add a head.

        ``encoder_config`` may also be an autoencoder's config: its encoder is used.

        Example:
            >>> clf = EncoderClassifier.from_config({"name": "cae_encoder"}, 3)
            >>> type(clf.encoder).__name__
            'ConvEncoder'
        """
        # The registry imports this module, so it is imported here, not at the top.
        from transmri.models.registry import build_model

        built = build_model(encoder_config)
        encoder = getattr(built, "encoder", built)
        model = cls(
            encoder,
            num_classes,
            head=head,
            dropout=dropout,
            input_shape=input_shape,
            hidden=hidden,
            norm=norm,
        )
        if state_dict is not None:
            model.load_encoder_state(state_dict, strict=strict)
        return model

    @property
    def config(self) -> dict[str, Any]:
        """``{"name": "classifier", "encoder": <encoder config>, ...}``.

        ``"norm"`` is present only when the head normalises its features: a
        config without it means ``"none"``, as in configs (and checkpoints)
        written before the option existed, which therefore still match.
        """
        encoder_config = getattr(self.encoder, "config", None)
        if not isinstance(encoder_config, dict):
            raise ConfigError(
                f"encoder: expected a model with a `config` dict so that build_model can "
                f"rebuild it, got {type(self.encoder).__name__} without one"
            )
        config: dict[str, Any] = {
            "name": "classifier",
            "encoder": encoder_config,
            "num_classes": self.num_classes,
            "head": self.head.kind,
            "dropout": self._dropout,
            "input_shape": None if self.input_shape is None else list(self.input_shape),
            "hidden": self._hidden,
        }
        if self.head.norm_kind != "none":
            config["norm"] = self.head.norm_kind
        return config

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Return ``{"logits": (N, num_classes), "code": encoder(x)}``."""
        check_input(x, steps=0, where=type(self).__name__)
        if self.head.kind == "regional":
            from transmri.models.features import regional_forward

            features, code = regional_forward(self.encoder, x)
            return {"logits": self.head(features), "code": code}
        code = self.encoder(x)
        return {"logits": self.head(code), "code": code}

    def encode(self, x: Tensor) -> Tensor:
        """The encoder's code of ``x``."""
        code: Tensor = self.encoder(x)
        return code

    def load_encoder_state(
        self, state_dict: Mapping[str, Any], *, strict: bool = True
    ) -> EncoderLoadResult:
        """Load encoder weights (``encoder.state_dict()`` keys) into this classifier.

        Args:
            state_dict: the saved encoder's weights.
            strict: raise if any key is missing or unexpected; with
                ``strict=False`` matching keys are loaded and the others reported.

        Returns:
            The missing and unexpected keys (both empty after a strict load).

        Raises:
            CheckpointError: a tensor's shape differs (always), or keys do not
                match (``strict=True``); the message names the keys.
        """
        own = self.encoder.state_dict()
        mismatched = [
            f"{key!r}: encoder has {tuple(own[key].shape)}, state dict has {tuple(value.shape)}"
            for key, value in state_dict.items()
            if key in own
            and hasattr(value, "shape")
            and tuple(value.shape) != tuple(own[key].shape)
        ]
        if mismatched:
            raise CheckpointError(
                "encoder weights do not fit this encoder (different architecture?): shape "
                "mismatch for " + "; ".join(mismatched)
            )
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing keys {_format_keys(missing)}")
            if unexpected:
                parts.append(f"unexpected keys {_format_keys(unexpected)}")
            raise CheckpointError(
                f"encoder weights do not match {type(self.encoder).__name__}: "
                + "; ".join(parts)
                + " (pass strict=False to load the matching keys only)"
            )
        self.encoder.load_state_dict(dict(state_dict), strict=False)
        return EncoderLoadResult(missing, unexpected)

    def code_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        """Per-sample code shape of the encoder."""
        return encoder_code_shape(self.encoder, input_shape)

    def layer_groups(self) -> list[nn.Module]:
        """The encoder's groups (or the whole encoder), then the head."""
        groups = getattr(self.encoder, "layer_groups", None)
        encoder_groups = list(groups()) if callable(groups) else [self.encoder]
        return [*encoder_groups, self.head]

    def num_parameters(self, *, trainable_only: bool = False) -> int:
        """Number of parameters."""
        return count_parameters(self, trainable_only=trainable_only)
