"""An autoencoder with prediction heads on its code: the paper's "mixed" model.

Trained with ``alpha * MSE(reconstruction, x) + (1 - alpha) * CE(logits, y)``
(plus a loss per extra head), so the code is pushed to separate the classes
while it still has to reconstruct the scan.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from transmri._validation import check_positive_int
from transmri.errors import ConfigError
from transmri.models._shapes import encoder_code_shape, encoder_out_channels, optional_shape3d
from transmri.models.heads import HEAD_KINDS, ClassifierHead
from transmri.models.protocol import count_parameters

__all__ = ["MultiTaskAutoEncoder"]


def _check_target_name(name: object, taken: set[str]) -> str:
    if not isinstance(name, str) or not name.isidentifier():
        raise ConfigError(
            f"target name: expected an identifier such as 'age' or 'sex', got {name!r}"
        )
    if name in taken:
        raise ConfigError(f"target name: {name!r} is given twice")
    taken.add(name)
    return name


class MultiTaskAutoEncoder(nn.Module):
    """Any autoencoder plus heads on its code.

    ``forward`` returns the autoencoder's outputs (``"reconstruction"``,
    ``"code"``, and ``"mu"``/``"logvar"`` for a VAE) and:

    - ``"logits"`` ``(N, num_classes)`` for the main class, when ``num_classes > 0``;
    - ``"pred_<name>"`` ``(N,)`` for each regression target;
    - ``"pred_<name>"`` ``(N, n)`` for each extra classification target.

    Args:
        autoencoder: e.g. :class:`ConvAutoEncoder`; used as given, not copied.
        num_classes: classes of the main label (0 for no main head).
        regression_targets: names of continuous targets (e.g. ``("age",)``).
        classification_targets: name -> number of classes (e.g. ``{"sex": 2}``).
        head: ``"gap"`` or ``"flatten"`` (needs ``input_shape``), for every head.
        dropout: dropout probability in the heads.
        input_shape: volume shape ``(D, H, W)``; needed for ``"flatten"``.
        hidden: width of an optional hidden layer in each head; 0 for none.

    Example:
        >>> from transmri.models import ConvAutoEncoder
        >>> model = MultiTaskAutoEncoder(ConvAutoEncoder(), num_classes=2,
        ...                              regression_targets=("age",))
        >>> sorted(model.heads)
        ['logits', 'pred_age']
    """

    def __init__(
        self,
        autoencoder: nn.Module,
        *,
        num_classes: int = 0,
        regression_targets: Sequence[str] = (),
        classification_targets: Mapping[str, int] | None = None,
        head: str = "gap",
        dropout: float = 0.0,
        input_shape: Sequence[int] | None = None,
        hidden: int = 0,
    ) -> None:
        super().__init__()
        encoder = getattr(autoencoder, "encoder", None)
        if not isinstance(encoder, nn.Module):
            raise TypeError(
                f"autoencoder: expected a model with an `encoder` module, got "
                f"{type(autoencoder).__name__}"
            )
        if head not in HEAD_KINDS or head == "regional":
            kinds = tuple(k for k in HEAD_KINDS if k != "regional")
            raise ConfigError(f"head: expected one of {kinds}, got {head!r}")
        self.num_classes = check_positive_int("num_classes", num_classes, minimum=0)
        if self.num_classes == 1:
            raise ConfigError("num_classes: expected 0 (no main head) or >= 2, got 1")
        if isinstance(regression_targets, str):
            raise ConfigError(
                f"regression_targets: expected a sequence of names, got the string "
                f"{regression_targets!r} (write ({regression_targets!r},))"
            )
        taken: set[str] = set()
        self.regression_targets = tuple(_check_target_name(n, taken) for n in regression_targets)
        self.classification_targets = {
            _check_target_name(n, taken): check_positive_int(
                f"classification_targets[{n!r}]", k, minimum=2
            )
            for n, k in (classification_targets or {}).items()
        }
        outputs: dict[str, int] = {}
        if self.num_classes:
            outputs["logits"] = self.num_classes
        outputs.update({f"pred_{n}": 1 for n in self.regression_targets})
        outputs.update({f"pred_{n}": k for n, k in self.classification_targets.items()})
        if not outputs:
            raise ConfigError(
                "MultiTaskAutoEncoder: expected at least one head (num_classes >= 2, "
                "regression_targets or classification_targets), got none"
            )
        self.input_shape = optional_shape3d("input_shape", input_shape)
        if head == "flatten":
            if self.input_shape is None:
                raise ConfigError(
                    "input_shape: expected the volume shape (D, H, W) for head='flatten', got None"
                )
            code_shape = encoder_code_shape(encoder, self.input_shape)
        else:
            code_shape = (encoder_out_channels(encoder, self.input_shape),)
        self.autoencoder = autoencoder
        self.heads = nn.ModuleDict(
            {
                name: ClassifierHead(code_shape, n, kind=head, dropout=dropout, hidden=hidden)
                for name, n in outputs.items()
            }
        )
        self._regression_heads = {f"pred_{n}" for n in self.regression_targets}
        self._head_kind = head
        self._dropout = float(dropout)
        self._hidden = int(hidden)

    @property
    def encoder(self) -> nn.Module:
        """The autoencoder's encoder (the part that is transferred)."""
        return self.autoencoder.get_submodule("encoder")

    @property
    def config(self) -> dict[str, Any]:
        """``{"name": "mixed", "autoencoder": <autoencoder config>, ...}``."""
        return {
            "name": "mixed",
            "autoencoder": self.autoencoder.config,
            "num_classes": self.num_classes,
            "regression_targets": list(self.regression_targets),
            "classification_targets": dict(self.classification_targets),
            "head": self._head_kind,
            "dropout": self._dropout,
            "input_shape": None if self.input_shape is None else list(self.input_shape),
            "hidden": self._hidden,
        }

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Autoencoder outputs plus ``"logits"`` and ``"pred_<name>"`` per head."""
        out: dict[str, Tensor] = dict(self.autoencoder(x))
        code = out["code"]
        for name, head in self.heads.items():
            prediction = head(code)
            out[name] = prediction.squeeze(1) if name in self._regression_heads else prediction
        return out

    def encode(self, x: Tensor) -> Tensor:
        """The autoencoder's code of ``x``."""
        encode = getattr(self.autoencoder, "encode", None)
        code: Tensor = encode(x) if callable(encode) else self.encoder(x)
        return code

    def code_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        """Per-sample code shape of the encoder."""
        return encoder_code_shape(self.encoder, input_shape)

    def layer_groups(self) -> list[nn.Module]:
        """The autoencoder's groups (encoder blocks, decoder), then the heads."""
        groups = getattr(self.autoencoder, "layer_groups", None)
        ae_groups = list(groups()) if callable(groups) else [self.autoencoder]
        return [*ae_groups, self.heads]

    def num_parameters(self, *, trainable_only: bool = False) -> int:
        """Number of parameters."""
        return count_parameters(self, trainable_only=trainable_only)
