"""Prediction heads that sit on an encoder's code.

Two kinds:

- ``"gap"``: global average pooling over the code's spatial axes, then
  (dropout and) a linear layer. Few parameters (``C * outputs``), the
  default: it is what makes fine-tuning on a few dozen scans feasible.
- ``"flatten"``: the paper's head, flatten the whole code map, then dropout
  and a linear layer (``C * d * h * w * outputs`` parameters, 86,530 for
  the CAE code of a 108x128x108 volume and two classes). Needs the code
  shape, i.e. the input shape, when built.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from transmri._validation import check_choice, check_fraction, check_positive_int
from transmri.models._shapes import numel

__all__ = ["HEAD_KINDS", "ClassifierHead"]

HEAD_KINDS: tuple[str, ...] = ("gap", "flatten")


class ClassifierHead(nn.Module):
    """Code -> outputs, through pooling or flattening, dropout and linear layers.

    Args:
        code_shape: per-sample code shape ``(C, d, h, w)`` (or ``(C,)`` for a
            pooled code); ``"gap"`` uses only ``C``.
        num_outputs: outputs (classes, or 1 for a regression target).
        kind: ``"gap"`` or ``"flatten"``.
        dropout: dropout probability before each linear layer.
        hidden: width of an optional hidden layer (Linear-ReLU); 0 for none.

    Example:
        >>> head = ClassifierHead((16, 13, 16, 13), 2)
        >>> sum(p.numel() for p in head.parameters())
        34
    """

    def __init__(
        self,
        code_shape: Sequence[int],
        num_outputs: int,
        *,
        kind: str = "gap",
        dropout: float = 0.0,
        hidden: int = 0,
    ) -> None:
        super().__init__()
        self.kind = check_choice("head", kind, HEAD_KINDS)
        self.code_shape = tuple(check_positive_int("code_shape", s) for s in code_shape)
        self.num_outputs = check_positive_int("num_outputs", num_outputs)
        p = check_fraction("dropout", dropout, inclusive=True)
        if p == 1.0:
            raise ValueError("dropout: expected a probability < 1, got 1.0")
        hidden = check_positive_int("hidden", hidden, minimum=0)
        width = self.code_shape[0] if kind == "gap" else numel(self.code_shape)
        layers: list[nn.Module] = [nn.Dropout(p)]
        if hidden:
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(p)]
            width = hidden
        layers.append(nn.Linear(width, self.num_outputs))
        self.layers = nn.Sequential(*layers)

    def forward(self, code: Tensor) -> Tensor:
        """Return ``(N, num_outputs)`` for a code ``(N, C, ...)``."""
        if self.kind == "gap":
            features = code.mean(dim=tuple(range(2, code.dim()))) if code.dim() > 2 else code
            if features.shape[1] != self.code_shape[0]:
                raise ValueError(
                    f"ClassifierHead: expected a code with {self.code_shape[0]} channels, "
                    f"got shape {tuple(code.shape)}"
                )
        else:
            if tuple(code.shape[1:]) != self.code_shape:
                raise ValueError(
                    f"ClassifierHead (flatten): expected a code of shape (N, "
                    f"{', '.join(map(str, self.code_shape))}) as sized by input_shape, got "
                    f"{tuple(code.shape)}; the input volume has another shape than the head "
                    f"was built for"
                )
            features = code.flatten(1)
        out: Tensor = self.layers(features)
        return out
