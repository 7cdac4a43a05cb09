"""One-call Learners: a DataBunch and a run folder in, a ready Learner out.

Each factory builds the model from explicit options (seeded by the
Learner's ``seed``) and passes any further keyword to :class:`Learner`,
whose signature rejects unknown names with ``TypeError``; nothing is
silently dropped.

Example:
    >>> pretrain = create_autoencoder(source, "runs/pretrain", arch="cae")  # doctest: +SKIP
    >>> pretrain.fit(30, 1e-3).save_encoder()  # doctest: +SKIP
    >>> target = create_classifier_from_encoder(data, "runs/pretrain", "runs/ft")  # doctest: +SKIP
    >>> target.fine_tune(3, 10, 1e-3)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from transmri._validation import check_choice
from transmri.errors import ConfigError, DataFormatError
from transmri.training.encoder_io import (
    check_compatibility,
    check_encoder_leakage,
    load_encoder,
)
from transmri.training.learner import Learner
from transmri.training.objectives import MultiTaskLoss

__all__ = [
    "ARCHITECTURES",
    "create_autoencoder",
    "create_classifier",
    "create_classifier_from_encoder",
    "create_mixed",
]

ARCHITECTURES: tuple[str, ...] = ("cae", "srcae", "vae")


def _arch_options(
    arch: str,
    *,
    channels: Sequence[int] | None,
    activation: str | None,
    norm: str | None,
    dropout: float | None,
) -> dict[str, Any]:
    check_choice("arch", arch, ARCHITECTURES)
    given = {"channels": channels, "activation": activation, "norm": norm, "dropout": dropout}
    options = {k: v for k, v in given.items() if v is not None}
    if arch == "srcae" and "norm" in options:
        raise ConfigError("norm: the 'srcae' architecture has no normalisation layers; omit norm")
    if arch != "srcae" and "dropout" in options:
        raise ConfigError(
            f"dropout: only the 'srcae' architecture has encoder dropout, got arch={arch!r}"
        )
    return options


def _build_autoencoder(arch: str, options: dict[str, Any]) -> nn.Module:
    from transmri.models import ConvAutoEncoder, StridedConvAutoEncoder, VariationalAutoEncoder

    builders: dict[str, Any] = {
        "cae": ConvAutoEncoder,
        "srcae": StridedConvAutoEncoder,
        "vae": VariationalAutoEncoder,
    }
    model: nn.Module = builders[arch](**options)
    return model


def _seed(learner_options: dict[str, Any]) -> None:
    torch.manual_seed(int(learner_options.get("seed", 42)))


def _check_labelled(data: Any, what: str) -> None:
    if data.num_classes < 2:
        raise DataFormatError(
            f"{what}: needs a labelled DataBunch with at least 2 classes, "
            f"got classes {data.classes}"
        )


def create_autoencoder(
    data: Any,
    path: str | os.PathLike[str],
    *,
    arch: str = "cae",
    channels: Sequence[int] | None = None,
    activation: str | None = None,
    norm: str | None = None,
    dropout: float | None = None,
    **learner_options: Any,
) -> Learner:
    """An autoencoder Learner (``"cae"``, ``"srcae"`` or ``"vae"``; model type set to match).

    Args:
        data: the DataBunch (labels not needed).
        path: the run folder.
        arch: ``"cae"`` (the paper's), ``"srcae"`` (strided residual) or ``"vae"``.
        channels, activation, norm: architecture options (``None``: its default).
        dropout: encoder dropout of ``"srcae"``.
        **learner_options: :class:`Learner` options.
    """
    options = _arch_options(
        arch, channels=channels, activation=activation, norm=norm, dropout=dropout
    )
    _seed(learner_options)
    model = _build_autoencoder(arch, options)
    if arch == "vae":
        return Learner(data, model, path, model_type="vae", **learner_options)
    return Learner(data, model, path, model_type="autoencoder", **learner_options)


def create_contrastive(
    data: Any,
    path: str | os.PathLike[str],
    *,
    arch: str = "cae",
    channels: Sequence[int] | None = None,
    activation: str | None = None,
    norm: str | None = None,
    dropout: float | None = None,
    target: str | None = None,
    sigma: float = 5.0,
    temperature: float = 0.1,
    **learner_options: Any,
) -> Learner:
    """A contrastive Learner: the architecture's encoder + a projection head, two views per scan.

    ``target=None`` is SimCLR's NT-Xent; a target name (e.g. ``"age"``, which
    the DataBunch must list in ``targets``) gives the y-aware InfoNCE of
    Dufumier et al. (2021) with a Gaussian kernel of bandwidth ``sigma``.
    ``save_encoder()`` saves the encoder, as for the autoencoders.

    Raises:
        ConfigError: a bad architecture option, or a ``target`` the data lack.
    """
    from transmri.models import ContrastiveModel
    from transmri.training.contrastive import ContrastiveLoss

    if target is not None and target not in getattr(data, "targets", ()):
        raise ConfigError(
            f"target: {target!r} is not one of the DataBunch's targets "
            f"{list(getattr(data, 'targets', ()))}; add it to targets"
        )
    options = _arch_options(
        arch, channels=channels, activation=activation, norm=norm, dropout=dropout
    )
    _seed(learner_options)
    encoder = _build_autoencoder(arch, options).encoder
    if not isinstance(encoder, nn.Module):  # every architecture here has an encoder module
        raise TypeError(f"arch {arch!r}: expected an encoder module, got {type(encoder).__name__}")
    loss = ContrastiveLoss(temperature=temperature, target=target, sigma=sigma)
    return Learner(
        data, ContrastiveModel(encoder), path, model_type="contrastive", loss_fn=loss,
        **learner_options,
    )  # fmt: skip


def create_classifier(
    data: Any,
    path: str | os.PathLike[str],
    *,
    arch: str = "cae",
    head: str = "gap",
    dropout: float = 0.0,
    channels: Sequence[int] | None = None,
    activation: str | None = None,
    norm: str | None = None,
    **learner_options: Any,
) -> Learner:
    """A classifier trained from scratch: the encoder of ``arch`` plus a head.

    Args:
        data: a labelled DataBunch.
        path: the run folder.
        arch: whose encoder to use (``"cae"``, ``"srcae"``, ``"vae"``).
        head: ``"gap"`` (global average pooling), ``"flatten"`` (the paper's)
            or ``"regional"`` (every layer pooled to 2 x 2 x 2 boxes).
        dropout: dropout before the head's linear layer.
        channels, activation, norm: encoder options.
        **learner_options: :class:`Learner` options.
    """
    from transmri.models import EncoderClassifier

    _check_labelled(data, "create_classifier")
    options = _arch_options(arch, channels=channels, activation=activation, norm=norm, dropout=None)
    _seed(learner_options)
    encoder = _build_autoencoder(arch, options).get_submodule("encoder")
    model = EncoderClassifier(
        encoder, data.num_classes, head=head, dropout=dropout, input_shape=data.input_shape
    )
    return Learner(data, model, path, model_type="classifier", **learner_options)


def create_mixed(
    data: Any,
    path: str | os.PathLike[str],
    *,
    arch: str = "cae",
    alpha: float | None = None,
    head: str = "gap",
    dropout: float = 0.0,
    channels: Sequence[int] | None = None,
    activation: str | None = None,
    norm: str | None = None,
    loss_fn: Any = None,
    **learner_options: Any,
) -> Learner:
    """A multi-task autoencoder: reconstruction + classification (+ the DataBunch's targets).

    The objective is ``alpha * MSE + (1 - alpha) * CE`` (+ one loss per extra
    head) with the training split's class weights.

    Args:
        data: a labelled DataBunch; its ``targets`` get extra heads
            (regression, or classification for categorical targets).
        path: the run folder.
        arch: the autoencoder (``"cae"``, ``"vae"``, ``"srcae"``).
        alpha: weight of reconstruction, default 0.7 (used, never ignored).
        head, dropout: of the prediction heads.
        channels, activation, norm: architecture options.
        loss_fn: your own objective instead (then ``alpha`` must not be given).
        **learner_options: :class:`Learner` options.
    """
    from transmri.models import MultiTaskAutoEncoder

    _check_labelled(data, "create_mixed")
    if loss_fn is not None and alpha is not None:
        raise ConfigError("alpha: applies to the default mixed objective; you also gave loss_fn")
    options = _arch_options(arch, channels=channels, activation=activation, norm=norm, dropout=None)
    _seed(learner_options)
    categorical = dict(getattr(data, "target_classes", {}) or {})
    model = MultiTaskAutoEncoder(
        _build_autoencoder(arch, options),
        num_classes=data.num_classes,
        regression_targets=tuple(t for t in data.targets if t not in categorical),
        classification_targets={t: len(c) for t, c in categorical.items() if t in data.targets},
        head=head,
        dropout=dropout,
        input_shape=data.input_shape,
    )
    objective = loss_fn or MultiTaskLoss(
        alpha=0.7 if alpha is None else alpha, class_weights=data.class_weights()
    )
    return Learner(data, model, path, model_type="mixed", loss_fn=objective, **learner_options)


def data_voxel_size(
    table: Any, preprocessing: Any, card: dict[str, Any]
) -> tuple[float, float, float] | None:
    """The first scan's voxel size after ``preprocessing``, when the card states one to match.

    Args:
        table: the target :class:`~transmri.data.ScanTable` (or ``None``).
        preprocessing: its :class:`~transmri.data.PreprocessConfig`.
        card: the encoder's card.
    """
    expected = ((card.get("provenance") or {}).get("expected_input") or {}).get("voxel_size_mm")
    if expected is None or table is None or not len(table.frame):
        return None
    import pandas as pd

    from transmri.data.voxel_size import output_voxel_size

    row = table.frame.iloc[0]
    mask = row.get("mask")
    mask = None if mask is None or pd.isna(mask) else str(mask)
    return output_voxel_size(str(row["path"]), mask, preprocessing)


def create_classifier_from_encoder(
    data: Any,
    encoder_path: str | os.PathLike[str],
    path: str | os.PathLike[str],
    *,
    head: str = "gap",
    dropout: float = 0.0,
    check_leakage: bool = True,
    **learner_options: Any,
) -> Learner:
    """A classifier Learner on a pretrained encoder (see :meth:`Learner.from_pretrained`).

    Raises:
        ConfigError: the target data's input shape or preprocessing differs
            from the encoder card's (naming every differing field).
        DataLeakageError: target test subjects were in the pretraining set.
        IntegrityError: the weights do not match the card's sha256.
    """
    from transmri.models import EncoderClassifier

    _check_labelled(data, "create_classifier_from_encoder")
    encoder, card = load_encoder(encoder_path)
    where = str(encoder_path)
    check_compatibility(
        card,
        input_shape=data.input_shape,
        preprocessing=data.preprocessing.to_dict(),
        where=where,
        voxel_size=data_voxel_size(getattr(data, "table", None), data.preprocessing, card),
    )
    if check_leakage:
        check_encoder_leakage(card, data.subjects("test"), where=where)
    _seed(learner_options)
    model = EncoderClassifier(
        encoder, data.num_classes, head=head, dropout=dropout, input_shape=data.input_shape
    )
    learner = Learner(data, model, path, model_type="classifier", **learner_options)
    learner.pretrained_card_ = card
    return learner
