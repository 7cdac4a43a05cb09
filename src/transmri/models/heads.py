"""Prediction heads that sit on an encoder's code.

Three kinds:

- ``"gap"``: global average pooling over the code's spatial axes, then
  (dropout and) a linear layer. Few parameters (``C * outputs``), the
  default: it is what makes fine-tuning on a few dozen scans feasible.
- ``"flatten"``: the paper's head, flatten the whole code map, then dropout
  and a linear layer (``C * d * h * w * outputs`` parameters, 86,530 for
  the CAE code of a 108x128x108 volume and two classes). Needs the code
  shape, i.e. the input shape, when built.
- ``"regional"``: every layer group of the encoder average-pooled to
  2 x 2 x 2 boxes and concatenated (:func:`~transmri.models.regional_forward`;
  576 features for the CAE, whatever the input shape). It keeps *where* a
  feature fires, coarsely, which global pooling throws away; the
  :class:`~transmri.models.EncoderClassifier` computes these features and
  the head gets them as a ``(N, C)`` vector.

Each kind may normalise its features before the linear layer (``norm``):
``"batch"`` (BatchNorm1d over the batch, running statistics at evaluation)
or ``"layer"`` (LayerNorm over each feature vector); both learn a scale and
a shift. Pooled CAE features share a large common offset (about
2.75 +- 0.11), and the class difference scales with it: without
normalisation the validation AUC of a fine-tuned CAE swings between about
0.1 and 0.9 from one epoch to the next; with either it rises steadily
(per-epoch numbers in the notes of
:data:`transmri.models.classifier.DEFAULT_HEAD_NORM`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from transmri._validation import check_choice, check_fraction, check_positive_int
from transmri.models._shapes import numel

__all__ = ["HEAD_KINDS", "HEAD_NORMS", "ClassifierHead"]

HEAD_KINDS: tuple[str, ...] = ("gap", "flatten", "regional")
HEAD_NORMS: tuple[str, ...] = ("none", "batch", "layer")


class _FeatureBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d that normalises a lone training sample with the running statistics.

    A batch of one has no variance; plain BatchNorm1d raises on it, which
    would end a fit whose last training batch holds a single scan.
    """

    def forward(self, input: Tensor) -> Tensor:
        if self.training and input.shape[0] == 1:
            return F.batch_norm(
                input,
                self.running_mean,
                self.running_var,
                self.weight,
                self.bias,
                False,
                0.0,
                self.eps,
            )
        out: Tensor = super().forward(input)
        return out


class ClassifierHead(nn.Module):
    """Code -> outputs, through pooling or flattening, dropout and linear layers.

    Args:
        code_shape: per-sample code shape ``(C, d, h, w)`` (or ``(C,)`` for a
            pooled code); ``"gap"`` uses only ``C``.
        num_outputs: outputs (classes, or 1 for a regression target).
        kind: ``"gap"``, ``"flatten"`` or ``"regional"`` (the input is already
            a ``(N, C)`` feature vector, see :func:`~transmri.models.regional_forward`).
        dropout: dropout probability before each linear layer.
        hidden: width of an optional hidden layer (Linear-ReLU); 0 for none.
        norm: normalisation of the (pooled or flattened) features before the
            first linear layer: ``"none"``, ``"batch"`` or ``"layer"``.

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
        norm: str = "none",
    ) -> None:
        super().__init__()
        self.kind = check_choice("head", kind, HEAD_KINDS)
        self.code_shape = tuple(check_positive_int("code_shape", s) for s in code_shape)
        self.num_outputs = check_positive_int("num_outputs", num_outputs)
        p = check_fraction("dropout", dropout, inclusive=True)
        if p == 1.0:
            raise ValueError("dropout: expected a probability < 1, got 1.0")
        hidden = check_positive_int("hidden", hidden, minimum=0)
        self.norm_kind = check_choice("norm", norm, HEAD_NORMS)
        width = self.code_shape[0] if kind == "gap" else numel(self.code_shape)
        # A separate attribute, not a Sequential entry, so that the keys of
        # heads without normalisation stay those of earlier checkpoints.
        self.norm: nn.Module = nn.Identity()
        if norm == "batch":
            self.norm = _FeatureBatchNorm(width)
        elif norm == "layer":
            self.norm = nn.LayerNorm(width)
        layers: list[nn.Module] = [nn.Dropout(p)]
        if hidden:
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(p)]
            width = hidden
        layers.append(nn.Linear(width, self.num_outputs))
        self.layers = nn.Sequential(*layers)

    def forward(self, code: Tensor) -> Tensor:
        """Return ``(N, num_outputs)`` for a code ``(N, C, ...)``."""
        if self.kind in ("gap", "regional"):
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
        out: Tensor = self.layers(self.norm(features))
        return out
